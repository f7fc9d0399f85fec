# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRS metrics: :class:`FineRSMetric` (the FineRS numbers), :class:`FineRSCocoMetric` (mmdet's
``CocoMetric``) and :class:`FineRSRefSegMetric` (mmdet's ``RefSegMetric``, one score per sample also
for an empty prediction; plain ``RefSegMetric`` needs ``'gt_masks'`` in ``PackFineRSInputs``'
``meta_keys`` and fails on a sample with no predicted mask: see :class:`FineRSRefSegMetric`)."""
from .finers_metric import FineRSCocoMetric, FineRSMetric, dump_coco_gt
from .functional import (COCO_CATEGORY_ID, EMPTY_RULES, coco_image_id, encode_mask, mask_overlap,
                         sample_iou, segmentation_scores)
from .reasonseg_metric import ReasonSegMetric, lisa_overlap, lisa_scores
from .refseg_metric import FineRSRefSegMetric
from .vqa_benchmarks import HRBenchMetric, MMERealWorldMetric, VQABenchmarkMetric, VStarMetric

__all__ = [
    'FineRSMetric', 'FineRSCocoMetric', 'FineRSRefSegMetric', 'dump_coco_gt', 'COCO_CATEGORY_ID',
    'EMPTY_RULES', 'coco_image_id', 'encode_mask', 'mask_overlap', 'sample_iou',
    'segmentation_scores', 'VQABenchmarkMetric', 'VStarMetric', 'HRBenchMetric',
    'MMERealWorldMetric', 'ReasonSegMetric', 'lisa_overlap', 'lisa_scores'
]
