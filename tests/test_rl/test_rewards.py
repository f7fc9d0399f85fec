# Copyright (c) finers_mm contributors. All rights reserved.
"""GRPO reward terms (finers_mm.rl.rewards): every term positive / negative / at its threshold, in
model coordinates of non-trivial conventions; absent targets; gaming; the composite; fuzzing."""
import json
import os.path as osp
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mmengine.config import Config

from finers_mm.registry import REWARDS
from finers_mm.rl.rewards import (AnswerReward, BoxIoUReward, BoxL1Reward, CompositeReward,
                                  IoUReward, JsonFormatReward, MaskIoUReward, PointsReward,
                                  RegionContainsReward, RegionIoUReward, RegionL1Reward,
                                  RegionSizeReward, RewardResult, ThinkFormatReward, box_iou,
                                  points_distance)
from finers_mm.structures.frames import frame_to_window, full_window
from finers_mm.structures.parsing import parse_completion
from finers_mm.structures.reward_sample import RewardSample, to_frame
from finers_mm.testing import REPO_ROOT

_CONFIGS = osp.join(REPO_ROOT, 'configs', 'finers')
#: the authors' reward term lists, as the training configs state them (the one place they live)
AUTHORS_REFINER_TERMS = tuple(Config.fromfile(osp.join(_CONFIGS, 'lpr_qwen7b.py')).lpr_reward.terms)
AUTHORS_EXPLORER_TERMS = tuple(Config.fromfile(osp.join(_CONFIGS, 'gse_qwen7b.py')).gse_reward.terms)

FOUND = 'The object is found.'
OPTIONS = {'A': 'red car', 'B': 'blue truck', 'C': 'green bus', 'D': 'white van'}


def _refiner(model=(504, 504), frame=(512, 512), **kwargs):
    """A refiner sample; the default model size is Qwen2.5-VL's smart-resize of a 512 crop."""
    fields = dict(stage='refiner', frame_size=frame, model_coord_size=model,
                  question_type='segmentation', answer=FOUND, gt_box=[100, 120, 160, 200],
                  gt_points=[[120, 150], [140, 170]])
    fields.update(kwargs)
    return RewardSample(**fields)


def _explorer(model=(1000, 1000), frame=(1920, 1080), **kwargs):
    """An explorer sample; the default model size is the 0-1000 relative convention."""
    fields = dict(stage='explorer', frame_size=frame, model_coord_size=model,
                  question_type='segmentation', answer=FOUND, gt_box=[900, 500, 920, 515],
                  target_region=[780, 380, 1036, 636], region_size=256)
    fields.update(kwargs)
    return RewardSample(**fields)


def _to_model(coords, sample):
    """Frame pixels -> model coordinates (the inverse map, written independently of to_frame)."""
    coords = np.asarray(coords, dtype=np.float64)
    (width, height), (sx, sy) = sample.frame_size, sample.model_coord_size
    return (coords * np.array([sx / width, sy / height] * (coords.shape[-1] // 2))).tolist()


def _text(sample, box, points=None, response=FOUND, think='Looking at the image.'):
    """A completion answering ``box`` (and ``points``) given in FRAME pixels of ``sample``."""
    data = {'bbox': _to_model(box, sample)}
    if points is not None:
        data['points_1'], data['points_2'] = _to_model(points, sample)
    data['response'] = response
    return f'<think>{think}</think><answer>{json.dumps(data)}</answer>'


def _score(term, sample, text):
    return term(parse_completion(text, sample.stage), sample)


# ------------------------------------------------------------------------------------------------
# Samples and the model -> frame map
# ------------------------------------------------------------------------------------------------


def test_to_frame_scales_per_axis():
    sample = _explorer()
    np.testing.assert_allclose(to_frame([500, 500], sample), [960, 540])
    np.testing.assert_allclose(to_frame([[0, 0, 1000, 1000]], sample), [[0, 0, 1920, 1080]])
    np.testing.assert_allclose(to_frame([504, 252], _refiner()), [512, 256])
    with pytest.raises(ValueError, match=r'\(\.\.\., 4\)'):
        to_frame([1, 2, 3], sample)


@pytest.mark.parametrize('model', [(504, 504), (1000, 1000), (1932, 1092), (512, 512)])
def test_to_frame_is_the_adapters_model_to_frame(model):
    """Same map as BaseVLMAdapter.model_to_frame (frame_to_window over the full frame)."""
    sample = _explorer(model=model)
    coords = np.random.default_rng(0).uniform(0, 1000, (5, 4))
    expected = frame_to_window(coords, full_window(sample.frame_size), model)
    np.testing.assert_allclose(to_frame(coords, sample), expected, rtol=1e-6)


@pytest.mark.parametrize('kwargs, match', [
    (dict(stage='gse'), 'unknown stage'),
    (dict(question_type='referring'), 'unknown question type'),
    (dict(frame_size=(0, 512)), 'frame_size'),
    (dict(model_coord_size=(504, float('nan'))), 'model_coord_size'),
    (dict(gt_box=[1, 2, 3]), 'gt_box'),
    (dict(gt_box=[10, 10, 5, 20]), 'x2 > x1'),
    (dict(gt_points=[[1, 2]]), 'gt_points'),
    (dict(target_region=[0, 0, 10, float('inf')]), 'target_region'),
    (dict(region_size=0), 'region_size'),
    (dict(image=np.zeros((512, 500, 3), np.uint8)), 'image'),
    (dict(image=np.zeros((512, 512, 3), np.float32)), 'image'),
    (dict(gt_mask=np.zeros((500, 512), bool)), 'gt_mask'),
])
def test_bad_samples_fail_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _refiner(**kwargs)


def test_sample_stores_arrays():
    sample = _refiner(gt_mask=np.ones((512, 512), np.uint8))
    assert sample.gt_box.dtype == np.float64 and sample.gt_points.shape == (2, 2)
    assert sample.gt_mask.dtype == bool


# ------------------------------------------------------------------------------------------------
# Format terms
# ------------------------------------------------------------------------------------------------


def test_think_format():
    sample, term = _refiner(), ThinkFormatReward()
    good = _text(sample, [100, 120, 160, 200], [[120, 150], [140, 170]])
    assert _score(term, sample, good) == 1.0
    assert _score(term, sample, '  ' + good + '\n') == 1.0
    assert _score(term, sample, good + ' Done.') == 0.0
    assert _score(term, sample, good.replace('<think>', '')) == 0.0
    assert _score(term, sample, '<think>x</think><answer>not json</answer>') == 1.0


def test_json_format_per_stage():
    term = JsonFormatReward()
    refiner, explorer = _refiner(), _explorer()
    box_only = _text(refiner, [100, 120, 160, 200])
    assert _score(term, refiner, _text(refiner, [100, 120, 160, 200], [[1, 2], [3, 4]])) == 1.0
    assert _score(term, refiner, box_only) == 0.0  # the refiner needs points
    assert _score(term, explorer, _text(explorer, [780, 380, 1036, 636])) == 1.0
    assert _score(term, explorer, _text(explorer, [780, 380, 1036, 636], response=' ')) == 0.0
    assert _score(term, explorer, _text(explorer, [0, 0, 0, 0])) == 0.0  # absent: refiner only
    assert _score(term, refiner, _text(refiner, [0, 0, 0, 0], [[0, 0], [0, 0]])) == 1.0


# ------------------------------------------------------------------------------------------------
# Refiner localisation terms
# ------------------------------------------------------------------------------------------------


def test_box_iou_values_are_continuous():
    assert box_iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)  # authors' +1 areas: 2/7
    assert box_iou([0, 0, 10, 10], [10, 0, 20, 10]) == 0.0
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0


@pytest.mark.parametrize('model', [(504, 504), (1000, 1000)])
@pytest.mark.parametrize('box, expected', [
    ([100, 120, 160, 200], 1.0),  # exact
    ([100, 120, 160, 160.1], 1.0),  # IoU 0.50125
    ([100, 120, 160, 159.9], 0.0),  # IoU 0.49875
    ([200, 220, 260, 300], 0.0),  # disjoint
])
def test_box_iou_threshold(model, box, expected):
    sample = _refiner(model=model)
    assert _score(BoxIoUReward(), sample, _text(sample, box, [[120, 150], [140, 170]])) == expected


def test_box_iou_at_exactly_the_threshold_scores_zero():
    sample = _refiner(model=(512, 512), gt_box=[0, 0, 100, 100])
    assert _score(BoxIoUReward(), sample, _text(sample, [0, 0, 100, 50])) == 0.0  # IoU == 0.5
    assert _score(BoxIoUReward(), sample, _text(sample, [0, 0, 100, 50.5])) == 1.0
    assert _score(BoxIoUReward(iou_thr=0.4), sample, _text(sample, [0, 0, 100, 45])) == 1.0


@pytest.mark.parametrize('model', [(504, 504), (1000, 1000)])
@pytest.mark.parametrize('shift, expected', [(0, 1.0), (9.99, 1.0), (10.01, 0.0), (30, 0.0)])
def test_box_l1_threshold(model, shift, expected):
    sample = _refiner(model=model)
    box = np.array([100, 120, 160, 200]) + shift
    assert _score(BoxL1Reward(), sample, _text(sample, box)) == expected


def test_box_l1_at_exactly_the_threshold_and_configurable():
    sample = _refiner(model=(512, 512))
    assert _score(BoxL1Reward(), sample, _text(sample, [110, 130, 170, 210])) == 0.0  # L1 == 10
    assert _score(BoxL1Reward(max_l1=10.5), sample, _text(sample, [110, 130, 170, 210])) == 1.0


def test_thresholds_are_in_frame_pixels_not_model_units():
    """0-1000 relative coordinates on a 512 frame: 18 model units = 9.2 px, 20 = 10.24 px."""
    sample = _refiner(model=(1000, 1000))
    gt_model = _to_model(sample.gt_box, sample)
    text = lambda shift: json.dumps({'bbox': [v + shift for v in gt_model], 'response': FOUND})
    assert _score(BoxL1Reward(), sample, f'<answer>{text(18)}</answer>') == 1.0
    assert _score(BoxL1Reward(), sample, f'<answer>{text(20)}</answer>') == 0.0


def test_coordinates_written_in_frame_pixels_are_not_model_coordinates():
    """The conversion is exercised: a box written in frame pixels lands elsewhere."""
    sample = _refiner(model=(1000, 1000))
    raw = '<answer>{"bbox": [100, 120, 160, 200], "response": "x"}</answer>'
    assert _score(BoxIoUReward(), sample, raw) == 0.0
    assert _score(BoxIoUReward(), sample, _text(sample, [100, 120, 160, 200])) == 1.0


def test_points_distance_takes_the_better_pairing():
    assert points_distance([[0, 0], [10, 0]], [[10, 0], [0, 0]]) == 0.0
    assert points_distance([[0, 0], [0, 0]], [[3, 4], [6, 8]]) == pytest.approx(7.5)


@pytest.mark.parametrize('model', [(504, 504), (1000, 1000)])
@pytest.mark.parametrize('points, expected', [
    ([[120, 150], [140, 170]], 1.0),
    ([[140, 170], [120, 150]], 1.0),  # order swapped: the better pairing
    ([[101, 121], [159, 199]], 1.0),  # far apart but inside the box
    ([[99, 150], [140, 170]], 0.0),  # one point outside the predicted box
])
def test_points(model, points, expected):
    sample = _refiner(model=model)
    text = _text(sample, [100, 120, 160, 200], points)
    assert _score(PointsReward(), sample, text) == expected


def test_points_distance_threshold_and_inclusive_box_edges():
    sample = _refiner(model=(512, 512), gt_box=[50, 50, 250, 350],
                      gt_points=[[100, 100], [100, 300]])
    box = [50, 50, 250, 350]
    assert _score(PointsReward(), sample, _text(sample, box, [[200, 100], [200, 300]])) == 0.0
    assert _score(PointsReward(), sample, _text(sample, box, [[199.9, 100], [199.9, 300]])) == 1.0
    assert _score(PointsReward(max_distance=100.5), sample,
                  _text(sample, box, [[200, 100], [200, 300]])) == 1.0
    narrow = [50, 50, 150, 350]  # points on its right and bottom edges count as inside
    assert _score(PointsReward(), sample, _text(sample, narrow, [[150, 100], [100, 350]])) == 1.0
    assert _score(PointsReward(), sample, _text(sample, narrow, [[150.1, 100], [100, 350]])) == 0
    assert _score(PointsReward(), sample, _text(sample, narrow, [[150, 100], [100, 350.1]])) == 0


def test_points_need_both_points_and_a_box():
    sample = _refiner()
    assert _score(PointsReward(), sample, _text(sample, [100, 120, 160, 200])) == 0.0
    text = '<answer>{"bbox": [1, 2], "points_1": [120, 150], "points_2": [140, 170]}</answer>'
    assert _score(PointsReward(), sample, text) == 0.0


# ------------------------------------------------------------------------------------------------
# Absent targets (refiner)
# ------------------------------------------------------------------------------------------------


ABSENT_TERMS = [BoxIoUReward(), BoxL1Reward(), PointsReward(), IoUReward(), AnswerReward()]


def test_absent_target_rewards_the_absent_answer():
    sample = _refiner(gt_box=[0, 0, 0, 0], gt_points=[[0, 0], [0, 0]], answer='No object found')
    absent = _text(sample, [0, 0, 0, 0], [[0, 0], [0, 0]], response='No object found')
    claims = _text(sample, [100, 120, 160, 200], [[120, 150], [140, 170]])
    says_absent_with_box = _text(sample, [100, 120, 160, 200], [[120, 150], [140, 170]],
                                 response='No object found')
    for term in ABSENT_TERMS:
        assert _score(term, sample, absent) == 1.0, term
        assert _score(term, sample, claims) == 0.0, term
    assert [_score(t, sample, says_absent_with_box) for t in ABSENT_TERMS] == [0, 0, 0, 0, 1]
    nonzero_points = _text(sample, [0, 0, 0, 0], [[5, 5], [0, 0]], response='No object found')
    assert _score(PointsReward(), sample, nonzero_points) == 0.0
    result = CompositeReward(list(AUTHORS_REFINER_TERMS))([absent, claims], [sample, sample])
    np.testing.assert_array_equal(result.total, [6, 2])  # formats only for the claim


def test_absent_segmentation_target_needs_the_absent_response_whatever_the_answer_field():
    sample = _refiner(gt_box=[0, 0, 0, 0], answer=FOUND)
    assert _score(AnswerReward(), sample, _text(sample, [0, 0, 0, 0], response=FOUND)) == 0.0
    assert _score(AnswerReward(), sample, _text(sample, [0, 0, 0, 0],
                                                response='No object found')) == 1.0
    # the explorer (whole image) and other question types keep the record's answer
    mc = _refiner(gt_box=[0, 0, 0, 0], question_type='multiple_choice', answer='B',
                  options=OPTIONS)
    assert _score(AnswerReward(), mc, _text(mc, [0, 0, 0, 0], response='B')) == 1.0


def test_absent_box_for_a_present_target_scores_zero():
    """Near the origin its L1 (2 px) and points (inside [0, 0, 0, 0], 2.8 px off) would score."""
    sample = _refiner(model=(512, 512), gt_box=[0, 0, 4, 4], gt_points=[[1, 1], [3, 3]])
    absent = _text(sample, [0, 0, 0, 0], [[0, 0], [0, 0]])
    for term in ABSENT_TERMS[:4]:
        assert _score(term, sample, absent) == 0.0, term
    assert _score(BoxL1Reward(), sample, _text(sample, [0, 0, 4.5, 4.5], [[1, 1], [3, 3]])) == 1.0
    assert _score(PointsReward(), sample, _text(sample, [0, 0, 4, 4], [[0, 0], [0, 0]])) == 1.0


# ------------------------------------------------------------------------------------------------
# Explorer region terms
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('model', [(1000, 1000), (1932, 1092)])
def test_region_terms_for_the_target_region(model):
    sample = _explorer(model=model)
    on_target = _text(sample, [780, 380, 1036, 636])
    shifted = _text(sample, [790, 380, 1046, 636])  # IoU 0.925, L1 5
    far = _text(sample, [830, 430, 1086, 686])  # IoU 0.65, L1 50, still contains the GT box
    elsewhere = _text(sample, [0, 0, 256, 256])
    terms = [RegionIoUReward(), RegionL1Reward(), RegionContainsReward(), RegionSizeReward()]
    assert [_score(t, sample, on_target) for t in terms] == [1, 1, 1, 1]
    assert [_score(t, sample, shifted) for t in terms] == [1, 1, 1, 1]
    assert [_score(t, sample, far) for t in terms] == [0, 0, 1, 1]
    assert [_score(t, sample, elsewhere) for t in terms] == [0, 0, 0, 1]


def test_region_iou_and_l1_at_their_thresholds():
    sample = _explorer(model=(1920, 1080), target_region=[0, 0, 100, 100])
    assert _score(RegionIoUReward(), sample, _text(sample, [0, 0, 100, 90])) == 0.0  # IoU == 0.9
    assert _score(RegionIoUReward(), sample, _text(sample, [0, 0, 100, 90.5])) == 1.0
    assert _score(RegionL1Reward(), sample, _text(sample, [20, 20, 120, 120])) == 0.0  # L1 == 20
    assert _score(RegionL1Reward(), sample, _text(sample, [19.5, 19.5, 119.5, 119.5])) == 1.0
    assert _score(RegionL1Reward(max_l1=25), sample, _text(sample, [20, 20, 120, 120])) == 1.0


def test_region_iou_and_l1_use_the_target_region_not_the_gt_box():
    sample = _explorer(model=(1920, 1080), gt_box=[0, 0, 256, 256],
                       target_region=[500, 500, 756, 756])
    on_gt = _text(sample, [0, 0, 256, 256])
    assert _score(RegionIoUReward(), sample, on_gt) == 0.0
    assert _score(RegionL1Reward(), sample, on_gt) == 0.0
    assert _score(BoxIoUReward(iou_thr=0.9), sample, on_gt) == 1.0  # gt_box is BoxIoU's default


def test_region_contains_edges_included():
    sample = _explorer(model=(1920, 1080), gt_box=[900, 500, 920, 515])
    assert _score(RegionContainsReward(), sample, _text(sample, [900, 500, 920, 515])) == 1.0
    assert _score(RegionContainsReward(), sample, _text(sample, [900.5, 400, 1100, 600])) == 0.0
    assert _score(RegionContainsReward(), sample, _text(sample, [800, 400, 919.5, 600])) == 0.0


@pytest.mark.parametrize('width, height, expected', [
    (256, 256, 1.0), (241, 271, 1.0), (271, 241, 1.0),
    (240.9, 256, 0.5), (256, 271.1, 0.5), (240.9, 271.1, 0.0), (128, 512, 0.0),
])
def test_region_size_band_in_frame_pixels(width, height, expected):
    sample = _explorer(model=(1920, 1080))
    assert _score(RegionSizeReward(), sample, _text(sample, [100, 100, 100 + width,
                                                             100 + height])) == expected


def test_region_size_uses_the_sample_region_size_tolerance_and_model_convention():
    relative = _explorer(model=(1000, 1000))
    assert _score(RegionSizeReward(), relative, _text(relative, [0, 0, 256, 256])) == 1.0
    # a 256x256 square in 0-1000 units is 491.5 x 276.5 frame pixels
    raw = '<answer>{"bbox": [0, 0, 256, 256], "response": "x"}</answer>'
    assert _score(RegionSizeReward(), relative, raw) == 0.0
    small = _explorer(model=(1920, 1080), region_size=128)
    assert _score(RegionSizeReward(), small, _text(small, [0, 0, 128, 140])) == 1.0
    assert _score(RegionSizeReward(), small, _text(small, [0, 0, 256, 256])) == 0.0
    strict = RegionSizeReward(tolerance=0)
    exact = _explorer(model=(1920, 1080))
    assert _score(strict, exact, _text(exact, [0, 0, 256, 257])) == 0.5


def test_continuous_iou_reward_for_either_target():
    sample = _explorer(model=(1000, 1000), gt_box=[0, 0, 100, 100],
                       target_region=[0, 0, 256, 256])
    text = _text(sample, [0, 0, 100, 50])
    assert _score(IoUReward(), sample, text) == pytest.approx(0.5)
    assert _score(IoUReward(target='target_region'), sample, text) == pytest.approx(5000 / 65536)
    assert IoUReward(target='target_region').requires == ('target_region', )


# ------------------------------------------------------------------------------------------------
# Answer term
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('stage', ['explorer', 'refiner'])
@pytest.mark.parametrize('response, expected', [
    (FOUND, 1.0), ('The target is detected!', 1.0), ('The object is not found.', 0.0),
    ('No object found', 0.0), ('The object is found. No object found.', 0.0),
])
def test_answer_segmentation(stage, response, expected):
    sample = _refiner() if stage == 'refiner' else _explorer()
    text = _text(sample, [100, 120, 160, 200], [[120, 150], [140, 170]], response=response)
    assert _score(AnswerReward(), sample, text) == expected


@pytest.mark.parametrize('stage', ['explorer', 'refiner'])
@pytest.mark.parametrize('response, expected', [
    ('A', 1.0), ('(A)', 1.0), ('A. red car', 1.0), ('red car', 1.0), ('The answer is A.', 1.0),
    ('B', 0.0),
    # gaming attempts: several options, or none, named
    ('A B C D', 0.0), ('A or B', 0.0), ('A, B, C, D', 0.0), ('ABCD', 0.0),
    ('red car, blue truck, green bus, white van', 0.0), ('It is a red car', 0.0),
    ('A. blue truck', 0.0),
])
def test_answer_multiple_choice_cannot_be_gamed(stage, response, expected):
    sample = (_refiner if stage == 'refiner' else _explorer)(
        question_type='multiple_choice', answer='A', options=OPTIONS)
    text = _text(sample, [100, 120, 160, 200], [[120, 150], [140, 170]], response=response)
    assert _score(AnswerReward(), sample, text) == expected


def test_answer_open_and_the_refiner_word_limit():
    explorer = _explorer(question_type='open', answer='dark red car')
    refiner = _refiner(question_type='open', answer='dark red car')
    long = 'the dark red car'  # "the" is dropped when comparing, but it is a 4th word
    assert _score(AnswerReward(), explorer, _text(explorer, [0, 0, 256, 256], response=long)) == 1
    assert _score(AnswerReward(), refiner, _text(refiner, [0, 0, 9, 9], [[1, 1], [2, 2]],
                                                 response=long)) == 0.0
    assert _score(AnswerReward(refiner_max_words=4), refiner,
                  _text(refiner, [0, 0, 9, 9], [[1, 1], [2, 2]], response=long)) == 1.0
    # difflib ratios to 'dark red car': 'dark red' 0.8 (the threshold, inclusive), 'dark re' 0.74
    assert _score(AnswerReward(), refiner, _text(refiner, [0, 0, 9, 9], response='dark red')) == 1
    assert _score(AnswerReward(), refiner, _text(refiner, [0, 0, 9, 9], response='dark re')) == 0
    assert _score(AnswerReward(min_ratio=0.7), refiner,
                  _text(refiner, [0, 0, 9, 9], response='dark re')) == 1.0


def test_answer_is_scored_from_the_response_alone():
    sample = _refiner()
    text = '<answer>{"response": "The object is found."}</answer>'
    assert _score(AnswerReward(), sample, text) == 1.0
    assert _score(AnswerReward(), sample, '<answer>{"bbox": [1, 2, 3, 4]}</answer>') == 0.0


def test_bad_multiple_choice_ground_truth_is_reported():
    sample = _refiner(question_type='multiple_choice', answer='E', options=OPTIONS)
    with pytest.raises(ValueError, match='names no single option'):
        _score(AnswerReward(), sample, _text(sample, [0, 0, 9, 9], response='A'))


# ------------------------------------------------------------------------------------------------
# Mask IoU term
# ------------------------------------------------------------------------------------------------


class _BoxMaskHead:
    """A stand-in mask head: fills the prompted box, records its prompts."""

    def __init__(self):
        self.calls = []

    def predict(self, crops, boxes, points=None):
        points = None if points is None else np.asarray(points)
        self.calls.append((crops, np.asarray(boxes), points))
        mask = np.zeros(crops[0].shape[:2], dtype=bool)
        x1, y1, x2, y2 = np.round(boxes[0]).astype(int)
        mask[y1:y2, x1:x2] = True
        return type('Prediction', (), dict(masks=[mask], scores=np.ones(1, np.float32)))


def _mask_sample(gt_mask, model=(1000, 1000)):
    return _refiner(model=model, frame=(64, 64), gt_box=[8, 8, 24, 24], gt_points=[[10, 10],
                    [20, 20]], image=np.full((64, 64, 3), 127, np.uint8), gt_mask=gt_mask)


def test_mask_iou_prompts_the_head_in_frame_pixels():
    gt_mask = np.zeros((64, 64), bool)
    gt_mask[8:24, 16:32] = True
    sample, head = _mask_sample(gt_mask), _BoxMaskHead()
    term = MaskIoUReward(mask_head=head)
    value = _score(term, sample, _text(sample, [8, 8, 24, 24], [[10, 12], [20, 22]]))
    assert value == pytest.approx(128 / 384)
    (crops, boxes, points), = head.calls
    assert crops[0] is sample.image
    np.testing.assert_allclose(boxes, [[8, 8, 24, 24]])
    np.testing.assert_allclose(points, [[[10, 12], [20, 22]]])
    assert _score(term, sample, _text(sample, [16, 8, 32, 24])) == pytest.approx(1.0)
    assert head.calls[-1][2] is None  # no points in the answer: box only
    assert term.requires == ('image', 'gt_mask')


def test_mask_iou_absent_targets_and_absent_boxes():
    head = _BoxMaskHead()
    term = MaskIoUReward(mask_head=head)
    empty = _mask_sample(np.zeros((64, 64), bool))
    assert _score(term, empty, _text(empty, [0, 0, 0, 0], [[0, 0], [0, 0]])) == 1.0
    assert _score(term, empty, _text(empty, [8, 8, 24, 24], [[10, 10], [20, 20]])) == 0.0
    present = _mask_sample(np.ones((64, 64), bool))
    assert _score(term, present, _text(present, [0, 0, 0, 0], [[0, 0], [0, 0]])) == 0.0
    assert _score(term, present, 'garbage') == 0.0
    assert head.calls == []


def test_mask_iou_with_the_tiny_sam_built_from_config(tiny_models):
    term = REWARDS.build(dict(type='MaskIoUReward', mask_head=dict(
        type='SAMMaskHead', config=tiny_models['sam_config'], checkpoint=tiny_models['sam'])))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    box, points = np.array([[8.0, 8.0, 40.0, 40.0]]), np.array([[[16.0, 16.0], [30.0, 30.0]]])
    predicted = term.mask_head.predict([image], box, points).masks[0]
    assert predicted.any()  # the check below needs a non-empty SAM mask
    gt_mask = np.zeros((64, 64), bool)
    gt_mask[8:40, 8:40] = True
    expected = np.count_nonzero(predicted & gt_mask) / np.count_nonzero(predicted | gt_mask)
    for model in [(1000, 1000), (64, 64)]:
        sample = RewardSample(stage='refiner', frame_size=(64, 64), model_coord_size=model,
                              question_type='segmentation', answer=FOUND, image=image,
                              gt_mask=gt_mask)
        text = _text(sample, box[0], points[0])
        assert _score(term, sample, text) == pytest.approx(expected)
        own = RewardSample(stage='refiner', frame_size=(64, 64), model_coord_size=model,
                           question_type='segmentation', answer=FOUND, image=image,
                           gt_mask=predicted)
        assert _score(term, own, text) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------
# Term construction and required fields
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('cfg, match', [
    (dict(type='BoxIoUReward', iou_thr=1.0), 'iou_thr'),
    (dict(type='BoxIoUReward', target='best_region'), 'target'),
    (dict(type='BoxL1Reward', max_l1=0), 'max_l1'),
    (dict(type='PointsReward', max_distance=-1), 'max_distance'),
    (dict(type='RegionSizeReward', tolerance=-1), 'tolerance'),
    (dict(type='AnswerReward', min_ratio=0), 'min_ratio'),
    (dict(type='AnswerReward', refiner_max_words=0), 'refiner_max_words'),
    (dict(type='ThinkFormatReward', weight=float('nan')), 'weight'),
    (dict(type='ThinkFormatReward', name=''), 'name'),
])
def test_bad_term_configs(cfg, match):
    with pytest.raises(ValueError, match=match):
        REWARDS.build(cfg)


def test_terms_built_by_type_name_with_names_and_weights():
    term = REWARDS.build(dict(type='RegionIoUReward', weight=2.5, name='best_region_iou'))
    assert isinstance(term, RegionIoUReward) and term.iou_thr == 0.9
    assert (term.name, term.weight, term.target) == ('best_region_iou', 2.5, 'target_region')
    assert REWARDS.build(dict(type='BoxL1Reward')).name == 'box_l1'


@pytest.mark.parametrize('term, field', [
    (RegionIoUReward(), 'target_region'), (RegionL1Reward(), 'target_region'),
    (RegionContainsReward(), 'gt_box'), (RegionSizeReward(), 'region_size'),
    (BoxIoUReward(), 'gt_box'), (PointsReward(), 'gt_points'),
])
def test_missing_required_field_names_the_term(term, field):
    sample = RewardSample(stage='explorer', frame_size=(1920, 1080), model_coord_size=(1000, 1000),
                          question_type='segmentation', answer=FOUND)
    assert term.requires == (field, )
    with pytest.raises(ValueError, match=f"'{term.name}' needs RewardSample.{field}"):
        _score(term, sample, _text(sample, [0, 0, 256, 256], [[1, 1], [2, 2]]))


# ------------------------------------------------------------------------------------------------
# Composite
# ------------------------------------------------------------------------------------------------


def test_authors_maxima_and_perfect_answers():
    refiner, explorer = _refiner(), _explorer()
    lpr = CompositeReward(list(AUTHORS_REFINER_TERMS))
    gse = CompositeReward(list(AUTHORS_EXPLORER_TERMS))
    assert (lpr.max_total, gse.max_total) == (6.0, 7.0)
    perfect_lpr = _text(refiner, [100, 120, 160, 200], [[120, 150], [140, 170]])
    perfect_gse = _text(explorer, [780, 380, 1036, 636])
    assert lpr([perfect_lpr], [refiner]).total.tolist() == [6.0]
    assert gse([perfect_gse], [explorer]).total.tolist() == [7.0]
    assert list(lpr([perfect_lpr], [refiner]).terms) == [
        'think_format', 'json_format', 'box_iou', 'box_l1', 'points', 'answer']
    assert list(gse([perfect_gse], [explorer]).terms) == [
        'think_format', 'json_format', 'region_iou', 'region_l1', 'region_contains',
        'region_size', 'answer']


def test_requires_is_the_union_of_the_terms():
    assert CompositeReward(list(AUTHORS_REFINER_TERMS)).requires == ('gt_box', 'gt_points')
    assert CompositeReward(list(AUTHORS_EXPLORER_TERMS)).requires == (
        'target_region', 'gt_box', 'region_size')
    terms = [dict(type='ThinkFormatReward'), dict(type='MaskIoUReward', mask_head=_BoxMaskHead())]
    assert CompositeReward(terms).requires == ('image', 'gt_mask')


def test_total_is_the_weighted_sum_of_unweighted_terms():
    reward = REWARDS.build(dict(type='CompositeReward', terms=[
        dict(type='ThinkFormatReward', weight=0.5), dict(type='BoxIoUReward', weight=2.0),
        dict(type='IoUReward', weight=3.0), dict(type='AnswerReward', weight=-1.0)]))
    assert reward.max_total == 5.5  # negative weights never raise the maximum
    sample = _refiner(model=(512, 512), gt_box=[0, 0, 100, 100])
    texts = [_text(sample, [0, 0, 100, 100], [[1, 1], [2, 2]]),
             _text(sample, [0, 0, 100, 40], response='No object found'),
             'rubbish',
             _text(sample, [0, 0, 100, 60], think='x') + ' trailing']
    result = reward(texts, [sample] * 4)
    assert isinstance(result, RewardResult)
    np.testing.assert_allclose(result.terms['iou'], [1, 0.4, 0, 0.6], rtol=1e-6)
    np.testing.assert_array_equal(result.terms['box_iou'], [1, 0, 0, 1])
    np.testing.assert_array_equal(result.terms['think_format'], [1, 1, 0, 0])
    np.testing.assert_array_equal(result.terms['answer'], [1, 0, 0, 1])
    expected = sum(term.weight * result.terms[term.name] for term in reward.terms)
    np.testing.assert_allclose(result.total, expected, rtol=1e-6)
    np.testing.assert_allclose(result.total, [0.5 + 2 + 3 - 1, 1.7, 0, 2 + 1.8 - 1], rtol=1e-6)
    np.testing.assert_array_equal(result.invalid, [False, True, True, True])
    assert result.total.dtype == np.float32 and result.invalid.dtype == bool
    assert all(v.dtype == np.float32 and v.shape == (4, ) for v in result.terms.values())


def test_each_completion_is_parsed_once_for_its_own_stage(monkeypatch):
    import finers_mm.rl.rewards.composite as composite
    calls = []

    def counting(text, stage, protocol='finers_mm'):
        calls.append(stage)
        return parse_completion(text, stage, protocol=protocol)

    monkeypatch.setattr(composite, 'parse_completion', counting)
    reward = CompositeReward(list(AUTHORS_EXPLORER_TERMS))
    refiner = _refiner(region_size=256, target_region=[0, 0, 256, 256])
    explorer = _explorer()
    samples = [explorer, explorer, refiner]
    reward([_text(s, [0, 0, 256, 256], [[1, 1], [2, 2]]) for s in samples], samples)
    assert calls == ['explorer', 'explorer', 'refiner']


def test_composite_errors():
    with pytest.raises(ValueError, match='empty'):
        CompositeReward([])
    with pytest.raises(ValueError, match=r"\['box_iou'\]"):
        CompositeReward([dict(type='BoxIoUReward'), dict(type='BoxIoUReward', iou_thr=0.7)])
    CompositeReward([dict(type='BoxIoUReward'), dict(type='BoxIoUReward', name='box_iou_70')])
    with pytest.raises(ValueError, match='2 completions but 1 samples'):
        CompositeReward(list(AUTHORS_REFINER_TERMS))(['a', 'b'], [_refiner()])


def test_empty_batch():
    result = CompositeReward(list(AUTHORS_REFINER_TERMS))([], [])
    assert result.total.shape == (0, ) and result.invalid.shape == (0, )


# ------------------------------------------------------------------------------------------------
# Garbage and fuzzing: never raises, 0 where nothing parses
# ------------------------------------------------------------------------------------------------


ALL_TERMS = [dict(type='ThinkFormatReward'), dict(type='JsonFormatReward'),
             dict(type='BoxIoUReward'), dict(type='BoxL1Reward'), dict(type='PointsReward'),
             dict(type='AnswerReward'), dict(type='RegionIoUReward'), dict(type='RegionL1Reward'),
             dict(type='RegionContainsReward'), dict(type='RegionSizeReward'),
             dict(type='IoUReward'), dict(type='IoUReward', target='target_region', name='r_iou')]
FUZZ_REWARD = CompositeReward(ALL_TERMS)
FUZZ_SAMPLES = {
    'refiner': _refiner(target_region=[0, 0, 512, 512], region_size=256),
    'explorer': _explorer(gt_points=[[905, 505], [915, 510]]),
}


def _check_fuzz(text, stage):
    result = FUZZ_REWARD([text], [FUZZ_SAMPLES[stage]])
    values = np.array([v[0] for v in result.terms.values()])
    assert ((values >= 0) & (values <= 1)).all()
    assert np.isfinite(result.total).all() and result.total[0] <= FUZZ_REWARD.max_total
    parsed = parse_completion(text, stage)
    if parsed.invalid in ('no_answer_tag', 'no_json', 'bad_json'):
        nonzero = {name for name, v in result.terms.items() if v[0] != 0}
        assert nonzero <= {'think_format'}, (text, nonzero)


@pytest.mark.parametrize('text', [
    '', ' ', 'The object is found.', '<think></think>', '<answer></answer>', '<answer>{}</answer>',
    '<answer>{"bbox": "A"}</answer>', '<think>a</think><answer>{"bbox": [NaN, 1, 2, 3]}</answer>',
    '{"bbox": [100, 120, 160, 200], "response": "The object is found."}',  # no answer tag
    '<answer>{"bbox": [1e308, 1e308, 1.7e308, 1.7e308], "points_1": [1e308, 0], '
    '"points_2": [-1.7e308, 1e308], "response": "A"}</answer>',
    '<answer>{"bbox": [-1e300, -1e300, 1e300, 1e300], "response": "A"}</answer>',
    None, 42,
])
@pytest.mark.parametrize('stage', ['explorer', 'refiner'])
def test_garbage_never_raises_nor_warns(text, stage):
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        _check_fuzz(text, stage)


def test_overflowing_coordinates_score_zero():
    # model -> frame doubles the coordinates
    sample = _refiner(model=(256, 256), target_region=[0, 0, 512, 512], region_size=256)
    text = ('<answer>{"bbox": [0, 0, 1.7e308, 1.7e308], "points_1": [1, 1], "points_2": [2, 2], '
            '"response": "x"}</answer>')
    result = FUZZ_REWARD([text], [sample])
    assert all(result.terms[name][0] == 0 for name in result.terms if name != 'json_format')


@settings(max_examples=300, deadline=None)
@given(text=st.text(), stage=st.sampled_from(['explorer', 'refiner']))
def test_fuzz_text(text, stage):
    _check_fuzz(text, stage)


_FRAGMENTS = st.sampled_from([
    '<think>', '</think>', '<answer>', '</answer>', '{', '}', '[', ']', '"', ',', ':',
    '"bbox"', '"points_1"', '"points_2"', '"response"', '0', '100', '-5', '1e308', '3.5', 'NaN',
    '"A"', '"The object is found."', '"No object found"', ' ', '\n',
])


@settings(max_examples=400, deadline=None)
@given(parts=st.lists(_FRAGMENTS, max_size=40), stage=st.sampled_from(['explorer', 'refiner']))
def test_fuzz_answer_like_fragments(parts, stage):
    _check_fuzz(''.join(parts), stage)


_COORD = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(box=st.tuples(_COORD, _COORD, _COORD, _COORD), p=st.tuples(_COORD, _COORD, _COORD, _COORD),
       stage=st.sampled_from(['explorer', 'refiner']))
def test_fuzz_numbers(box, p, stage):
    data = dict(bbox=list(box), points_1=list(p[:2]), points_2=list(p[2:]), response='A')
    _check_fuzz(f'<think>t</think><answer>{json.dumps(data)}</answer>', stage)
