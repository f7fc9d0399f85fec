# Copyright (c) finers_mm contributors. All rights reserved.
"""``frames`` is set once and honoured: a child config, or ``--cfg-options frames.*``, that changes
it moves the pipelines, the models and the region search with it
(:mod:`finers_mm.utils.frames_config`, applied by :func:`finers_mm.utils.run_config.load_config`).
"""
import copy
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from finers_mm.registry import MODELS, TRANSFORMS
from finers_mm.testing import REPO_ROOT
from finers_mm.testing.tools import load_tool
from finers_mm.utils.frames_config import FRAME_ARGUMENTS, apply_frames, register_frame_arguments
from finers_mm.utils.run_config import load_config, load_run_config

CONFIGS = osp.join(REPO_ROOT, 'configs', 'finers')
FRAMES = dict(explorer_size=(1280, 720), region_size=128, refiner_size=(256, 256),
              crop_min_side=256)


@pytest.fixture(scope='module', autouse=True)
def _scope():
    init_default_scope('finers_mm')


def _child(tmp_path, base: str, frames: dict = FRAMES) -> str:
    """A child config of ``configs/finers/<base>`` that only changes ``frames``."""
    path = tmp_path / f'{osp.splitext(base)[0]}_frames.py'
    path.write_text(f"_base_ = ['{osp.join(CONFIGS, base)}']\nframes = {frames!r}\n")
    return str(path)


def _transforms(cfg: Config, loader: str) -> dict:
    """The built ExplorerView and RefinerCrop of a loader's pipeline, by type."""
    return {step['type']: TRANSFORMS.build(copy.deepcopy(step))
            for step in cfg[loader].dataset.pipeline
            if step['type'] in ('ExplorerView', 'RefinerCrop')}


def _assert_pipelines_follow(cfg: Config, frames: dict) -> None:
    train = _transforms(cfg, 'train_dataloader')
    assert train['ExplorerView'].frame_size == frames['explorer_size']
    assert train['ExplorerView'].region_size == frames['region_size']
    assert train['RefinerCrop'].frame_size == frames['refiner_size']
    assert train['RefinerCrop'].min_side == frames['crop_min_side']
    for step in cfg.train_pipeline + cfg.test_pipeline:  # the bases' pipeline variables too
        if step['type'] == 'ExplorerView':
            assert tuple(step['frame_size']) == frames['explorer_size']


def _tool(name: str):
    return load_tool(f'{name}.py')


def test_a_child_frames_reach_the_explorer_pipelines_and_model(tmp_path):
    cfg = load_config(_child(tmp_path, 'gse_tiny.py'))
    assert cfg.frames == FRAMES
    _assert_pipelines_follow(cfg, FRAMES)
    assert cfg.model.type == 'GlobalExplorer' and cfg.model.region_size == 128


def test_a_child_frames_reach_the_refiner_model(tmp_path):
    cfg = load_config(_child(tmp_path, 'lpr_qwen7b.py'))
    _assert_pipelines_follow(cfg, FRAMES)
    assert cfg.model.type == 'LocalRefiner' and tuple(cfg.model.frame_size) == (256, 256)


def test_a_child_frames_reach_the_built_chain_and_its_test_pipeline(tmp_path, tiny_models):
    cfg = load_config(_child(tmp_path, 'finers_tiny_test.py'), {
        'model.explorer.vlm.pretrained': tiny_models['qwen2_5_vl'],
        'model.refiner.vlm.pretrained': tiny_models['qwen2_5_vl'],
        'model.mask_head.config': tiny_models['sam_config'],
        'model.mask_head.checkpoint': tiny_models['sam']})
    explorer_view = _transforms(cfg, 'test_dataloader')['ExplorerView']
    assert (explorer_view.frame_size, explorer_view.region_size) == ((1280, 720), 128)
    detector = MODELS.build(cfg.model)
    assert detector.crop_min_side == 256
    assert detector.explorer.prompts.region_size == 128
    assert detector.refiner.frame_size == (256, 256)


def test_a_child_frames_reach_the_region_search(tmp_path):
    cfg = load_run_config(_child(tmp_path, 'region_search_tiny.py'))
    candidates, _ = _tool('search_best_region').search_settings(cfg)
    assert candidates.explorer_size == (1280, 720)
    assert (candidates.region_size, candidates.crop_min_side) == (128, 256)
    assert tuple(cfg.model.frame_size) == (256, 256)


def test_cfg_options_change_frames_everywhere():
    """``--cfg-options frames.region_size=128 frames.explorer_size="(1280,720)"``, as the tools
    pass them (load_run_config)."""
    cfg = load_run_config(osp.join(CONFIGS, 'finers_tiny_test.py'),
                          {'frames.region_size': 128, 'frames.explorer_size': (1280, 720)})
    explorer_view = _transforms(cfg, 'test_dataloader')['ExplorerView']
    assert (explorer_view.frame_size, explorer_view.region_size) == ((1280, 720), 128)
    assert cfg.model.explorer.region_size == 128
    assert tuple(cfg.model.refiner.frame_size) == (512, 512) and cfg.model.crop_min_side == 512


def test_apply_frames_sets_every_listed_argument_and_reports_the_changes():
    cfg = Config(dict(
        frames=FRAMES,
        train_pipeline=[dict(type='ExplorerView', frame_size=(1920, 1080), region_size=256),
                        dict(type='finers_mm.RefinerCrop', frame_size=[256, 256], min_side=512)],
        model=dict(type='FineRSDetector', crop_min_side=512,
                   explorer=dict(type='GlobalExplorer'), refiner=dict(type='LocalRefiner'))))
    changed = apply_frames(cfg)
    assert sorted(changed) == sorted([
        'train_pipeline.0.frame_size', 'train_pipeline.0.region_size', 'train_pipeline.1.min_side',
        'model.crop_min_side', 'model.explorer.region_size', 'model.refiner.frame_size'])
    assert cfg.train_pipeline[0].frame_size == (1280, 720)
    assert cfg.train_pipeline[1].min_side == 256 and cfg.model.refiner.frame_size == (256, 256)
    assert apply_frames(Config(dict(model=dict(type='GlobalExplorer')))) == []  # no frames


@pytest.mark.parametrize('frames, message', [
    (dict(FRAMES, region_size=0), 'frames.region_size must be a positive int'),
    (dict(FRAMES, explorer_size=(1280, )), r'frames.explorer_size must be \(width, height\)'),
    (dict(FRAMES, crop_min_side='512'), 'frames.crop_min_side must be a positive int'),
    ({key: value for key, value in FRAMES.items() if key != 'refiner_size'},
     r"has no \['refiner_size'\]"),
    ([1280, 720], 'must be a dict'),
])
def test_a_malformed_frames_is_refused_naming_the_config_and_key(tmp_path, frames, message):
    # _delete_: replace the base's frames instead of merging into them
    value = f'dict(_delete_=True, **{frames!r})' if isinstance(frames, dict) else repr(frames)
    path = tmp_path / 'bad_frames.py'
    path.write_text(f"_base_ = ['{osp.join(CONFIGS, 'region_search_tiny.py')}']\n"
                    f'frames = {value}\n')
    with pytest.raises(ValueError, match=message) as error:
        load_config(str(path))
    assert 'bad_frames.py' in str(error.value)


def test_a_project_registers_the_frame_arguments_of_its_components():
    saved = copy.deepcopy(FRAME_ARGUMENTS)
    try:
        register_frame_arguments('ProjectProposer', crop_min_side='crop_min_side')
        cfg = Config(dict(frames=FRAMES, model=dict(type='ProjectProposer', crop_min_side=512)))
        assert apply_frames(cfg) == ['model.crop_min_side'] and cfg.model.crop_min_side == 256
        with pytest.raises(ValueError, match='not keys of `frames`'):
            register_frame_arguments('ProjectProposer', min_side='crop_side')
    finally:
        FRAME_ARGUMENTS.clear()
        FRAME_ARGUMENTS.update(saved)
