# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRSMetric's cIoU against mmseg's ``IoUMetric`` on the same predictions.

mmseg's ``IoUMetric`` sums each class's intersection and union over the dataset before dividing,
so with the classes ``('background', 'object')`` its ``'object'`` IoU is a cIoU: the total
intersection over the total union of the predicted and GT foreground. Each FineRS sample becomes an
mmseg sample (``pred_sem_seg`` the union of its predicted masks, ``gt_sem_seg`` its GT mask) and the
two numbers must agree to float precision, on random masks and on detector outputs.
"""
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.evaluation import IoUMetric
from mmseg.structures import SegDataSample

from finers_mm.evaluation import FineRSMetric
from finers_mm.testing.chains import MMSEG_CONFIG, SAM_CONFIG, oracle_chain
from finers_mm.testing.samples import make_sample, random_blobs

CLASSES = ('background', 'object')


def to_seg_sample(sample) -> dict:
    """A FineRS ``DetDataSample`` as mmseg's evaluator passes a ``SegDataSample`` (``to_dict()``).

    Args:
        sample (DetDataSample): ``pred_instances.masks`` (K, H, W) (K may be 0) and
            ``gt_instances.masks`` (G, H, W), full-image ORIGINAL pixels.

    Returns:
        dict: ``pred_sem_seg.data`` and ``gt_sem_seg.data`` (1, H, W) int64, 1 on the union of the
        masks (class ``'object'``), 0 elsewhere.
    """
    gt = sample.gt_instances.masks.to_ndarray().astype(bool).any(axis=0)
    pred = sample.pred_instances.masks.numpy().astype(bool).any(axis=0) if len(
        sample.pred_instances) else np.zeros_like(gt)
    seg = SegDataSample()
    seg.pred_sem_seg = PixelData(data=torch.from_numpy(pred[None].astype(np.int64)))
    seg.gt_sem_seg = PixelData(data=torch.from_numpy(gt[None].astype(np.int64)))
    return seg.to_dict()


def both_metrics(samples) -> tuple:
    """FineRSMetric's metrics and mmseg IoUMetric's per-class IoU (fractions) and its metrics."""
    finers = FineRSMetric()
    finers.process({}, samples)
    finers_metrics = finers.compute_metrics(finers.results)
    mmseg = IoUMetric(iou_metrics=['mIoU'])
    mmseg.dataset_meta = dict(classes=CLASSES)
    mmseg.process({}, [to_seg_sample(s) for s in samples])
    totals = [sum(column) for column in zip(*mmseg.results)]
    per_class_iou = IoUMetric.total_area_to_metrics(*totals, metrics=['mIoU'])['IoU']
    return finers_metrics, per_class_iou, mmseg.evaluate(len(samples))


def assert_agree(samples) -> float:
    """mmseg's 'object' IoU == FineRSMetric's cIoU; its mIoU (rounded to 0.01) too. Returns cIoU."""
    finers_metrics, per_class_iou, mmseg_metrics = both_metrics(samples)
    c_iou = finers_metrics['cIoU'] / 100
    assert float(per_class_iou[CLASSES.index('object')]) == pytest.approx(c_iou, rel=1e-6)
    assert mmseg_metrics['mIoU'] == pytest.approx(
        round(100 * float(np.mean(per_class_iou)), 2), abs=1e-9)
    return c_iou


@pytest.mark.parametrize('seed', range(5))
def test_ciou_equals_mmseg_object_iou_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    samples = []
    for index in range(8):
        shape = (int(rng.integers(20, 90)), int(rng.integers(20, 90)))
        gt = random_blobs(rng, shape, 1)[0]
        pred = random_blobs(rng, shape, int(rng.integers(0, 3)))  # K = 0: an empty prediction
        if index == 0:
            pred = gt[None].copy()  # one exact prediction
        samples.append(make_sample(gt, pred, ann_index=index))
    c_iou = assert_agree(samples)
    assert 0 < c_iou < 1


@pytest.mark.parametrize('config_file', [SAM_CONFIG, MMSEG_CONFIG], ids=['sam', 'mmseg'])
def test_ciou_equals_mmseg_object_iou_on_detector_outputs(tiny_models, config_file):
    _, results = oracle_chain(config_file, tiny_models)
    assert 0 < assert_agree(results) < 1
