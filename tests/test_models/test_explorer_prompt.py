# Copyright (c) finers_mm contributors. All rights reserved.
"""The explorer prompt states its region in the model's coordinates, and the same prompt in training
(SFT loss, GRPO rollouts) and at inference (``explore``), for Qwen2.5-VL (absolute pixels) and
Qwen2-VL / Qwen3-VL (0..1000)."""
import copy
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from finers_mm.models.stages import Query
from finers_mm.registry import DATASETS, MODELS
from finers_mm.structures.parsing import parse_completion
from finers_mm.testing import REPO_ROOT
from finers_mm.testing.tiny_models import ADAPTER_TYPES

BUNDLED = osp.join(REPO_ROOT, 'finers_mm', 'data', 'synthetic')
#: the region the prompt must state in a 1920 x 1080 frame for a 256 region
#: the region in the model's coordinates: Qwen2.5-VL's tiny budget shows the 1920 x 1080 frame at
#: 196 x 112 model pixels (256 * 196 / 1920 = 26.1, 256 * 112 / 1080 = 26.5)
EXPECTED_REGION = dict(qwen2_5_vl=(26, 27), qwen2_vl=(133, 237), qwen3_vl=(133, 237))
#: what the prompts must say the box's numbers are
RELATIVE = 'in coordinates relative to this image, from 0 to 1000 along each side'
COORDINATES = dict(qwen2_5_vl='in pixels of this image', qwen2_vl=RELATIVE, qwen3_vl=RELATIVE)


@pytest.fixture(scope='module')
def train_dataset():
    init_default_scope('finers_mm')
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', '_base_', 'datasets', 'finers4k.py'))
    dataset_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    dataset_cfg.update(data_root=BUNDLED + '/', ann_file='annotations/train.json')
    return DATASETS.build(dataset_cfg)


def _explorer(model_dirs, family, **kwargs):
    vlm = dict(type=ADAPTER_TYPES[family], pretrained=model_dirs[family],
               generation=dict(max_new_tokens=4))
    return MODELS.build(dict(type='GlobalExplorer', vlm=vlm, train_mode='sft', **kwargs))


def _record_prompts(model, monkeypatch):
    """Every prompt the adapter is given, as it is given (all paths go through build_inputs)."""
    recorded = []
    build_inputs = model.vlm.build_inputs

    def recording(images, prompts):
        recorded.extend(prompts)
        return build_inputs(images, prompts)

    monkeypatch.setattr(model.vlm, 'build_inputs', recording)
    return recorded


@pytest.mark.parametrize('family', list(ADAPTER_TYPES))
def test_train_and_inference_prompts_are_identical(family, model_dirs,
                                                   train_dataset, monkeypatch):
    model = _explorer(model_dirs, family)
    batch = pseudo_collate([train_dataset[i] for i in range(len(train_dataset))])
    recorded = _record_prompts(model, monkeypatch)

    data = model.data_preprocessor(copy.deepcopy(batch), True)
    samples = data['data_samples']
    views = model.views(data['inputs'], samples)
    assert {(v.shape[1], v.shape[0]) for v in views} == {(1920, 1080)}
    model.loss(data['inputs'], samples)  # SFT: the prompts of the loss
    train_prompts = list(recorded)
    # GRPOHook's rollout prompts
    assert model.build_prompts(samples, views) == train_prompts

    recorded.clear()
    data = model.data_preprocessor(copy.deepcopy(batch), False)
    model.predict(data['inputs'], data['data_samples'])  # inference: explore()
    assert recorded == train_prompts

    width, height = EXPECTED_REGION[family]
    for prompt, sample in zip(train_prompts, samples):
        assert f'identify a {width}*{height} bounding box' in prompt
        assert (f'x2 - x1 = y2 - y1 = {width}' if width == height
                else f'x2 - x1 = {width} and y2 - y1 = {height}') in prompt
        assert COORDINATES[family] in prompt
        assert prompt == model.prompts.build('explorer', sample.question, sample.question_type,
                                             sample.get('options', None),
                                             region=(width, height),
                                             coordinate_scale=model.vlm.relative_scale)


@pytest.mark.parametrize('family', ['qwen2_vl', 'qwen3_vl'])
def test_stated_region_matches_the_sft_target_in_model_units(family, model_dirs,
                                                             train_dataset):
    """A relative-coordinate model is told the size its target boxes have (up to rounding)."""
    model = _explorer(model_dirs, family)
    data = model.data_preprocessor(
        pseudo_collate([train_dataset[i] for i in range(len(train_dataset))]), True)
    views = model.views(data['inputs'], data['data_samples'])
    width, height = model.prompt_region((1920, 1080))
    assert (width, height) == EXPECTED_REGION[family]
    for sample, view in zip(data['data_samples'], views):
        box = parse_completion(model.target_text(sample, view), 'explorer').bbox
        assert abs(box[2] - box[0] - width) <= 1 and abs(box[3] - box[1] - height) <= 1


def test_prompt_follows_the_frame_and_region_size(model_dirs):
    query = Query('the red car', 'segmentation')
    model = _explorer(model_dirs, 'qwen3_vl', region_size=128)
    assert 'identify a 200*200 bounding box' in model.build_prompt(query, (640, 640))
    assert 'identify a 67*119 bounding box' in model.build_prompt(query, (1920, 1080))
    # Qwen2.5-VL in model-image pixels: 640 x 640 is seen at 140 x 140 (128 * 140 / 640 = 28)
    model = _explorer(model_dirs, 'qwen2_5_vl', region_size=128)
    assert 'identify a 28*28 bounding box' in model.build_prompt(query, (640, 640))
    # in frame pixels (the authors' convention) the prompt states the frame's 128
    model = _explorer(model_dirs, 'qwen2_5_vl', region_size=128)
    model.vlm.coordinates = 'frame'
    assert 'identify a 128*128 bounding box' in model.build_prompt(query, (640, 640))


def test_explore_states_the_region_of_each_view(model_dirs, monkeypatch):
    model = _explorer(model_dirs, 'qwen3_vl')
    recorded = _record_prompts(model, monkeypatch)
    views = [np.zeros((1080, 1920, 3), np.uint8), np.zeros((512, 512, 3), np.uint8)]
    queries = [Query('the red car', 'segmentation')] * 2
    outputs = model.explore(views, [(3840, 2160), (1024, 1024)], queries)
    assert len(outputs) == 2
    assert 'identify a 133*237 bounding box' in recorded[0]
    assert 'identify a 500*500 bounding box' in recorded[1]
    with pytest.raises(ValueError, match='views for'):
        model.explore(views, [(3840, 2160)], queries[:1])


def test_explorer_prompt_needs_the_frame_size(model_dirs, train_dataset):
    model = _explorer(model_dirs, 'qwen3_vl')
    with pytest.raises(ValueError, match='frame size'):
        model.build_prompt(Query('the red car', 'segmentation'))
    data = model.data_preprocessor(pseudo_collate([train_dataset[0]]), True)
    sample = data['data_samples'][0]
    views = model.views(data['inputs'], [sample])
    with pytest.raises(ValueError, match='2 views for 1 samples'):
        model.build_prompts([sample], views * 2)
    assert '133*237' in model.build_prompts([sample], views)[0]


@pytest.mark.parametrize('family', list(ADAPTER_TYPES))
def test_refiner_prompt_states_the_models_coordinates(family, model_dirs,
                                                      monkeypatch):
    init_default_scope('finers_mm')
    vlm = dict(type=ADAPTER_TYPES[family], pretrained=model_dirs[family],
               generation=dict(max_new_tokens=4))
    refiner = MODELS.build(dict(type='LocalRefiner', vlm=vlm, train_mode='sft'))
    recorded = _record_prompts(refiner, monkeypatch)
    image = np.zeros((600, 800, 3), np.uint8)
    query = Query('the red car', 'open')
    refiner.refine([image], [np.array([0, 0, 512, 512])], [query])
    assert recorded == [refiner.build_prompt(query)]
    assert f'"response", all {COORDINATES[family]}' in recorded[0]
