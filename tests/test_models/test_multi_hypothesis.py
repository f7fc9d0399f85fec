# Copyright (c) finers_mm contributors. All rights reserved.
"""Multi-hypothesis inference of FineRSDetector (top-k regions, score fusion, adaptive window,
tiled fallback), the stage scores behind it, and its config.

The chain tests script the stages at the interface level (finers_mm.models.stages): an explorer
answering listed regions, a refiner that finds the GT when its window holds it and a decoy
otherwise, a mask head that rasterises the box prompt; so which hypothesis wins is decided by the
scores the test sets, and every call is counted.
"""
import copy
import itertools
import math
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.model import BaseModule
from mmengine.registry import init_default_scope

from finers_mm.models import MaskPrediction
from finers_mm.models.hypotheses import (adaptive_window, fuse_scores, parse_multi_hypothesis,
                                         select_hypothesis)
from finers_mm.models.stages import ExplorerOutput, Query, RefinerOutput
from finers_mm.registry import DATASETS, MODELS
from finers_mm.structures import box_contains, slice_windows
from finers_mm.testing import REPO_ROOT

TINY_CONFIG = osp.join(REPO_ROOT, 'configs', 'finers', 'finers_tiny_test.py')
MULTIHYP_CONFIG = osp.join(REPO_ROOT, 'configs', 'finers', 'finers_tiny_test_multihyp.py')
DATA_ROOT = osp.join(REPO_ROOT, 'finers_mm', 'data', 'synthetic/')
DECOY_SIDE = 7.0  # the scripted refiner's decoy box side, ORIGINAL pixels


# ------------------------------------------------------------------------------------------------
# Pure functions
# ------------------------------------------------------------------------------------------------

def test_fuse_scores_math():
    assert fuse_scores(math.log(0.5), 0.8, 'refiner') == pytest.approx(0.5)
    assert fuse_scores(math.log(0.5), 0.8, 'mask') == pytest.approx(0.8)
    assert fuse_scores(math.log(0.5), 0.8, 'product') == pytest.approx(0.4)
    assert fuse_scores(None, 0.8, 'product') == pytest.approx(0.8)  # a missing term counts as 1
    assert fuse_scores(-1.0, None, 'product') == pytest.approx(math.exp(-1.0))
    assert fuse_scores(0.0, -0.3, 'mask') == 0.0  # SAM's predicted IoU may dip below 0
    # monotone in both terms
    assert fuse_scores(-0.1, 0.5, 'product') > fuse_scores(-0.2, 0.5, 'product')
    assert fuse_scores(-0.1, 0.6, 'product') > fuse_scores(-0.1, 0.5, 'product')
    with pytest.raises(ValueError, match='fusion'):
        fuse_scores(0.0, 0.5, 'sum')


@pytest.mark.parametrize('mode', ['refiner', 'mask', 'product'])
def test_fuse_scores_of_broken_terms_is_finite_and_never_wins(mode):
    """A NaN / infinite term (a broken forward pass) counts as 0; a log-prob above 0 as
    probability 1 (math.exp(1e308) would raise OverflowError)."""
    for logprob, iou in itertools.product([math.nan, -math.inf, math.inf, 1e308, -1e308, -0.5],
                                          [math.nan, math.inf, -math.inf, 1e308, -1.0, 0.5]):
        fused = fuse_scores(logprob, iou, mode)
        assert math.isfinite(fused) and fused >= 0, (logprob, iou)
        if mode != 'mask' and (math.isnan(logprob) or logprob == -math.inf):
            assert fused == 0.0
        if mode != 'refiner' and (not math.isfinite(iou) or iou < 0):
            assert fused == 0.0
    assert fuse_scores(1e308, 0.5, 'product') == pytest.approx(0.5)


def test_select_hypothesis_prefers_usable_then_score_then_rank():
    assert select_hypothesis([True, True, True], [False] * 3, [0.2, 0.9, 0.9]) == 1
    # absent / invalid hypotheses lose to a usable one whatever their score
    assert select_hypothesis([False, True, False], [True, False, False], [5.0, 0.01, 7.0]) == 1
    assert select_hypothesis([False, False, False], [False, True, True], [None] * 3) == 1
    assert select_hypothesis([False, False], [False, False], [None, None]) == 0
    with pytest.raises(ValueError):
        select_hypothesis([], [], [])


@pytest.mark.parametrize('box, side', [
    ([700, 400, 716, 410], 128),       # 4 * 16 = 64 -> min_side 128
    ([700, 400, 750, 440], 200),       # 4 * 50
    ([700, 400, 900, 450], 512),       # 4 * 200 = 800 -> max_side 512
    ([700.5, 400, 740.25, 420], 159),  # ceil(4 * 39.75)
])
def test_adaptive_window_side_centre_and_inside(box, side):
    window = adaptive_window(box, (1920, 1080), 4.0, 128, 512)
    w, h = window[2] - window[0], window[3] - window[1]
    expected = min(max(math.ceil(4.0 * max(box[2] - box[0], box[3] - box[1])), 128), 512)
    assert w == h == expected == side
    centre = ((window[0] + window[2]) / 2, (window[1] + window[3]) / 2)
    assert abs(centre[0] - (box[0] + box[2]) / 2) <= 1
    assert abs(centre[1] - (box[1] + box[3]) / 2) <= 1
    assert box_contains(window, box)


def test_adaptive_window_is_shifted_into_the_image_and_never_cuts_the_box():
    window = adaptive_window([1910, 1075, 1918, 1079], (1920, 1080), 4.0, 128, 512)
    assert window.tolist() == [1920 - 128, 1080 - 128, 1920, 1080]
    big = [0, 0, 700, 300]  # larger than max_side: the window takes the box's extent
    window = adaptive_window(big, (1920, 1080), 4.0, 128, 512)
    assert box_contains(window, big) and window[2] - window[0] == 700
    small_image = adaptive_window([10, 10, 60, 40], (100, 90), 4.0, 128, 512)
    assert small_image.tolist() == [0, 0, 100, 90]


def test_parse_multi_hypothesis_defaults_and_clear_errors():
    assert parse_multi_hypothesis(None, 512) is None
    cfg = parse_multi_hypothesis(dict(adaptive_window={}, tiled_fallback={}), 512)
    assert cfg.num_regions == 1 and cfg.fusion == 'product' and cfg.refiner_scores
    assert cfg.adaptive_window == dict(context_factor=4.0, min_side=128, max_side=512)
    assert cfg.tiled_fallback == dict(tile_size=512, overlap_ratio=0.2)
    assert not parse_multi_hypothesis(dict(fusion='mask'), 512).refiner_scores
    bad = [
        (dict(num_region=4), KeyError,
         r"model\.multi_hypothesis: unknown key\(s\) \['num_region'\]"),
        (dict(num_regions=0), ValueError, r'model\.multi_hypothesis\.num_regions must be >= 1'),
        (dict(num_regions=2.5), TypeError, r'model\.multi_hypothesis\.num_regions must be an int'),
        (dict(fusion='max'), ValueError, r"model\.multi_hypothesis\.fusion must be one of"),
        (dict(adaptive_window=dict(factor=2)), KeyError,
         r"model\.multi_hypothesis\.adaptive_window: unknown key\(s\) \['factor'\]"),
        (dict(adaptive_window=dict(context_factor=0.5)), ValueError,
         r'adaptive_window\.context_factor must be >= 1\.0'),
        (dict(adaptive_window=dict(min_side=600)), ValueError,
         r'adaptive_window\.max_side must be >= 600'),
        (dict(tiled_fallback=dict(overlap_ratio=1.0)), ValueError,
         r'tiled_fallback\.overlap_ratio must be in \[0\.0, 1\.0\)'),
        (dict(tiled_fallback=True), TypeError, r'tiled_fallback must be a dict or None'),
        ('on', TypeError, r'model\.multi_hypothesis must be a dict or None'),
    ]
    for cfg, error, message in bad:
        with pytest.raises(error, match=message):
            parse_multi_hypothesis(cfg, 512)


# ------------------------------------------------------------------------------------------------
# Stage scores on the tiny Qwen2.5-VL
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def tiny_vlm(tiny_models):
    init_default_scope('finers_mm')
    return MODELS.build(dict(type='Qwen25VLAdapter', pretrained=tiny_models['qwen2_5_vl'],
                             freeze=True, generation=dict(max_new_tokens=12)))


def _images(n, seed=0):
    rng = np.random.RandomState(seed)
    return [rng.randint(0, 255, (56 + 28 * i, 84, 3), np.uint8) for i in range(n)]


@pytest.mark.parametrize('overrides', [dict(), dict(do_sample=True, num_return_sequences=2),
                                       dict(num_beams=3, num_return_sequences=3)])
def test_mean_logprobs_are_the_masked_mean_of_completion_logprobs(tiny_vlm, overrides):
    torch.manual_seed(0)
    images, prompts = _images(2), ['find the car', 'which one is red? answer with a letter']
    result = tiny_vlm.generate(images, prompts, with_scores=True, **overrides)
    n = result.num_return_sequences
    assert result.mean_logprobs.shape == (2 * n,)
    for row in range(2 * n):  # each completion scored alone (no padding of other prompts)
        prompt = row // n
        alone = tiny_vlm.build_inputs([images[prompt]], [prompts[prompt]])
        length = int(result.completion_mask[row].sum())
        ids = result.completion_ids[row:row + 1, :length]
        with torch.no_grad():
            logprobs = tiny_vlm.completion_logprobs(alone, ids, torch.ones_like(ids))
        assert float(result.mean_logprobs[row]) == pytest.approx(float(logprobs.mean()), abs=1e-4)
        assert float(result.mean_logprobs[row]) <= 0.0
    assert tiny_vlm.generate(images, prompts).mean_logprobs is None


@pytest.mark.parametrize('decoding', ['beam', 'sample'])
def test_global_explorer_answers_k_scored_regions_best_first(tiny_models, decoding):
    init_default_scope('finers_mm')
    explorer = MODELS.build(dict(
        type='GlobalExplorer', multi_region=decoding,
        vlm=dict(type='Qwen25VLAdapter', pretrained=tiny_models['qwen2_5_vl'], freeze=True,
                 generation=dict(max_new_tokens=12))))
    views = _images(2)
    queries = [Query('find the car', 'segmentation'), Query('what colour?', 'open')]
    torch.manual_seed(0)
    outputs = explorer.explore(views, [(1920, 1080)] * 2, queries, num_regions=3)
    assert len(outputs) == 6
    for i in range(2):
        scores = [out.score for out in outputs[i * 3:(i + 1) * 3]]
        assert all(s is not None and s <= 0 for s in scores)
        assert scores == sorted(scores, reverse=True)
    single = explorer.explore(views, [(1920, 1080)] * 2, queries)
    assert len(single) == 2 and all(out.score is None for out in single)
    if decoding == 'beam':  # the best beam is at least as likely as the greedy completion
        greedy = explorer.explore(views, [(1920, 1080)] * 2, queries, num_regions=1)
        assert [o.completion for o in greedy] == [o.completion for o in single]
    with pytest.raises(ValueError, match='multi_region'):
        MODELS.build(dict(type='GlobalExplorer', multi_region='nucleus',
                          vlm=dict(type='Qwen25VLAdapter', pretrained=tiny_models['qwen2_5_vl'])))


def test_local_refiner_scores_only_when_asked(tiny_models):
    init_default_scope('finers_mm')
    refiner = MODELS.build(dict(
        type='LocalRefiner', frame_size=(56, 56),
        vlm=dict(type='Qwen25VLAdapter', pretrained=tiny_models['qwen2_5_vl'], freeze=True,
                 generation=dict(max_new_tokens=12))))
    image = _images(1)[0]
    windows = [np.array([0, 0, 40, 40]), np.array([10, 10, 84, 56])]
    queries = [Query('find the car', 'segmentation')] * 2
    scored = refiner.refine([image] * 2, windows, queries, with_scores=True)
    plain = refiner.refine([image] * 2, windows, queries)
    assert all(out.score is not None and out.score <= 0 for out in scored)
    assert all(out.score is None for out in plain)
    assert [o.completion for o in scored] == [o.completion for o in plain]


# ------------------------------------------------------------------------------------------------
# The chain, scripted at the stage interfaces
# ------------------------------------------------------------------------------------------------

@MODELS.register_module(force=True)
class _ListedExplorer(BaseModule):
    """Answers ``regions[question]``: a list of (region, score) best first (region None: none)."""

    def __init__(self):
        super().__init__()
        self.regions, self.calls = {}, []

    def explore(self, views, image_sizes, queries, num_regions=1):
        self.calls.append(len(views))
        outputs = []
        for query in queries:
            listed = list(self.regions[query.question])[:num_regions]
            listed += [(None, None)] * (num_regions - len(listed))
            for region, score in listed:
                outputs.append(ExplorerOutput(
                    region=None if region is None else np.asarray(region, np.float32),
                    answer='The object is found.' if region is not None else None,
                    completion=f'explorer {region}', score=score,
                    invalid=None if region is not None else 'no_answer_tag'))
        return outputs


@MODELS.register_module(force=True)
class _WindowRefiner(BaseModule):
    """Finds ``gt[question]`` when the window holds it (score ``good``), else a DECOY_SIDE box at
    the window's centre (score ``decoy``); ``absent_in`` windows answer "no object"."""

    def __init__(self):
        super().__init__()
        self.gt, self.good, self.decoy = {}, -1.0, -1.0
        self.absent_score = None
        self.calls = []

    def refine(self, images, windows, queries, with_scores=False):
        self.calls.append(dict(windows=[np.asarray(w) for w in windows], with_scores=with_scores))
        outputs = []
        for window, query in zip(windows, queries):
            gt = np.asarray(self.gt[query.question], np.float32)
            if self.absent_score is not None and not box_contains(window, gt):
                outputs.append(RefinerOutput(box=np.zeros(4, np.float32), points=np.zeros((2, 2)),
                                             answer='No object found', completion='absent',
                                             score=self.absent_score if with_scores else None))
                continue
            if box_contains(window, gt):
                box, score = gt, self.good
            else:
                cx, cy = (window[0] + window[2]) / 2, (window[1] + window[3]) / 2
                h = DECOY_SIDE / 2
                box, score = np.array([cx - h, cy - h, cx + h, cy + h], np.float32), self.decoy
            centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], np.float32)
            outputs.append(RefinerOutput(
                box=box, points=np.stack([centre, centre]), answer='The object is found.',
                completion=f'refined in {list(window)}', score=score if with_scores else None))
        return outputs


@MODELS.register_module(force=True)
class _BoxMaskHead(BaseModule):
    """The box prompt rasterised in its crop; score ``decoy`` for decoy-sized boxes, else
    ``good``."""

    def __init__(self):
        super().__init__()
        self.good, self.decoy, self.calls = 0.5, 0.5, []

    def predict(self, crops, boxes, points):
        self.calls.append(len(crops))
        masks, scores = [], []
        for crop, box in zip(crops, boxes):
            mask = np.zeros(crop.shape[:2], bool)
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            mask[max(y1, 0):y2, max(x1, 0):x2] = True
            masks.append(mask)
            decoy = abs((box[2] - box[0]) - DECOY_SIDE) < 1e-3
            scores.append(self.decoy if decoy else self.good)
        return MaskPrediction(masks=masks, scores=np.asarray(scores, np.float32))


@pytest.fixture(scope='module')
def dataset():
    init_default_scope('finers_mm')
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.test_dataloader.dataset.data_root = DATA_ROOT
    return DATASETS.build(cfg.test_dataloader.dataset)


def _detector(multi_hypothesis, **kwargs):
    init_default_scope('finers_mm')
    return MODELS.build(dict(type='FineRSDetector', explorer=dict(type='_ListedExplorer'),
                             refiner=dict(type='_WindowRefiner'),
                             mask_head=dict(type='_BoxMaskHead'),
                             multi_hypothesis=multi_hypothesis, **kwargs)).eval()


def _far_region(info):
    """A 128 px region in the image corner farthest from the GT (its window misses the GT)."""
    x1, y1, x2, y2 = info['gt_bbox']
    w, h = info['width'], info['height']
    fx = 0 if (x1 + x2) / 2 > w / 2 else w - 128
    fy = 0 if (y1 + y2) / 2 > h / 2 else h - 128
    return [fx, fy, fx + 128, fy + 128]


def _near_region(info):
    x1, y1, x2, y2 = info['gt_bbox']
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return [cx - 64, cy - 64, cx + 64, cy + 64]


def _script(detector, dataset, indices, explorer_regions):
    """Script the GT of every sample and the explorer's ``explorer_regions(info)`` list."""
    for i in indices:
        info = dataset.get_data_info(i)
        detector.refiner.gt[info['question']] = info['gt_bbox']
        detector.explorer.regions[info['question']] = explorer_regions(info)


def _run(detector, dataset, indices):
    with torch.no_grad():
        return detector.test_step(pseudo_collate([dataset[i] for i in indices]))


def _is_gt(result, info):
    return len(result.pred_instances) == 1 and np.allclose(
        result.pred_instances.bboxes[0].numpy(), info['gt_bbox'], atol=1e-3)


@pytest.mark.parametrize('fusion, refiner_scores, mask_scores, gt_wins', [
    ('refiner', (-0.1, -2.0), (0.5, 0.5), True),    # (good, decoy)
    ('refiner', (-2.0, -0.1), (0.5, 0.5), False),
    ('mask', (-2.0, -0.1), (0.9, 0.3), True),       # the refiner's score is ignored
    ('mask', (-0.1, -2.0), (0.3, 0.9), False),
    ('product', (-0.5, -0.1), (0.9, 0.3), True),    # 0.61 * 0.9 > 0.90 * 0.3
    ('product', (-0.1, -0.5), (0.3, 0.9), False),
])
def test_top_k_keeps_the_hypothesis_of_best_fused_score(dataset, fusion, refiner_scores,
                                                        mask_scores, gt_wins):
    detector = _detector(dict(num_regions=3, fusion=fusion))
    indices = [0, 1, 2, 3]
    # the explorer ranks the decoy window FIRST: only the fused score can promote the GT window
    _script(detector, dataset, indices,
            lambda info: [(_far_region(info), -0.01), (_near_region(info), -0.5), (None, None)])
    detector.refiner.good, detector.refiner.decoy = refiner_scores
    detector.mask_head.good, detector.mask_head.decoy = mask_scores
    results = _run(detector, dataset, indices)

    # one call per stage for the whole batch, all hypotheses in it
    assert detector.explorer.calls == [4]
    assert len(detector.refiner.calls) == 1 and len(detector.refiner.calls[0]['windows']) == 8
    assert detector.refiner.calls[0]['with_scores'] == (fusion != 'mask')
    assert detector.mask_head.calls == [8]
    for i, result in zip(indices, results):
        info = dataset.get_data_info(i)
        assert _is_gt(result, info) == gt_wins
        hyps = result.pred_hypotheses
        assert [h['rank'] for h in hyps] == [0, 1] and all(h['usable'] for h in hyps)
        best = max(hyps, key=lambda h: h['score'])
        assert result.pred_score == best['score']
        np.testing.assert_array_equal(result.pred_window, best['window'])
        expected = fuse_scores(refiner_scores[0] if fusion != 'mask' else None,
                               mask_scores[0], fusion)
        gt_hyp = hyps[1]
        assert gt_hyp['score'] == pytest.approx(expected)
        assert result.pred_instances.masks.shape == (1, info['height'], info['width'])
        assert result.fallback is None and result.invalid_reason is None


def test_absent_hypotheses_lose_to_a_located_one_and_identical_windows_run_once(dataset):
    detector = _detector(dict(num_regions=3, fusion='refiner'))
    detector.refiner.absent_score = 0.0  # "no object" with the highest possible score
    detector.refiner.good = -3.0
    near = _near_region
    _script(detector, dataset, [0, 1],
            lambda info: [(_far_region(info), -0.01), (near(info), -0.1),
                          (near(info), -0.2)])  # the same window twice: refined once
    results = _run(detector, dataset, [0, 1])
    assert len(detector.refiner.calls[0]['windows']) == 4  # 2 distinct windows per sample
    for i, result in zip([0, 1], results):
        assert _is_gt(result, dataset.get_data_info(i))
        assert [h['absent'] for h in result.pred_hypotheses] == [True, False]


def test_adaptive_window_refines_again_on_a_window_sized_to_the_box(dataset):
    detector = _detector(dict(num_regions=2, fusion='mask',
                              adaptive_window=dict(context_factor=3.0, min_side=64,
                                                   max_side=512)))
    indices = [0, 1, 2, 3]
    _script(detector, dataset, indices,
            lambda info: [(_near_region(info), -0.1), (_far_region(info), -0.2)])
    detector.mask_head.good, detector.mask_head.decoy = 0.9, 0.1
    results = _run(detector, dataset, indices)
    assert len(detector.refiner.calls) == 2  # the first refinement and the zoom, each batched
    assert len(detector.refiner.calls[1]['windows']) == 8
    assert detector.mask_head.calls == [8]
    for i, result in zip(indices, results):
        info = dataset.get_data_info(i)
        assert _is_gt(result, info)
        expected = adaptive_window(info['gt_bbox'], (info['width'], info['height']), 3.0, 64, 512)
        np.testing.assert_array_equal(result.pred_window, expected)
        assert result.pred_window[2] - result.pred_window[0] < 512  # zoomed in
        kept = [h for h in result.pred_hypotheses if h['rank'] == 0][0]
        assert kept['first_window'] is not None and kept['first_window'][2] - \
            kept['first_window'][0] == 512
        x1, y1, x2, y2 = (int(v) for v in result.pred_window)
        mask = result.pred_instances.masks[0].numpy()
        assert mask.any() and not mask[:y1].any() and not mask[:, :x1].any()


def test_tiled_fallback_only_for_samples_without_a_region(dataset):
    detector = _detector(dict(fusion='mask', tiled_fallback=dict(tile_size=512,
                                                                 overlap_ratio=0.2)))
    detector.mask_head.good, detector.mask_head.decoy = 0.9, 0.1
    indices = [0, 1, 2, 3]
    _script(detector, dataset, indices,
            lambda info: [(None, None)] if info['ann_index'] % 2 == 0 else
            [(_near_region(info), -0.1)])
    results = _run(detector, dataset, indices)
    assert len(detector.refiner.calls) == 1
    windows = detector.refiner.calls[0]['windows']
    expected_count = 0
    for i, result in zip(indices, results):
        info = dataset.get_data_info(i)
        size = (info['width'], info['height'])
        tiles = slice_windows(size, 512, 0.2)
        no_region = info['ann_index'] % 2 == 0
        expected_count += len(tiles) if no_region else 1
        assert result.fallback == ('tiled' if no_region else None)
        assert len(result.pred_hypotheses) == (len(tiles) if no_region else 1)
        assert _is_gt(result, info)  # the tile holding the GT wins over the decoys
        assert result.pred_instances.masks.shape == (1, info['height'], info['width'])
        if no_region:
            assert result.invalid_reason == 'explorer:no_answer_tag'  # still reported
            assert result.pred_region is None
            assert any(np.array_equal(result.pred_window, t) for t in tiles)
        else:
            assert result.invalid_reason is None
    assert len(windows) == expected_count


def test_no_fallback_and_all_regions_invalid_gives_an_empty_prediction(dataset):
    detector = _detector(dict(num_regions=2))
    _script(detector, dataset, [0], lambda info: [(None, None)])
    [result] = _run(detector, dataset, [0])
    info = dataset.get_data_info(0)
    assert len(result.pred_instances) == 0
    assert result.pred_instances.masks.shape == (0, info['height'], info['width'])
    assert result.invalid_reason == 'explorer:no_answer_tag' and result.pred_hypotheses == []
    assert detector.refiner.calls == []


def test_default_and_single_region_config_give_the_paper_chain(dataset):
    """multi_hypothesis=None is the paper's chain; dict(num_regions=1) gives the same prediction."""
    outputs = {}
    for name, multi in (('default', None), ('one', dict(num_regions=1, fusion='mask'))):
        detector = _detector(multi)
        _script(detector, dataset, [0, 1, 2],
                lambda info: [(_far_region(info) if info['ann_index'] == 1 else _near_region(info),
                               None)])
        outputs[name] = _run(detector, dataset, [0, 1, 2])
        assert len(detector.refiner.calls) == 1 and not detector.refiner.calls[0]['with_scores']
    for default, one in zip(outputs['default'], outputs['one']):
        for key in ('bboxes', 'scores', 'points', 'masks'):
            torch.testing.assert_close(default.pred_instances.get(key),
                                       one.pred_instances.get(key))
        for key in ('pred_answer', 'pred_region', 'pred_window', 'explorer_completion',
                    'refiner_completion', 'invalid_reason'):
            np.testing.assert_equal(default.get(key), one.get(key))
        assert 'pred_hypotheses' not in default and 'pred_hypotheses' in one


@MODELS.register_module(force=True)
class _OneRegionExplorer(BaseModule):
    def explore(self, views, image_sizes, queries):
        return []


def test_bad_multi_hypothesis_config_fails_at_build_time():
    with pytest.raises(KeyError, match=r"model\.multi_hypothesis: unknown key\(s\) \['k'\]"):
        _detector(dict(k=3))
    with pytest.raises(ValueError, match=r'model\.multi_hypothesis\.fusion'):
        _detector(dict(fusion='best'))
    init_default_scope('finers_mm')
    with pytest.raises(TypeError, match='needs an explorer whose explore.. takes num_regions'):
        MODELS.build(dict(type='FineRSDetector', explorer=dict(type='_OneRegionExplorer'),
                          refiner=dict(type='_WindowRefiner'), mask_head=dict(type='_BoxMaskHead'),
                          multi_hypothesis=dict(num_regions=2)))
    # one region needs nothing new from an explorer
    MODELS.build(dict(type='FineRSDetector', explorer=dict(type='_OneRegionExplorer'),
                      refiner=dict(type='_WindowRefiner'), mask_head=dict(type='_BoxMaskHead'),
                      multi_hypothesis=dict(num_regions=1, tiled_fallback={})))


# ------------------------------------------------------------------------------------------------
# The real tiny chain through tools/test.py
# ------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_multihyp_config_runs_through_tools_test(tiny_models, tmp_path):
    root = osp.dirname(tiny_models['sam'])
    out = tmp_path / 'preds.pkl'
    result = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'test.py'), MULTIHYP_CONFIG,
         '--work-dir', str(tmp_path), '--out', str(out), '--cfg-options',
         f"model.explorer.vlm.pretrained={tiny_models['qwen2_5_vl']}",
         f"model.refiner.vlm.pretrained={tiny_models['qwen2_5_vl']}",
         f'model.mask_head.config={root}/sam_tiny.json',
         f"model.mask_head.checkpoint={tiny_models['sam']}"],
        cwd=REPO_ROOT, env=dict(os.environ, OMP_NUM_THREADS='1'), capture_output=True, text=True,
        timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    import re
    giou = float(re.search(r'finers/gIoU: ([0-9.]+)', result.stdout).group(1))
    invalid = float(re.search(r'finers/invalid_rate: ([0-9.]+)', result.stdout).group(1))
    assert 0.0 <= giou <= 100.0 and 0.0 <= invalid <= 100.0  # both percent
    import pickle
    with open(out, 'rb') as f:
        predictions = pickle.load(f)
    assert len(predictions) == 12
    for pred in predictions:
        assert 'pred_hypotheses' in pred and pred['fallback'] in (None, 'tiled')
        assert len(pred['pred_instances']['bboxes']) in (0, 1)


def test_multihyp_config_inherits_the_tiny_chain():
    base, multi = Config.fromfile(TINY_CONFIG), Config.fromfile(MULTIHYP_CONFIG)
    assert base.model.get('multi_hypothesis') is None
    parsed = parse_multi_hypothesis(copy.deepcopy(multi.model.multi_hypothesis),
                                    multi.frames.crop_min_side)
    assert parsed.num_regions > 1 and parsed.adaptive_window and parsed.tiled_fallback
    assert multi.model.explorer.vlm == base.model.explorer.vlm
