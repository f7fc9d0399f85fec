# Copyright (c) finers_mm contributors. All rights reserved.
"""The atomic writers of finers_mm.utils.fileio: files flushed before the rename, strict JSON,
images, a writable check at start, and whole folders swapped into place."""
import errno
import json
import os

import cv2
import numpy as np
import pytest

from finers_mm.utils import fileio


def _listing(folder) -> list:
    return sorted(os.listdir(folder))


def test_write_atomic_flushes_to_disk_before_the_rename(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(fileio.os, 'fsync', lambda fd: calls.append('fsync') or real_fsync(fd))
    monkeypatch.setattr(fileio.os, 'replace',
                        lambda src, dst: calls.append('replace') or real_replace(src, dst))
    fileio.write_atomic(str(tmp_path / 'out.txt'), 'data')
    assert calls == ['fsync', 'replace']


def test_a_failed_write_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / 'preds.pkl'
    target.write_bytes(b'old')

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fileio.os, 'fsync', full_disk)
    with pytest.raises(OSError, match='preds.pkl') as info:
        fileio.write_atomic(str(target), b'new' * 1000)
    assert info.value.errno == errno.ENOSPC and 'previous content is kept' in str(info.value)
    assert target.read_bytes() == b'old' and _listing(tmp_path) == ['preds.pkl']


def test_write_json_atomic_is_strict_and_names_the_bad_key(tmp_path):
    target = tmp_path / 'pred.json'
    fileio.write_json_atomic(str(target), dict(bbox=[1.5, 2.0], answer='A'), indent=2)
    assert json.loads(target.read_text()) == dict(bbox=[1.5, 2.0], answer='A')
    with pytest.raises(ValueError, match=r'pred\.json.*bbox\[1\] is not a finite number'):
        fileio.write_json_atomic(str(target), dict(bbox=[1.5, float('nan')], answer='A'))
    assert json.loads(target.read_text())['answer'] == 'A'  # the old file, untouched


def test_write_image_atomic_encodes_by_extension(tmp_path):
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[..., 0] = 200  # red
    fileio.write_image_atomic(str(tmp_path / 'vis.png'), rgb)
    read = cv2.imread(str(tmp_path / 'vis.png'))
    assert read.shape == (6, 8, 3) and (read[..., 2] == 200).all() and (read[..., 0] == 0).all()
    mask = np.eye(5, dtype=np.uint8) * 255
    fileio.write_image_atomic(str(tmp_path / 'masks' / 'm.png'), mask)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / 'masks' / 'm.png'), 0), mask)
    fileio.write_image_atomic(str(tmp_path / 'vis.jpg'), rgb)
    assert cv2.imread(str(tmp_path / 'vis.jpg')).shape == (6, 8, 3)
    with pytest.raises(ValueError, match='cannot encode'):
        fileio.write_image_atomic(str(tmp_path / 'vis.unknown'), rgb)


def test_check_writable_creates_the_folder_and_leaves_nothing(tmp_path):
    fileio.check_writable(str(tmp_path / 'new' / 'preds.pkl'), '--out')
    assert _listing(tmp_path / 'new') == []
    with pytest.raises(IsADirectoryError, match='--out .* is a folder'):
        fileio.check_writable(str(tmp_path), '--out')


def test_check_writable_refuses_a_folder_it_cannot_write(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(fileio.tempfile, 'mkstemp', read_only)
    with pytest.raises(OSError, match='--out .*preds.pkl cannot be written.*writable path'):
        fileio.check_writable(str(tmp_path / 'preds.pkl'), '--out')


def _write_export(folder, tag: str) -> None:
    for name in ('config.json', 'model.safetensors'):
        with open(os.path.join(folder, name), 'w') as f:
            f.write(f'{tag} {name}')


def _read_export(folder) -> dict:
    return {name: (folder / name).read_text() for name in _listing(folder)}


@pytest.mark.parametrize('exchange', [True, False], ids=['renameat2', 'two-renames'])
def test_staged_dir_creates_and_replaces_a_whole_folder(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(fileio, '_exchange', lambda src, dst: False)
    target = tmp_path / 'export'
    with fileio.staged_dir(str(target)) as tmp:
        _write_export(tmp, 'old')
        assert not target.exists()  # nothing at the target until the folder is complete
    (target / 'stale.bin').write_text('from the old export')
    with fileio.staged_dir(str(target)) as tmp:
        _write_export(tmp, 'new')
        assert _read_export(target)['config.json'] == 'old config.json'
    assert _read_export(target) == {'config.json': 'new config.json',
                                    'model.safetensors': 'new model.safetensors'}
    assert _listing(tmp_path) == ['export']  # no temporary or old folder left


def test_staged_dir_keeps_the_old_folder_when_writing_fails(tmp_path):
    target = tmp_path / 'export'
    with fileio.staged_dir(str(target)) as tmp:
        _write_export(tmp, 'old')
    with pytest.raises(OSError, match=r'No space left on device: could not write .*export'):
        with fileio.staged_dir(str(target)) as tmp:
            (tmp_path / 'half').write_text('')
            _write_export(tmp, 'new')
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert _read_export(target)['config.json'] == 'old config.json'
    assert _listing(tmp_path) == ['export', 'half']
    with pytest.raises(NotADirectoryError, match='half exists and is not a folder'):
        with fileio.staged_dir(str(tmp_path / 'half')):
            pass
