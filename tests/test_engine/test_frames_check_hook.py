# Copyright (c) finers_mm contributors. All rights reserved.
"""FramesCheckHook: a config read without applying ``frames`` never runs with other sizes."""
import glob
import os.path as osp
from types import SimpleNamespace

import pytest
from mmengine.config import Config

from finers_mm.engine.hooks.frames_check_hook import FramesCheckHook, frame_mismatches
from finers_mm.testing import CONFIGS, config_path
from finers_mm.utils.run_config import load_config

#: the frames of the child config below (the shipped configs use the authors')
SMALL = dict(explorer_size=(1280, 720), region_size=128, refiner_size=(256, 256),
             crop_min_side=256)


def _child(tmp_path, base: str) -> str:
    path = tmp_path / 'small_frames.py'
    path.write_text(f'_base_ = [{base!r}]\nframes = {SMALL!r}\n')
    return str(path)


def _before_run(cfg) -> None:
    FramesCheckHook().before_run(SimpleNamespace(cfg=cfg))


@pytest.mark.parametrize('config', ['finers_tiny_test.py', 'lpr_tiny.py', 'gse_tiny.py'])
def test_a_child_that_changes_frames_read_plainly_is_refused_naming_the_arguments(tmp_path,
                                                                                 config):
    child = _child(tmp_path, config_path('finers', config))
    plain = Config.fromfile(child)
    with pytest.raises(RuntimeError, match='load_config') as error:
        _before_run(plain)
    message = str(error.value)
    assert 'small_frames.py' in message
    if config == 'finers_tiny_test.py':  # the detector's default crop_min_side (512) is counted
        assert 'model.crop_min_side is 512, frames give 256' in message
        assert 'model.explorer.region_size is 256, frames give 128' in message
    assert 'pipeline' in message  # the dataset base's sizes


@pytest.mark.parametrize('config', ['finers_tiny_test.py', 'lpr_tiny.py', 'gse_tiny.py'])
def test_the_child_read_with_load_config_passes(tmp_path, config):
    _before_run(load_config(_child(tmp_path, config_path('finers', config))))


CONFIG_FILES = sorted(glob.glob(osp.join(CONFIGS, 'finers', '*.py')))


@pytest.mark.parametrize('config', CONFIG_FILES, ids=osp.basename)
def test_every_shipped_config_agrees_with_its_frames_when_read_plainly(config):
    cfg = Config.fromfile(config)
    assert cfg.default_hooks.frames_check.type == 'FramesCheckHook'
    assert frame_mismatches(cfg) == []


def test_a_written_size_that_differs_is_named_and_a_config_without_frames_is_not_checked():
    cfg = Config.fromfile(config_path('finers', 'finers_tiny_test.py'))
    cfg.model.refiner.frame_size = (448, 448)
    [problem] = frame_mismatches(cfg)
    assert problem == 'model.refiner.frame_size is (448, 448), frames give (512, 512)'
    cfg.pop('frames')
    _before_run(cfg)  # a stock mmdet config: nothing to compare
