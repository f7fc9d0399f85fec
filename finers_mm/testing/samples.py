# Copyright (c) finers_mm contributors. All rights reserved.
"""Data samples as the FineRS chain predicts them, and random masks, for metric tests."""
import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData

from finers_mm.structures.answers import FOUND_RESPONSE


def make_sample(gt_mask, pred_masks, question_type='segmentation', answer=FOUND_RESPONSE,
                pred_answer=FOUND_RESPONSE, options=None, attribute='colors',
                size_bucket='S', invalid_reason=None, ann_index=0, img_id='a.jpg'):
    """A DetDataSample as FineRSDetector.predict returns it (GT from PackFineRSInputs).

    Args:
        gt_mask: (H, W) GT mask.
        pred_masks: (K, H, W) or (H, W) predicted masks (K = 0: an empty prediction).
        question_type, answer, pred_answer, options, attribute, size_bucket, invalid_reason,
        ann_index, img_id: the metainfo of the sample.

    Returns:
        DetDataSample: ``gt_instances`` (BitmapMasks) and ``pred_instances`` (masks, their
        boxes, scores, labels, points).
    """
    gt_mask = np.asarray(gt_mask, bool)
    height, width = gt_mask.shape
    pred_masks = np.asarray(pred_masks, bool).reshape(-1, height, width)
    sample = DetDataSample()
    sample.set_metainfo(dict(
        img_id=img_id, ann_index=ann_index, ori_shape=(height, width), question=f'q{ann_index}',
        question_type=question_type, answer=answer, options=options or {}, attribute=attribute,
        size_bucket=size_bucket, area_percent=0.01, pred_answer=pred_answer,
        invalid_reason=invalid_reason))
    sample.gt_instances = InstanceData(
        masks=BitmapMasks(gt_mask[None].astype(np.uint8), height, width),
        bboxes=torch.zeros(1, 4), labels=torch.zeros(1, dtype=torch.long))
    boxes = []
    for m in pred_masks:
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if xs.size else [0, 0, 0, 0])
    k = len(pred_masks)
    sample.pred_instances = InstanceData(
        masks=torch.from_numpy(pred_masks),
        bboxes=torch.tensor(boxes, dtype=torch.float32).view(k, 4),
        scores=torch.linspace(0.9, 0.5, k), labels=torch.zeros(k, dtype=torch.long),
        points=torch.zeros(k, 2, 2))
    return sample


def random_blobs(rng: np.random.Generator, shape, count: int) -> np.ndarray:
    """(count, H, W) bool masks, each a union of 1-3 random rectangles of ``shape = (H, W)``."""
    height, width = shape
    masks = np.zeros((count, height, width), bool)
    for mask in masks:
        for _ in range(rng.integers(1, 4)):
            y, x = rng.integers(0, height), rng.integers(0, width)
            mask[y:y + rng.integers(1, height // 2 + 2), x:x + rng.integers(1, width // 2 + 2)] = 1
    return masks
