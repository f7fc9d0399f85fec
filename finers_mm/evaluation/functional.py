# Copyright (c) finers_mm contributors. All rights reserved.
"""Pure functions behind :class:`~finers_mm.evaluation.FineRSMetric`: mask overlap, gIoU / cIoU
and the COCO conversions (image ids, boxes, RLE).

Empty masks (``empty_rule``): a sample whose GT mask AND prediction are both empty has a 0 / 0 IoU.
Peers disagree on what it counts as: LISA's evaluation (and code derived from it) adds 1.0 for
such a "no-object target", mmdet's ``RefSegMetric`` turns the NaN into 0, and others leave the
sample out. So it is a choice:

- ``'one'``: IoU 1 (the prediction is right: nothing to segment, nothing segmented);
- ``'zero'``: IoU 0;
- ``'skip'``: the sample is left out of gIoU and cIoU.

An empty prediction against a non-empty GT (or the reverse) is IoU 0 under every rule. cIoU sums
intersections and unions, to which a both-empty sample adds 0 / 0; the rule decides cIoU only when
every counted sample is both-empty (``'one'`` -> 1, ``'zero'`` -> 0, ``'skip'`` -> none).
"""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util

EMPTY_RULES = ('one', 'zero', 'skip')
#: the one COCO category of the FineRS exports (COCO category ids start at 1)
COCO_CATEGORY_ID = 1


def check_empty_rule(empty_rule: str) -> str:
    """Return ``empty_rule`` if it is one of :data:`EMPTY_RULES`.

    Args:
        empty_rule (str): ``'one'``, ``'zero'`` or ``'skip'``.

    Returns:
        str: ``empty_rule``.

    Raises:
        ValueError: any other value.
    """
    if empty_rule not in EMPTY_RULES:
        raise ValueError(f'unknown empty_rule {empty_rule!r}; expected one of {EMPTY_RULES}')
    return empty_rule


def mask_overlap(pred_masks: np.ndarray, gt_masks: np.ndarray) -> Tuple[int, int, int, int]:
    """Overlap of the union of the predicted masks with the union of the GT masks.

    Args:
        pred_masks (np.ndarray): (K, H, W) predicted masks, any dtype (nonzero is foreground);
            K may be 0 (empty prediction), and then H, W are not checked.
        gt_masks (np.ndarray): (G, H, W) GT masks, G >= 1.

    Returns:
        tuple[int, int, int, int]: intersection, union, predicted area and GT area in pixels.

    Raises:
        ValueError: K > 0 and the predicted masks are not of the GT's size.
    """
    gt = np.asarray(gt_masks).astype(bool, copy=False).any(axis=0)
    pred_masks = np.asarray(pred_masks)
    if len(pred_masks) == 0:
        gt_area = int(np.count_nonzero(gt))
        return 0, gt_area, 0, gt_area
    if pred_masks.shape[1:] != gt.shape:
        raise ValueError(f'predicted masks {tuple(pred_masks.shape)} are not of the GT mask size '
                         f'{gt.shape}: predict full-image masks in original pixels')
    pred = pred_masks.astype(bool, copy=False).any(axis=0)
    return (int(np.count_nonzero(pred & gt)), int(np.count_nonzero(pred | gt)),
            int(np.count_nonzero(pred)), int(np.count_nonzero(gt)))


def sample_iou(intersection: int, union: int, empty_rule: str) -> Optional[float]:
    """IoU of one sample (module docstring: ``empty_rule``).

    Args:
        intersection (int): intersection in pixels.
        union (int): union in pixels; 0 means GT and prediction are both empty.
        empty_rule (str): ``'one'``, ``'zero'`` or ``'skip'``.

    Returns:
        float, optional: IoU in [0, 1]; None when the sample is skipped.
    """
    if union > 0:
        return intersection / union
    return {'one': 1.0, 'zero': 0.0, 'skip': None}[check_empty_rule(empty_rule)]


def segmentation_scores(intersections: Sequence[int], unions: Sequence[int],
                        empty_rule: str) -> Dict[str, float]:
    """gIoU (mean per-sample IoU) and cIoU (total intersection / total union) of some samples, in
    percent (the unit of every :class:`~finers_mm.evaluation.FineRSMetric` figure).

    Args:
        intersections (Sequence[int]): per-sample intersections in pixels.
        unions (Sequence[int]): per-sample unions in pixels.
        empty_rule (str): what a both-empty sample counts as (module docstring).

    Returns:
        dict: ``{'gIoU': float, 'cIoU': float}`` in percent, [0, 100]; empty when no sample
        counts (no samples, or all skipped).
    """
    ious = [sample_iou(i, u, empty_rule) for i, u in zip(intersections, unions)]
    counted = [iou for iou in ious if iou is not None]
    if not counted:
        return {}
    total_union = int(np.sum(unions, dtype=np.int64))
    total_intersection = int(np.sum(intersections, dtype=np.int64))
    # with every counted sample both-empty, cIoU is 0 / 0 too and follows the rule
    c_iou = sample_iou(total_intersection, total_union, empty_rule)
    return {'gIoU': 100.0 * float(np.mean(counted)), 'cIoU': 100.0 * float(c_iou)}


def coco_image_id(ann_index: int) -> int:
    """COCO image id of a FineRS sample: ``ann_index + 1``.

    Several questions share an image, so each sample (one record of the annotation file, unique by
    its ``ann_index``) is its own COCO image; ids start at 1 as in COCO. They are unique within ONE
    annotation file only.

    Args:
        ann_index (int): the record's index in the annotation file.

    Returns:
        int: the COCO image id.
    """
    return int(ann_index) + 1


def xyxy_to_xywh(bbox: Sequence[float]) -> list:
    """``[x1, y1, x2, y2]`` -> COCO's ``[x, y, w, h]`` as Python floats.

    Args:
        bbox (Sequence[float]): a continuous box.

    Returns:
        list[float]: the COCO box.
    """
    x1, y1, x2, y2 = (float(v) for v in bbox)
    return [x1, y1, x2 - x1, y2 - y1]


def encode_mask(mask: np.ndarray) -> dict:
    """COCO RLE of one (H, W) mask, JSON-ready (``counts`` as str).

    Args:
        mask (np.ndarray): (H, W) mask, nonzero is foreground.

    Returns:
        dict: ``{'size': [H, W], 'counts': str}``; ``pycocotools.mask.decode`` inverts it.
    """
    rle = mask_util.encode(np.asfortranarray(np.asarray(mask).astype(np.uint8)))
    return {'size': [int(s) for s in rle['size']], 'counts': rle['counts'].decode('ascii')}
