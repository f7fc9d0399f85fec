# Copyright (c) finers_mm contributors. All rights reserved.
"""ReasonSegMetric against LISA's evaluation re-derived in its own control flow.

The reference below is LISA's ``utils/utils.py::intersectionAndUnionGPU`` (ignore pixels set to
255 in the prediction, ``torch.histc`` over the classes 0..K-1) and the accumulation of
``train_ds.py::validate`` (per mask ``intersection / (union + 1e-5)``, ``+= 1.0`` where the union is
0, cIoU = summed intersections / (summed unions + 1e-10), class 1), run on CPU in float.
"""
import numpy as np
import pytest
import torch

from finers_mm.evaluation import ReasonSegMetric, lisa_overlap, lisa_scores
from finers_mm.registry import METRICS
from finers_mm.testing.samples import make_sample, random_blobs


def intersection_and_union(output, target, k, ignore_index=255):
    """LISA's intersectionAndUnionGPU, on float tensors (torch.histc on CPU needs floats)."""
    output = output.reshape(-1).clone()
    target = target.reshape(-1)
    output[target == ignore_index] = ignore_index
    intersection = output[output == target]
    area_intersection = torch.histc(intersection, bins=k, min=0, max=k - 1)
    area_output = torch.histc(output, bins=k, min=0, max=k - 1)
    area_target = torch.histc(target, bins=k, min=0, max=k - 1)
    return area_intersection, area_output + area_target - area_intersection


def lisa_validate(label_maps, predictions):
    """LISA's validate(): one mask per query; returns (gIoU, cIoU) as fractions."""
    intersection_sum, union_sum, acc_iou_sum = 0.0, 0.0, 0.0
    for label_map, pred in zip(label_maps, predictions):
        inter, union = intersection_and_union(
            torch.from_numpy(pred.astype(np.float32)), torch.from_numpy(
                label_map.astype(np.float32)), 2)
        acc_iou = inter / (union + 1e-5)
        acc_iou[union == 0] += 1.0  # no-object target
        intersection_sum += inter
        union_sum += union
        acc_iou_sum += acc_iou
    ciou = (intersection_sum / (union_sum + 1e-10))[1]
    giou = (acc_iou_sum / len(label_maps))[1]
    return float(giou), float(ciou)


def random_case(rng, shape):
    """A label map (0 / 1 / 255) and a prediction; sometimes an empty GT and / or prediction."""
    target, ignore = random_blobs(rng, shape, 2)
    kind = rng.integers(0, 6)
    if kind == 0:
        target[:] = False  # empty GT (with or without ignore pixels)
    label_map = np.where(ignore, 255, np.where(target, 1, 0)).astype(np.uint8)
    pred = random_blobs(rng, shape, 1)[0]
    if kind in (0, 1):
        pred[:] = False  # kind 0: both empty (outside the ignore region) -> LISA's 1.0
    return label_map, pred


def metric_sample(label_map, pred, empty_as_zero_masks=False, query_type=None):
    gt = label_map == 1
    ignore = label_map == 255
    pred_masks = pred[None] if not (empty_as_zero_masks and not pred.any()) else \
        np.zeros((0, ) + pred.shape, bool)
    sample = make_sample(gt, pred_masks)
    sample.set_metainfo(dict(gt_ignore_mask=ignore if ignore.any() else None))
    if query_type is not None:
        sample.set_metainfo(dict(query_type=query_type))
    return sample


@pytest.mark.parametrize('seed', range(5))
def test_scores_equal_lisa_validate_on_random_masks_with_ignore_pixels(seed):
    rng = np.random.default_rng(seed)
    cases = [random_case(rng, (int(rng.integers(8, 40)), int(rng.integers(8, 40))))
             for _ in range(24)]
    giou, ciou = lisa_validate(*zip(*cases))
    pairs = [lisa_overlap(p[None], m == 1, m == 255) for m, p in cases]
    scores = lisa_scores(*zip(*pairs))
    assert scores['gIoU'] == pytest.approx(100 * giou, rel=1e-5)
    assert scores['cIoU'] == pytest.approx(100 * ciou, rel=1e-5)
    # the metric, with FineRS's empty prediction (0 masks) for the empty ones, gives the same
    metric = METRICS.build(dict(type='ReasonSegMetric'))
    metric.process({}, [metric_sample(m, p, empty_as_zero_masks=True).to_dict()
                        for m, p in cases])
    result = metric.compute_metrics(metric.results)
    assert result['gIoU'] == pytest.approx(100 * giou, rel=1e-5)
    assert result['cIoU'] == pytest.approx(100 * ciou, rel=1e-5)
    assert result['num_samples'] == 24


def test_ignore_pixels_cost_nothing_and_lisa_quirks_by_hand():
    label_map = np.zeros((10, 10), np.uint8)
    label_map[2:6, 2:6] = 1  # 16 target pixels
    label_map[6:8, 2:6] = 255  # 8 ignore pixels next to it
    pred = np.zeros((10, 10), bool)
    pred[2:8, 2:6] = True  # covers the target and the ignore region
    assert lisa_overlap(pred[None], label_map == 1, label_map == 255) == (16, 16)
    assert lisa_overlap(pred[None], label_map == 1) == (16, 24)  # without the ignore map
    # K = 2 masks count as their union; K = 0 as all background
    halves = np.stack([pred & (np.arange(10) < 4)[:, None], pred & (np.arange(10) >= 4)[:, None]])
    assert lisa_overlap(halves, label_map == 1, label_map == 255) == (16, 16)
    assert lisa_overlap(np.zeros((0, 10, 10)), label_map == 1, label_map == 255) == (0, 16)
    # both empty: 1 in gIoU (LISA's "no-object target"), nothing in cIoU; all empty: cIoU 0
    assert lisa_scores([0, 8], [0, 16]) == pytest.approx(
        dict(gIoU=100 * (1 + 8 / (16 + 1e-5)) / 2, cIoU=100 * 8 / (16 + 1e-10)))
    assert lisa_scores([0, 0], [0, 0]) == dict(gIoU=100.0, cIoU=0.0)
    assert lisa_scores([], []) == {}
    # a prediction inside the ignore region only, empty GT: both empty after the ignore -> 1
    assert lisa_overlap(pred[None] & (label_map == 255), np.zeros((10, 10)),
                        label_map == 255) == (0, 0)


def test_metric_reports_query_types_and_empty_predictions():
    full = np.zeros((6, 6), np.uint8)
    full[1:5, 1:5] = 1
    hit, miss = full == 1, np.zeros((6, 6), bool)
    half = hit & (np.arange(6) < 3)[:, None]  # 8 of the 16 target pixels
    samples = [metric_sample(full, hit, query_type='short'),
               metric_sample(full, miss, empty_as_zero_masks=True, query_type='short'),
               metric_sample(full, half, query_type='long')]
    metric = ReasonSegMetric()
    metric.process({}, samples)  # DetDataSample accepted as well as dicts
    result = metric.compute_metrics(metric.results)
    eps = 1e-5
    assert result['gIoU'] == pytest.approx(100 * (16 / (16 + eps) + 0 + 8 / (16 + eps)) / 3)
    assert result['cIoU'] == pytest.approx(100 * 24 / 48)
    assert result['short_gIoU'] == pytest.approx(100 * (16 / (16 + eps)) / 2)
    assert result['short_cIoU'] == pytest.approx(100 * 16 / 32)
    assert result['long_gIoU'] == pytest.approx(100 * 8 / (16 + eps))
    assert result['empty_predictions'] == pytest.approx(100 / 3)
    assert metric.default_prefix == 'reasonseg'
    # no query type (the parquet mirror): overall figures only
    metric = ReasonSegMetric()
    metric.process({}, [metric_sample(full, hit)])
    assert not any(k.startswith(('short', 'long')) for k in metric.compute_metrics(metric.results))


def test_metric_errors_name_the_sample():
    sample = make_sample(np.ones((4, 4), bool), np.ones((1, 4, 4), bool), img_id='x.jpg')
    sample = sample.to_dict()
    sample['pred_instances']['masks'] = torch.ones(1, 4, 5, dtype=torch.bool)
    sample['gt_ignore_mask'] = np.zeros((4, 4), bool)
    with pytest.raises(ValueError, match="img_id='x.jpg'.*not of the GT mask size"):
        ReasonSegMetric().process({}, [sample])
    sample = make_sample(np.ones((4, 4), bool), np.ones((1, 4, 4), bool)).to_dict()
    del sample['gt_instances']['masks']
    with pytest.raises(KeyError, match='LoadReasonSegMask'):
        ReasonSegMetric().process({}, [sample])
    with pytest.raises(ValueError, match='ignore mask'):
        lisa_overlap(np.ones((1, 4, 4)), np.ones((4, 4)), np.zeros((4, 5)))
