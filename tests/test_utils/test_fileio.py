# Copyright (c) finers_mm contributors. All rights reserved.
"""write_atomic never leaves a half-written or temporary file."""
import os

import pytest

from finers_mm.utils import fileio


def test_write_atomic_text_bytes_and_folder_creation(tmp_path):
    target = tmp_path / 'new' / 'out.json'
    fileio.write_atomic(str(target), '{"a": "é"}')
    assert target.read_text(encoding='utf-8') == '{"a": "é"}'
    fileio.write_atomic(str(target), b'\x00\x01')
    assert target.read_bytes() == b'\x00\x01'
    assert os.listdir(target.parent) == ['out.json']


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / 'out.txt'
    target.write_text('old')

    def broken_replace(src, dst):
        raise OSError('disk full')

    monkeypatch.setattr(fileio.os, 'replace', broken_replace)
    with pytest.raises(OSError, match='disk full'):
        fileio.write_atomic(str(target), 'new')
    assert target.read_text() == 'old'
    assert os.listdir(tmp_path) == ['out.txt']
