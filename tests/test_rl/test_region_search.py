# Copyright (c) finers_mm contributors. All rights reserved.
"""Retrospective best-region search, the library's part (:mod:`finers_mm.rl.region_search`):
candidate regions and their windows, the score, the batched search.

A scripted refiner pins down the choice (:mod:`finers_mm.testing.region_search`): the real
LocalRefiner whose adapter answers what a test's script says for the window it is shown. The
resumable job over an annotation file and its CLI: tests/test_tools/test_search_best_region.py.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mmengine.registry import init_default_scope

from finers_mm.models.stages import RefinerOutput
from finers_mm.registry import MODELS
from finers_mm.rl.region_search import (CandidateRegions, best_candidate, localization_ious,
                                        preference_order, search_batch)
from finers_mm.structures import (box_contains, crop_window_from_region, explorer_to_original,
                                  region_around_box)
from finers_mm.testing.region_search import (CROP_MIN_SIDE, EXPLORER_SIZE, REGION_SIZE,
                                             bundled_infos)
from finers_mm.testing.scripted import THINK, record_for


@pytest.fixture(scope='module')
def refiner(tiny_models):
    init_default_scope('finers_mm')
    return MODELS.build(dict(
        type='WindowAwareRefiner', frame_size=(512, 512),
        vlm=dict(type='WindowScriptedAdapter', pretrained=tiny_models['qwen2_5_vl'],
                 freeze=True))).eval()


# ----------------------------------------------------------------------------------------------
# Candidates
# ----------------------------------------------------------------------------------------------


def _random_boxes(rng, frame, count, max_side):
    boxes = []
    for _ in range(count):
        w, h = rng.uniform(1, max_side, size=2)
        x1, y1 = rng.uniform(0, frame[0] - w), rng.uniform(0, frame[1] - h)
        boxes.append(np.array([x1, y1, x1 + w, y1 + h], np.float32))
    return boxes


@pytest.mark.parametrize('rule, num_candidates', [('random', 8), ('grid', 10)])
@pytest.mark.parametrize('frame, image', [((1920, 1080), (3840, 2160)),
                                          ((1920, 1080), (1920, 1080)), ((300, 200), (1000, 700))])
def test_candidates_contain_the_gt_and_start_with_the_centred_region(rule, num_candidates, frame,
                                                                     image):
    candidates = CandidateRegions(frame, REGION_SIZE, CROP_MIN_SIDE, num_candidates, rule, seed=1)
    sides = np.array([min(REGION_SIZE, frame[0]), min(REGION_SIZE, frame[1])])
    scale = np.array([image[0] / frame[0], image[1] / frame[1]])
    moved = 0
    for index, gt in enumerate(_random_boxes(np.random.default_rng(0), frame, 50, 200)):
        regions = candidates.explorer_regions(gt, index)
        assert regions.shape == (num_candidates, 4)
        np.testing.assert_array_equal(regions[0], region_around_box(gt, frame, REGION_SIZE))
        for region in regions:
            assert box_contains(region, gt, tol=1e-3), (region, gt)
            np.testing.assert_allclose(region[2:] - region[:2], sides, rtol=1e-5)
            assert region[0] >= 0 and region[1] >= 0
            assert region[2] <= frame[0] and region[3] <= frame[1]
        moved += len(np.unique(regions[:, :2], axis=0)) > 1

        gt_original = explorer_to_original(gt, image, frame)
        originals, windows = candidates(gt_original, image, index)
        np.testing.assert_allclose(originals[0], explorer_to_original(regions[0], image, frame),
                                   atol=1e-3)
        assert len(np.unique(windows, axis=0)) == len(windows) <= num_candidates
        for region, window in zip(originals, windows):
            np.testing.assert_allclose(region[2:] - region[:2], sides * scale, rtol=1e-5)
            assert box_contains(region, gt_original, tol=1e-2)
            np.testing.assert_array_equal(window,
                                          crop_window_from_region(region, image, CROP_MIN_SIDE))
            assert box_contains(window, gt_original, tol=1e-2)
    assert moved >= 40  # the candidates do move around


def test_candidates_are_deterministic_per_record_and_seed():
    gt = np.array([900.0, 500.0, 930.0, 520.0])

    def regions(seed, index, rule='random'):
        num = 10 if rule == 'grid' else 8
        return CandidateRegions(EXPLORER_SIZE, REGION_SIZE, CROP_MIN_SIDE, num, rule,
                                seed).explorer_regions(gt, index)

    np.testing.assert_array_equal(regions(0, 3), regions(0, 3))
    assert not np.array_equal(regions(0, 3), regions(0, 4))
    assert not np.array_equal(regions(0, 3), regions(1, 3))
    np.testing.assert_array_equal(regions(0, 3)[0], regions(1, 4)[0])  # centred: no randomness
    np.testing.assert_array_equal(regions(0, 3, 'grid'), regions(5, 9, 'grid'))


def test_grid_spans_the_placements_from_touching_one_side_to_the_other():
    gt = np.array([900.5, 500.5, 930.0, 520.0])
    regions = CandidateRegions(EXPLORER_SIZE, REGION_SIZE, CROP_MIN_SIDE, 10,
                               'grid').explorer_regions(gt, 0)
    lattice = regions[1:]
    xs, ys = [674, 787, 900], [264, 382, 500]  # ceil(930 - 256) .. floor(900.5), same for y
    assert [tuple(r[:2]) for r in lattice] == [(x, y) for y in ys for x in xs]


def test_gt_longer_than_the_region_keeps_the_centred_position_along_that_axis():
    gt = np.array([600.0, 500.0, 900.0, 520.0])  # 300 px wide, the region 256
    candidates = CandidateRegions(EXPLORER_SIZE, REGION_SIZE, CROP_MIN_SIDE, 8, 'random')
    regions = candidates.explorer_regions(gt, 0)
    np.testing.assert_array_equal(regions[:, 0], np.full(8, 750.0 - 128))
    assert len(np.unique(regions[:, 1])) > 1
    assert all(region[1] <= 500 and region[3] >= 520 for region in regions)


def test_repeated_windows_are_dropped():
    # a GT in the top-left corner: every region's window is shifted to [0, 0, 512, 512]
    candidates = CandidateRegions(EXPLORER_SIZE, REGION_SIZE, CROP_MIN_SIDE, 8, 'random')
    regions, windows = candidates(np.array([2.0, 2.0, 12.0, 12.0]), EXPLORER_SIZE, 0)
    assert len(regions) == 1 and windows.tolist() == [[0, 0, 512, 512]]
    np.testing.assert_array_equal(
        regions[0], region_around_box([2.0, 2.0, 12.0, 12.0], EXPLORER_SIZE, REGION_SIZE))


def _their_choice(scores):
    """The authors' loop over ``region_list = 4 random windows + [the centred one]``:
    ``if iou >= max_iou: max_iou, best_region = iou, bbox`` from ``max_iou = 0``. ``scores`` is in
    our order (the centred candidate first); returns the chosen index in our order."""
    region_list = list(range(1, len(scores))) + [0]
    max_iou, best_region = 0, None
    for candidate in region_list:
        iou = scores[candidate]
        if iou >= max_iou:
            max_iou = iou
            best_region = candidate
    return best_region


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75]), min_size=1, max_size=9))
def test_centred_then_last_is_the_authors_choice(scores):
    """Ties are common (few distinct scores): their loop and ours pick the same candidate."""
    assert best_candidate(scores, 'centred_then_last') == _their_choice(scores)
    first = best_candidate(scores, 'first')
    assert scores[first] == max(scores) and first == scores.index(max(scores))


def test_tie_rules_by_hand():
    assert preference_order(5, 'first') == [0, 1, 2, 3, 4]
    assert preference_order(5, 'centred_then_last') == [0, 4, 3, 2, 1]
    assert preference_order(1, 'centred_then_last') == [0]
    for rule in ('first', 'centred_then_last'):
        assert best_candidate([0.0] * 5, rule) == 0  # all fail: the centred region
        assert best_candidate([0.6, 0.6, 0.2, 0.6, 0.1], rule) == 0  # the centred wins its ties
    assert best_candidate([0.3, 0.6, 0.2, 0.6, 0.1], 'first') == 1
    assert best_candidate([0.3, 0.6, 0.2, 0.6, 0.1], 'centred_then_last') == 3
    with pytest.raises(ValueError, match='tie_rule must be one of'):
        best_candidate([0.1], 'last')


def test_candidates_follow_the_protocol():
    default = CandidateRegions(EXPLORER_SIZE, REGION_SIZE, CROP_MIN_SIDE)
    assert (default.num_candidates, default.tie_rule) == (8, 'first')
    authors = CandidateRegions(EXPLORER_SIZE, REGION_SIZE, CROP_MIN_SIDE, protocol='authors')
    assert (authors.num_candidates, authors.tie_rule) == (5, 'centred_then_last')  # 4 + centred
    assert authors.settings['tie_rule'] == 'centred_then_last'
    assert authors.best([0.3, 0.6, 0.2, 0.6, 0.1]) == 3 and default.best([0.3, 0.6, 0.6]) == 1
    explicit = CandidateRegions(EXPLORER_SIZE, REGION_SIZE, CROP_MIN_SIDE, 3, tie_rule='first',
                                protocol='authors')
    assert (explicit.num_candidates, explicit.tie_rule) == (3, 'first')  # explicit values win
    gt = np.array([1800.0, 1000.0, 1830.0, 1020.0])
    regions, windows = authors(gt, (3840, 2160), 7)
    assert 1 <= len(regions) <= 5 and len(authors.explorer_regions(gt / 2, 7)) == 5
    with pytest.raises(ValueError, match='unknown protocol'):
        CandidateRegions(EXPLORER_SIZE, REGION_SIZE, CROP_MIN_SIDE, protocol='paper')


def test_repeated_windows_keep_the_candidate_the_tie_rule_prefers():
    """Regions at the left border whose windows are shifted to the same place: 'first' keeps the
    earliest drawn, 'centred_then_last' the latest (what the authors' loop would keep)."""
    frame, image, region_size, min_side = (100, 100), (1000, 1000), 10, 200
    gt = np.array([1.0, 40.0, 3.0, 42.0])  # explorer pixels: x starts 0 or 1, y starts 32..40
    found = 0
    for index in range(100):
        kept = {}
        for rule in ('first', 'centred_then_last'):
            candidates = CandidateRegions(frame, region_size, min_side, 8, seed=0, tie_rule=rule)
            all_regions = explorer_to_original(candidates.explorer_regions(gt, index), image,
                                               frame)
            all_windows = [tuple(crop_window_from_region(r, image, min_side))
                           for r in all_regions]
            regions, windows = candidates(explorer_to_original(gt, image, frame), image, index)
            listed = [tuple(w) for w in windows]
            assert listed[0] == all_windows[0] and len(set(listed)) == len(listed)
            assert set(listed) == set(all_windows)  # each view once, the centred region first
            kept[rule] = {tuple(w): tuple(r) for r, w in zip(regions, windows)}
        for window in kept['first']:
            repeats = [k for k in range(1, 8) if all_windows[k] == window]
            if window == all_windows[0] or len(repeats) < 2:
                continue
            regions_of = {k: tuple(all_regions[k]) for k in repeats}
            if regions_of[repeats[0]] == regions_of[repeats[-1]]:
                continue
            found += 1
            assert kept['first'][window] == regions_of[repeats[0]]
            assert kept['centred_then_last'][window] == regions_of[repeats[-1]]
    assert found >= 5


@pytest.mark.parametrize('kwargs, message', [
    (dict(num_candidates=8, rule='grid'), r'1 \+ g \* g'),
    (dict(rule='spiral'), 'rule must be one of'),
    (dict(num_candidates=0), 'num_candidates must be >= 1'),
    (dict(tie_rule='last'), 'tie_rule must be one of'),
])
def test_bad_candidate_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CandidateRegions(EXPLORER_SIZE, REGION_SIZE, CROP_MIN_SIDE, **kwargs)


# ----------------------------------------------------------------------------------------------
# Scores and the batched search
# ----------------------------------------------------------------------------------------------


def test_localization_ious_score_only_usable_boxes():
    gt = np.array([10.0, 10.0, 30.0, 30.0])
    points = np.array([[20.0, 20.0], [21.0, 21.0]], np.float32)

    def out(box, pts=points, invalid=None):
        return RefinerOutput(box=None if box is None else np.asarray(box, np.float32), points=pts,
                             answer='x', completion='', invalid=invalid)

    ious = localization_ious([
        out(gt), out([20, 10, 40, 30]), out(None, invalid='bad_bbox'), out([0, 0, 0, 0]),
        out(gt, pts=None, invalid='bad_points'), out(gt, invalid='empty_response')], gt)
    np.testing.assert_allclose(ious, [1.0, 1 / 3, 0.0, 0.0, 0.0, 1.0], atol=1e-6)
    assert localization_ious([], gt).shape == (0, )


def test_search_batch_picks_the_window_where_the_refiner_does_best(refiner):
    infos = [bundled_infos()[i] for i in (1, 5, 10)]
    candidates = CandidateRegions(EXPLORER_SIZE, REGION_SIZE, CROP_MIN_SIDE, 6, 'random', seed=3)
    per_record = {info['ann_index']: candidates(info['gt_bbox'], (info['width'], info['height']),
                                                info['ann_index']) for info in infos}
    targets = {}
    for info in infos:  # the last candidate is the refiner's best window
        assert len(per_record[info['ann_index']][1]) >= 4
        targets[info['ann_index']] = len(per_record[info['ann_index']][1]) - 1

    def script(view, prompt, window):
        info = record_for(bundled_infos(), prompt)
        windows = per_record[info['ann_index']][1]
        [k] = [k for k, w in enumerate(windows) if np.array_equal(w, window)]
        gt = np.asarray(info['gt_bbox'], np.float64)
        if k == targets[info['ann_index']]:
            return refiner.vlm.answer(gt, view, window)
        if k == 1:
            return 'garbage without an answer'
        if k == 2:
            return THINK + '<answer>{"bbox": [0, 0, 0, 0], "points_1": [0, 0], "points_2": ' \
                           '[0, 0], "response": "No object found"}</answer>'
        return refiner.vlm.answer(gt + (gt[2] - gt[0]) * 0.3, view, window)  # a worse box

    refiner.vlm.script, refiner.vlm.calls = script, []
    images = [np.zeros((info['height'], info['width'], 3), np.uint8) for info in infos]
    results = search_batch(refiner, images, infos, candidates)

    assert refiner.vlm.calls == [sum(len(w) for _, w in per_record.values())]  # ONE refine call
    for info, result in zip(infos, results):
        regions, windows = per_record[info['ann_index']]
        target = targets[info['ann_index']]
        assert result.best_region == tuple(float(v) for v in regions[target])
        assert len(result.ious) == len(windows)
        assert result.ious[target] == pytest.approx(1.0, abs=1e-4)
        assert result.ious[1] == result.ious[2] == 0.0
        assert 0.0 < result.ious[0] < 0.9 and result.improved


def test_ties_keep_the_first_candidate_the_centred_region(refiner):
    infos = [bundled_infos()[4]]
    candidates = CandidateRegions(EXPLORER_SIZE, REGION_SIZE, CROP_MIN_SIDE, 6, 'random', seed=3)
    regions, _ = candidates(infos[0]['gt_bbox'], (infos[0]['width'], infos[0]['height']), 4)
    refiner.vlm.script = lambda view, prompt, window: 'no answer at all'
    [result] = search_batch(refiner, [np.zeros((1080, 1920, 3), np.uint8)], infos, candidates)
    assert result.best_region == tuple(float(v) for v in regions[0])
    assert set(result.ious) == {0.0} and not result.improved


@pytest.mark.parametrize('protocol, expected', [('finers_mm', 2), ('authors', 3)])
def test_search_batch_breaks_ties_by_the_protocol(refiner, protocol, expected):
    """Candidates 2 and 3 get the same box, better than the others': finers_mm keeps the first of
    them, the authors' loop the last. The centred region still wins a tie it is in."""
    infos = [bundled_infos()[1]]
    info = infos[0]
    candidates = CandidateRegions(EXPLORER_SIZE, REGION_SIZE, CROP_MIN_SIDE, 6, 'random', seed=3,
                                  protocol=protocol)
    regions, windows = candidates(info['gt_bbox'], (info['width'], info['height']), 1)
    assert len(windows) >= 4
    gt = np.asarray(info['gt_bbox'], np.float64)

    def script(view, prompt, window, tied=(2, 3), others=0.6):
        [k] = [k for k, w in enumerate(windows) if np.array_equal(w, window)]
        shift = 0.2 if k in tied else others  # the tied windows' box is the better one
        return refiner.vlm.answer(gt + (gt[2] - gt[0]) * shift, view, window)

    refiner.vlm.script = script
    image = [np.zeros((info['height'], info['width'], 3), np.uint8)]
    [result] = search_batch(refiner, image, infos, candidates)
    assert result.ious[2] == result.ious[3] == max(result.ious) > result.ious[0]
    assert result.best_region == tuple(float(v) for v in regions[expected])

    refiner.vlm.script = lambda view, prompt, window: script(view, prompt, window, (0, 2, 3))
    [result] = search_batch(refiner, image, infos, candidates)
    assert result.ious[0] == result.ious[3] == max(result.ious)
    assert result.best_region == tuple(float(v) for v in regions[0]) and not result.improved
