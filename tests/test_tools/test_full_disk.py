# Copyright (c) finers_mm contributors. All rights reserved.
"""Outputs on a full (or read-only) disk: tools/test.py --out, tools/misc/export_stage.py and
tools/demo.py leave the old complete output or nothing, never a truncated file or a half folder,
and --out fails before the evaluation when it cannot be written.

The disks are small tmpfs mounts, so these tests need root (and a system that lets it mount);
elsewhere they are skipped.
"""
import errno
import os
import os.path as osp
import subprocess

import pytest

from finers_mm.testing import BUNDLED_DATA, config_path
from finers_mm.testing.tools import load_tool, save_stage_checkpoint
from finers_mm.testing.toys import toy_test_config
from finers_mm.utils.run_config import load_config


@pytest.fixture
def disk(tmp_path):
    """``mount(size, read_only=False)``: a new tmpfs of ``size`` (e.g. ``'512k'``) under
    ``tmp_path``, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip('a small tmpfs needs root to mount')
    mounted = []

    def mount(size: str, read_only: bool = False) -> str:
        point = tmp_path / f'disk{len(mounted)}'
        point.mkdir()
        options = f'size={size}' + (',ro' if read_only else '')
        done = subprocess.run(['mount', '-t', 'tmpfs', '-o', options, 'tmpfs', str(point)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f'cannot mount a tmpfs here: {done.stderr.strip()}')
        mounted.append(str(point))
        return str(point)

    yield mount
    for point in mounted:
        subprocess.run(['umount', '-l', point], check=False)


def _fill(folder: str) -> None:
    """Fill the disk of ``folder`` up."""
    with open(osp.join(folder, 'filler'), 'wb', buffering=0) as f:
        try:
            while True:
                f.write(b'\0' * 4096)
        except OSError as error:
            assert error.errno == errno.ENOSPC


def _files(folder: str) -> list:
    return sorted(osp.relpath(osp.join(root, name), folder)
                  for root, _, names in os.walk(folder) for name in names)


@pytest.fixture
def big_prediction_config(tmp_path) -> str:
    """A test config of the toys whose 5 predictions pickle to about 300 kB."""
    return toy_test_config(str(tmp_path), batch_size=5, blob_size=60_000)


def test_test_out_on_a_full_disk_keeps_the_metrics_and_the_old_file(disk, big_prediction_config,
                                                                    tmp_path):
    out = osp.join(disk('128k'), 'preds.pkl')
    with open(out, 'wb') as f:
        f.write(b'the previous predictions')
    work_dir = tmp_path / 'work'
    with pytest.raises(OSError, match=f'No space left on device: could not write {out}'):
        load_tool('test.py').main([big_prediction_config, '--work-dir', str(work_dir),
                                   '--out', out])
    with open(out, 'rb') as f:
        assert f.read() == b'the previous predictions'
    assert _files(osp.dirname(out)) == ['preds.pkl']
    [metrics] = [name for name in _files(work_dir) if name.endswith('.json')
                 and osp.basename(name)[:-5] == osp.dirname(name)]
    assert '"toy/mean": 2.0' in (work_dir / metrics).read_text()


def test_test_out_on_a_read_only_disk_fails_before_the_run(disk, big_prediction_config, tmp_path):
    out = osp.join(disk('64k', read_only=True), 'preds.pkl')
    with pytest.raises(OSError, match=f'--out {out} cannot be written .*Read-only file system'):
        load_tool('test.py').main([big_prediction_config, '--work-dir', str(tmp_path / 'work'),
                                   '--out', out])
    assert not (tmp_path / 'work').exists()


@pytest.fixture(scope='module')
def stage_checkpoint(tiny_models, tmp_path_factory) -> dict:
    """An LPR checkpoint as tools/train.py writes it, and the options that rebuild its stage."""
    return save_stage_checkpoint(str(tmp_path_factory.mktemp('lpr_tiny') / 'iter_12.pth'),
                                 tiny_models)


def _export(stage_checkpoint: dict, out_dir: str) -> None:
    cfg = load_config(config_path('finers', 'lpr_tiny.py'), stage_checkpoint['options'])
    load_tool('misc', 'export_stage.py').export_stage(cfg, stage_checkpoint['path'], out_dir)


def test_export_on_a_full_disk_leaves_no_half_folder(disk, stage_checkpoint, tmp_path):
    fresh = osp.join(disk('512k'), 'lpr')  # the weights alone are about 1 MB
    # safetensors reports the full disk with its own error; the export adds the folder's name
    with pytest.raises(Exception, match='No space left on device') as info:
        _export(stage_checkpoint, fresh)
    assert f'could not write {fresh}: it was left as it was' in info.value.__notes__
    assert os.listdir(osp.dirname(fresh)) == []

    # room for one export and a half: the old one stays, whole
    old = osp.join(disk('1700k'), 'lpr')
    _export(stage_checkpoint, old)
    before = {name: os.path.getsize(osp.join(old, name)) for name in os.listdir(old)}
    with pytest.raises(Exception, match='No space left on device'):
        _export(stage_checkpoint, old)
    assert {name: os.path.getsize(osp.join(old, name)) for name in os.listdir(old)} == before
    assert os.listdir(osp.dirname(old)) == ['lpr']


def test_demo_on_a_full_disk_leaves_no_truncated_file(disk, tiny_models):
    out_dir = disk('256k')
    _fill(out_dir)
    options = [f'model.explorer.vlm.pretrained={tiny_models["qwen2_5_vl"]}',
               f'model.refiner.vlm.pretrained={tiny_models["qwen2_5_vl"]}',
               f'model.mask_head.config={tiny_models["sam_config"]}',
               f'model.mask_head.checkpoint={tiny_models["sam"]}']
    image = osp.join(BUNDLED_DATA, 'images', 'train_000000.jpg')
    with pytest.raises(OSError, match=f'No space left on device: could not write {out_dir}/vis/'):
        load_tool('demo.py').main([image, 'Where is the star?', '--device', 'cpu',
                                   '--out-dir', out_dir, '--cfg-options', *options])
    assert _files(out_dir) == ['filler']  # no truncated drawing, no temporary file
