# Copyright (c) finers_mm contributors. All rights reserved.
"""MMSegMaskHead (finers_mm.models.mask_heads.mmseg) on a tiny random mmseg SegFormer (CPU), and the
config swap: the same tiny FineRS test config with SAM or with the mmseg mask head.

Exact checks run mmseg's real ``predict`` path (data preprocessor, postprocess, resize back) with
the segmentor's ``encode_decode`` replaced by a colour rule: "foreground = redder than blue".
"""
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope

from finers_mm.models.mask_heads import MaskPrediction, MMSegMaskHead, select_component
from finers_mm.registry import MODELS
from finers_mm.testing import REPO_ROOT
from finers_mm.testing.chains import MMSEG_CONFIG, chain_config

MEAN = np.array([123.675, 116.28, 103.53])
STD = np.array([58.395, 57.12, 57.375])


def head_kwargs(**overrides) -> dict:
    """The mask head block of the mmseg config, as MMSegMaskHead keyword arguments."""
    kwargs = Config.fromfile(MMSEG_CONFIG).model.mask_head.to_dict()
    kwargs.pop('type')
    kwargs.update(overrides)
    return kwargs


@pytest.fixture(scope='module')
def head():
    torch.manual_seed(0)
    return MMSegMaskHead(**head_kwargs())


# ------------------------------------------------------------------------------------------------
# The colour rule: a crop with red squares (foreground) and a blue square (background)
# ------------------------------------------------------------------------------------------------

GRAY, RED, BLUE = (128, 128, 128), (255, 0, 0), (0, 0, 255)
#: (y1, y2, x1, x2) of the squares of ``scene``
RED_A, RED_B, BLUE_C = (10, 20, 10, 20), (30, 50, 40, 60), (10, 20, 50, 60)


def scene() -> np.ndarray:
    """A (64, 80, 3) uint8 RGB crop: gray, red squares A and B, blue square C."""
    crop = np.empty((64, 80, 3), np.uint8)
    crop[:] = GRAY
    for (y1, y2, x1, x2), colour in ((RED_A, RED), (RED_B, RED), (BLUE_C, BLUE)):
        crop[y1:y2, x1:x2] = colour
    return crop


def square(rect, shape=(64, 80)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    y1, y2, x1, x2 = rect
    mask[y1:y2, x1:x2] = True
    return mask


def red_minus_blue(rgb) -> float:
    """The colour rule's foreground logit of an RGB colour (normalised as the data preprocessor)."""
    normalised = (np.asarray(rgb, np.float64) - MEAN) / STD
    return float(normalised[0] - normalised[2])


class ColourRule:
    """``encode_decode`` stand-in: logits from the normalised RGB input, recording input shapes.

    ``num_classes`` 2: ``[0, red - blue]``; 3: ``[0, red - blue - 1, blue - red - 1]`` (gray is
    class 0 in all three); 1 (a sigmoid head): ``[red - blue]``.
    """

    def __init__(self, num_classes: int = 2):
        self.num_classes = num_classes
        self.shapes = []

    def __call__(self, inputs, batch_img_metas):
        self.shapes.append(tuple(inputs.shape))
        rule = (inputs[:, 0] - inputs[:, 2])[:, None]
        if self.num_classes == 1:
            return rule
        zero = torch.zeros_like(rule)
        logits = [zero, rule] if self.num_classes == 2 else [zero, rule - 1, -rule - 1]
        return torch.cat(logits, dim=1)


@pytest.fixture
def colour_rule(head, monkeypatch):
    rule = ColourRule()
    monkeypatch.setattr(head.segmentor, 'encode_decode', rule)
    return rule


def centre(rect):
    """The continuous centre point of a (y1, y2, x1, x2) square."""
    y1, y2, x1, x2 = rect
    return [(x1 + x2) / 2, (y1 + y2) / 2]


WHOLE = [0, 0, 80, 64]


def predict_one(head, box, points=None, labels=None, crop=None):
    crop = scene() if crop is None else crop
    points = None if points is None else np.asarray(points, np.float32)[None]
    labels = None if labels is None else np.asarray(labels)[None]
    prediction = head.predict([crop], np.asarray([box], np.float32), points, labels)
    return prediction.masks[0], float(prediction.scores[0])


def test_point_selects_its_component_with_the_mean_foreground_probability(head, colour_rule):
    mask, score = predict_one(head, WHOLE, [centre(RED_A), centre(RED_A)])
    np.testing.assert_array_equal(mask, square(RED_A))
    expected = 1 / (1 + np.exp(-red_minus_blue(RED)))  # softmax of [0, logit], uniform on A
    assert score == pytest.approx(expected, rel=1e-5)


def test_points_on_two_components_keep_both(head, colour_rule):
    mask, _ = predict_one(head, WHOLE, [centre(RED_A), centre(RED_B)])
    np.testing.assert_array_equal(mask, square(RED_A) | square(RED_B))


def test_without_a_point_on_the_foreground_the_box_selects(head, colour_rule):
    # points on the blue square (background): the component overlapping the box most
    # (B's 200 px inside the box beat A's 100)
    mask, _ = predict_one(head, [0, 0, 80, 40], [centre(BLUE_C)] * 2)
    np.testing.assert_array_equal(mask, square(RED_B) & square((0, 40, 0, 80)))
    mask, _ = predict_one(head, [35, 25, 70, 60])  # no points at all
    np.testing.assert_array_equal(mask, square(RED_B))


def test_channel_order_blue_is_background(head, colour_rule):
    """RGB crops enter as BGR, the preprocessor's bgr_to_rgb turns them back: blue stays blue."""
    mask, score = predict_one(head, [48, 8, 62, 22], [centre(BLUE_C)] * 2)
    assert not mask.any() and score == 0.0


@pytest.mark.parametrize('clip_to_box', [True, False])
def test_clip_to_box(head, colour_rule, monkeypatch, clip_to_box):
    monkeypatch.setattr(head, 'clip_to_box', clip_to_box)
    mask, _ = predict_one(head, [40, 30, 50, 50], [[45.5, 40.5]] * 2)  # left half of B
    expected = square(RED_B) & square((30, 50, 40, 50)) if clip_to_box else square(RED_B)
    np.testing.assert_array_equal(mask, expected)


def test_absent_or_unusable_prompts_give_empty_masks_without_running(head, colour_rule):
    crops = [scene()] * 3
    boxes = np.array([[0, 0, 0, 0], [100, 100, 120, 120], [np.nan, 0, 10, 10]], np.float32)
    prediction = head.predict(crops, boxes, np.full((3, 2, 2), 5.5))
    assert all(not m.any() and m.shape == (64, 80) for m in prediction.masks)
    np.testing.assert_array_equal(prediction.scores, 0)
    assert colour_rule.shapes == []


def test_interface_matches_the_sam_head(head):
    rng = np.random.default_rng(0)
    sizes = ((40, 60), (64, 64), (100, 30))
    crops = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    boxes = torch.tensor([[5, 5, 30, 20], [10, 10, 50, 50], [2, 20, 25, 80]], dtype=torch.float32)
    points = torch.tensor([[[10.5, 10.5], [20.5, 15.5]], [[20.5, 20.5], [30.5, 30.5]],
                           [[10.5, 40.5], [12.5, 60.5]]])
    prediction = head.predict(crops, boxes, points)
    assert isinstance(prediction, MaskPrediction)
    assert [m.shape for m in prediction.masks] == list(sizes)
    assert all(m.dtype == bool for m in prediction.masks)
    assert prediction.scores.shape == (3, ) and prediction.scores.dtype == np.float32
    for mask, box, score in zip(prediction.masks, boxes.int().tolist(), prediction.scores):
        x1, y1, x2, y2 = box
        assert not mask[:y1].any() and not mask[y2:].any()  # clipped to the box
        assert not mask[:, :x1].any() and not mask[:, x2:].any()
        assert (0.5 <= score <= 1.0) if mask.any() else score == 0.0
    with pytest.raises(ValueError, match='boxes must be'):
        head.predict(crops, boxes[:2], points)


def test_same_size_crops_are_batched_and_each_runs_once(head, monkeypatch):
    rng = np.random.default_rng(1)
    sizes = ((40, 60), (64, 64), (40, 60), (64, 64), (40, 60))
    crops = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    boxes = np.array([[0, 0, w, h] for h, w in sizes], np.float32)
    boxes[3] = 0  # absent: never segmented
    batches = []
    handle = head.segmentor.backbone.register_forward_hook(
        lambda module, args, out: batches.append(tuple(args[0].shape)))
    try:
        monkeypatch.setattr(head, 'batch_size', 2)
        batched = head.predict(crops, boxes)
        monkeypatch.setattr(head, 'batch_size', 1)
        alone = head.predict(crops, boxes)
    finally:
        handle.remove()
    assert sorted(batches[:3]) == [(1, 3, 40, 60), (1, 3, 64, 64), (2, 3, 40, 60)]
    assert len(batches) == 3 + 4
    for together, single in zip(batched.masks, alone.masks):
        np.testing.assert_array_equal(together, single)
    np.testing.assert_allclose(batched.scores, alone.scores, rtol=1e-5)


def test_scale_rescales_the_input_and_the_mask_comes_back_at_crop_size(monkeypatch):
    head = MMSegMaskHead(**head_kwargs(scale=(40, 40)))
    rule = ColourRule()
    monkeypatch.setattr(head.segmentor, 'encode_decode', rule)
    mask, _ = predict_one(head, [30, 20, 70, 60], [centre(RED_B)] * 2)
    assert rule.shapes == [(1, 3, 32, 40)]  # 64 x 80 fitted into 40 x 40, aspect kept
    assert mask.shape == (64, 80)
    gt = square(RED_B)
    assert (mask & gt).sum() / (mask | gt).sum() > 0.8


@pytest.mark.parametrize('num_classes, foreground_class, points, expected', [
    (3, 2, [centre(BLUE_C)] * 2, [BLUE_C]),
    (3, None, [centre(RED_A), centre(BLUE_C)], [RED_A, BLUE_C]),
    (1, 1, [centre(RED_A)] * 2, [RED_A]),
])
def test_foreground_classes_and_a_sigmoid_head(monkeypatch, num_classes, foreground_class, points,
                                               expected):
    decode_head = head_kwargs()['segmentor']['decode_head']
    if num_classes == 1:
        decode_head.update(num_classes=2, out_channels=1, threshold=0.5,
                           loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True))
    else:
        decode_head.update(num_classes=num_classes)
    kwargs = head_kwargs(foreground_class=foreground_class)
    kwargs['segmentor']['decode_head'] = decode_head
    head = MMSegMaskHead(**kwargs)
    monkeypatch.setattr(head.segmentor, 'encode_decode', ColourRule(num_classes))
    mask, score = predict_one(head, WHOLE, points)
    np.testing.assert_array_equal(mask, np.logical_or.reduce([square(r) for r in expected]))
    assert 0.5 < score <= 1.0


# ------------------------------------------------------------------------------------------------
# select_component on hand-made foreground maps
# ------------------------------------------------------------------------------------------------


def test_select_component_rules():
    fg = np.zeros((20, 30), bool)
    fg[2:6, 2:6] = True  # component 1: 16 px
    fg[10:18, 10:20] = True  # component 2: 80 px
    fg[5, 6:10] = True  # a bridge to nowhere, part of component 1
    whole = [0, 0, 30, 20]
    small, big = fg & square((0, 8, 0, 12), fg.shape), fg & square((8, 20, 8, 30), fg.shape)
    np.testing.assert_array_equal(select_component(fg, whole, [[3.5, 3.5]]), small)
    np.testing.assert_array_equal(select_component(fg, whole), big)  # most overlap
    # a negative point vetoes its component, also as the box's fallback
    np.testing.assert_array_equal(
        select_component(fg, whole, [[3.5, 3.5], [12.5, 12.5]], [1, 0]), small)
    np.testing.assert_array_equal(select_component(fg, whole, [[12.5, 12.5]], [0]), small)
    # points outside the map or on background are ignored; a box without foreground keeps nothing
    np.testing.assert_array_equal(select_component(fg, whole, [[-3, 4], [29.5, 0.5]]), big)
    assert not select_component(fg, [22, 0, 30, 8], [[3.5, 3.5]]).any()
    # 8-connectivity: a diagonal touch joins
    diagonal = np.zeros((4, 4), bool)
    diagonal[0, 0] = diagonal[1, 1] = True
    np.testing.assert_array_equal(select_component(diagonal, [0, 0, 4, 4], [[0.5, 0.5]]), diagonal)
    # a fractional box covers every pixel it touches
    np.testing.assert_array_equal(select_component(np.ones((4, 4), bool), [0.5, 0.5, 2.2, 1.9]),
                                  square((0, 2, 0, 3), (4, 4)))


# ------------------------------------------------------------------------------------------------
# Build: registry, scope, checkpoint, bad input
# ------------------------------------------------------------------------------------------------


def test_frozen_and_built_from_the_finers_mm_registry():
    init_default_scope('finers_mm')
    head = MODELS.build(dict(type='MMSegMaskHead', **head_kwargs()))
    assert isinstance(head, MMSegMaskHead)
    assert not any(p.requires_grad for p in head.parameters())
    head.train()
    assert not head.training and not head.segmentor.training


def test_builds_in_mmseg_scope_without_leaking_it():
    """After an mmdet Runner the default scope is mmdet: plain mmseg type names still build."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        MMSegMaskHead(**head_kwargs())
        assert DefaultScope.get_current_instance().scope_name == 'mmdet'


def test_checkpoint_and_config_file_round_trip(head, tmp_path):
    checkpoint = str(tmp_path / 'segformer_tiny.pth')
    torch.save(dict(state_dict=head.segmentor.state_dict(),
                    meta=dict(dataset_meta=dict(classes=('background', 'object')))), checkpoint)
    config_file = str(tmp_path / 'segformer_tiny.py')
    Config(dict(model=head_kwargs()['segmentor'])).dump(config_file)
    torch.manual_seed(123)  # different random weights, replaced by the checkpoint's
    loaded = MMSegMaskHead(**head_kwargs(segmentor=config_file, checkpoint=checkpoint))
    for name, value in head.segmentor.state_dict().items():
        torch.testing.assert_close(loaded.segmentor.state_dict()[name], value)
    crop = np.random.default_rng(2).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    box = np.array([[4, 4, 44, 44]], np.float32)
    expected, got = head.predict([crop], box), loaded.predict([crop], box)
    np.testing.assert_array_equal(expected.masks[0], got.masks[0])
    np.testing.assert_allclose(expected.scores, got.scores, rtol=1e-6)


@pytest.mark.parametrize('overrides, error, words', [
    (dict(checkpoint='/no/such/segformer.pth'), FileNotFoundError,
     ["'checkpoint'", '/no/such/segformer.pth']),
    (dict(segmentor='/no/such/segformer_config.py'), FileNotFoundError,
     ["'segmentor'", '/no/such/segformer_config.py']),
    (dict(segmentor=dict(type='NoSuchSegmentor', data_preprocessor=dict())), KeyError,
     ["'segmentor'", 'NoSuchSegmentor']),
    (dict(segmentor=dict(type='SegTTAModel', module=head_kwargs()['segmentor'],
                         data_preprocessor=dict(type='SegDataPreProcessor'))), TypeError,
     ["'segmentor'", 'SegTTAModel', 'not an mmseg segmentor']),
    (dict(segmentor=dict(type='EncoderDecoder')), KeyError, ["'segmentor'", 'data_preprocessor']),
    (dict(foreground_class=2), ValueError, ["'foreground_class'", '[0, 2)']),
    (dict(batch_size=0), ValueError, ['batch_size']),
])
def test_bad_input_fails_at_build_naming_the_key(overrides, error, words):
    with pytest.raises(error) as info:
        MMSegMaskHead(**head_kwargs(**overrides))
    for word in words:
        assert word in str(info.value)


def test_unknown_nested_type_names_the_segmentor_key():
    kwargs = head_kwargs()
    kwargs['segmentor']['backbone']['type'] = 'NoSuchBackbone'
    with pytest.raises(KeyError, match=r"'segmentor'.*NoSuchBackbone"):
        MMSegMaskHead(**kwargs)


# ------------------------------------------------------------------------------------------------
# Config swap: the same tiny FineRS chain with SAM and with the mmseg mask head
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('option, error, words', [
    ('model.mask_head.checkpoint=/no/such/segformer.pth', FileNotFoundError,
     ["'checkpoint'", '/no/such/segformer.pth']),
    ('model.mask_head.segmentor.type=NoSuchSegmentor', KeyError,
     ["'segmentor'", 'NoSuchSegmentor']),
    ('model.mask_head.type=NoSuchMaskHead', KeyError, ['NoSuchMaskHead']),
])
def test_bad_mask_head_config_fails_when_the_detector_is_built(tiny_models, option, error, words):
    cfg = chain_config(MMSEG_CONFIG, tiny_models)
    key, value = option.split('=')
    cfg.merge_from_dict({key: value})
    init_default_scope('finers_mm')
    with pytest.raises(error) as info:
        MODELS.build(cfg.model)
    for word in words:
        assert re.search(re.escape(word), str(info.value))


@pytest.mark.slow
def test_tools_test_runs_the_mmseg_config(tiny_models, tmp_path):
    """tools/test.py on the swapped config: the mmseg head builds in the Runner's scope."""
    result = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'test.py'), MMSEG_CONFIG,
         '--work-dir', str(tmp_path), '--cfg-options',
         f"model.explorer.vlm.pretrained={tiny_models['qwen2_5_vl']}",
         f"model.refiner.vlm.pretrained={tiny_models['qwen2_5_vl']}"],
        cwd=REPO_ROOT, env=dict(os.environ, OMP_NUM_THREADS='1'), capture_output=True, text=True,
        timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'finers/gIoU' in result.stdout and 'finers/num_samples: 12' in result.stdout
