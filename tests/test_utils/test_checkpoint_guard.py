# Copyright (c) finers_mm contributors. All rights reserved.
"""Checkpoint loads never go silently wrong: no download without consent (URLs), a file that is not
a checkpoint is named, and a checkpoint that fits no part of the model is refused with the fix."""
import functools
import http.server
import os.path as osp
import threading

import numpy as np
import pytest
import torch
from mmengine.runner import load_checkpoint
from PIL import Image

import finers_mm  # noqa: F401  (installs the guarded loaders)
from finers_mm.utils.checkpoint_guard import ALLOW_DOWNLOAD_ENV, check_checkpoint_fits

EXPECTED = 'expected an mmengine checkpoint'


class _Stage(torch.nn.Module):
    """A FineRS stage's shape: a ``vlm`` holding the model."""

    def __init__(self):
        super().__init__()
        self.vlm = torch.nn.Module()
        self.vlm.model = torch.nn.Linear(4, 4)


class _Chain(torch.nn.Module):
    """FineRSDetector's shape: two stages and a mask head."""

    def __init__(self):
        super().__init__()
        self.explorer, self.refiner = _Stage(), _Stage()
        self.mask_head = torch.nn.Conv2d(3, 2, 3)


def _stage_checkpoint(stage_type: str = 'LocalRefiner') -> dict:
    """What tools/train.py saves for a stage: its state dict and the config text in ``meta``."""
    cfg = (f"default_scope = 'finers_mm'\nmodel = dict(\n    think_template='Locate.',\n"
           f"    type='{stage_type}',\n    vlm=dict(\n        type='Qwen25VLAdapter'))\n"
           "optim_wrapper = dict(type='OptimWrapper')\n")
    return dict(state_dict=_Stage().state_dict(), meta=dict(cfg=cfg, iter=12))


@pytest.mark.parametrize('url', ['https://example.com/lpr.pth', 'http://127.0.0.1:1/lpr.pth',
                                 'torchvision://resnet50', 'open-mmlab://resnet50_v1c',
                                 'mmcls://resnet50'])
def test_a_url_is_refused_unless_allowed(url, monkeypatch):
    monkeypatch.delenv(ALLOW_DOWNLOAD_ENV, raising=False)
    with pytest.raises(ValueError) as info:
        load_checkpoint(torch.nn.Linear(2, 2), url)
    message = str(info.value)
    assert url in message and 'does not download' in message
    assert f'{ALLOW_DOWNLOAD_ENV}=1' in message and 'pass the local file' in message


def test_an_allowed_url_downloads(tmp_path, monkeypatch):
    """With the variable set, mmengine's own download runs (from a local server here)."""
    served = tmp_path / 'served'
    served.mkdir()
    model = torch.nn.Linear(2, 2)
    torch.save(dict(state_dict=model.state_dict()), served / 'linear-0123abcd.pth')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.setenv(ALLOW_DOWNLOAD_ENV, '1')
    try:
        fresh = torch.nn.Linear(2, 2)
        load_checkpoint(fresh, f'http://127.0.0.1:{server.server_port}/linear-0123abcd.pth')
    finally:
        server.shutdown()
    torch.testing.assert_close(fresh.weight, model.weight)


def _not_checkpoints(folder) -> dict:
    """Files a user may pass by mistake, and what the error must call each."""
    files = {}
    text = folder / 'lpr_tiny.py'
    text.write_text("_base_ = ['./lpr_tiny.py']\n")
    files[str(text)] = 'a text file'
    empty = folder / 'iter_8.pth'
    empty.write_bytes(b'')
    files[str(empty)] = 'the file is empty'
    truncated = folder / 'iter_12.pth'
    torch.save(dict(state_dict=torch.nn.Linear(8, 8).state_dict()), truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])  # an interrupted copy
    files[str(truncated)] = 'truncated or damaged checkpoint'
    image = folder / 'demo.png'
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(image)
    files[str(image)] = 'an image'
    safetensors = folder / 'model.safetensors'
    safetensors.write_bytes(b'\x40\x00\x00\x00\x00\x00\x00\x00{"__metadata__":{}}')  # cut
    files[str(safetensors)] = 'a safetensors file'
    return files


def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path):
    for path, what in _not_checkpoints(tmp_path).items():
        with pytest.raises(ValueError) as info:
            load_checkpoint(torch.nn.Linear(2, 2), path)
        message = str(info.value)
        assert message.startswith(f'{path} is not a checkpoint'), message
        assert what in message and EXPECTED in message, message
    with pytest.raises(IsADirectoryError, match=f'{tmp_path} is a folder: give the .pth file'):
        load_checkpoint(torch.nn.Linear(2, 2), str(tmp_path))
    with pytest.raises(FileNotFoundError, match='nope.pth can not be found'):
        load_checkpoint(torch.nn.Linear(2, 2), str(tmp_path / 'nope.pth'))


def test_a_stage_checkpoint_given_to_the_chain_is_refused_with_the_export_fix():
    for stage, part in (('LocalRefiner', 'refiner'), ('GlobalExplorer', 'explorer')):
        with pytest.raises(ValueError) as info:
            check_checkpoint_fits(_Chain(), _stage_checkpoint(stage), 'work_dirs/lpr/iter_12.pth')
        message = str(info.value)
        assert message.startswith('work_dirs/lpr/iter_12.pth does not fit _Chain: it supplies 0 of')
        assert f'a FineRS stage ({stage}, vlm.* keys)' in message
        assert ('tools/misc/export_stage.py STAGE_CONFIG work_dirs/lpr/iter_12.pth OUT_DIR'
                in message)
        assert f'set model.{part}.vlm.pretrained=OUT_DIR' in message
    # without the config in meta: both parts are named
    with pytest.raises(ValueError, match='model.explorer.vlm.pretrained or '
                                         'model.refiner.vlm.pretrained=OUT_DIR'):
        check_checkpoint_fits(_Chain(), dict(state_dict=_Stage().state_dict()), 'stage.pth')


def test_a_part_or_an_unrelated_checkpoint_is_refused():
    part = {f'weight': torch.zeros(2, 3, 3, 3), 'bias': torch.zeros(2)}  # the mask head's alone
    with pytest.raises(ValueError, match=r"keys are the model's under 'mask_head.'.*"
                                         r"model.mask_head.init_cfg=dict\(type='Pretrained'"):
        check_checkpoint_fits(_Chain(), part, 'sam.pth')
    other = dict(state_dict={'backbone.conv1.weight': torch.zeros(3)})
    with pytest.raises(ValueError, match=r'other.pth does not fit _Chain.*Its keys start with '
                                         r'backbone.\* \(1 keys\); the model.s with explorer'):
        check_checkpoint_fits(_Chain(), other, 'other.pth')
    with pytest.raises(ValueError, match='holds a list, not a checkpoint'):
        check_checkpoint_fits(_Chain(), [1, 2], 'list.pth')


def test_a_checkpoint_that_fits_passes():
    chain = _Chain()
    assert check_checkpoint_fits(chain, dict(state_dict=chain.state_dict()), 'chain.pth') == 1.0
    # a DDP checkpoint's `module.` prefix is removed, as mmengine removes it
    wrapped = {f'module.{key}': value for key, value in chain.state_dict().items()}
    assert check_checkpoint_fits(chain, wrapped, 'ddp.pth') == 1.0
    # a fine-tuning checkpoint whose head differs (shape) still fits: most weights load
    partial = dict(chain.state_dict())
    partial['mask_head.weight'] = torch.zeros(5, 3, 3, 3)
    assert 0.05 < check_checkpoint_fits(chain, partial, 'finetune.pth') < 1.0


def test_the_stage_type_is_read_from_the_checkpoint_config():
    # the pretty text closes the model dict on its last key's line, as mmengine writes it
    checkpoint = _stage_checkpoint('GlobalExplorer')
    assert "vlm=dict(\n        type='Qwen25VLAdapter'))\n" in checkpoint['meta']['cfg']
    with pytest.raises(ValueError, match=r'\(GlobalExplorer, vlm'):
        check_checkpoint_fits(_Chain(), checkpoint, osp.join('w', 'iter_1.pth'))
