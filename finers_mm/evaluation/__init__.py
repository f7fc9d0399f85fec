# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRS metrics."""
from .finers_metric import FineRSCocoMetric, FineRSMetric, dump_coco_gt
from .functional import (COCO_CATEGORY_ID, EMPTY_RULES, coco_image_id, encode_mask, mask_overlap,
                         sample_iou, segmentation_scores)

__all__ = [
    'FineRSMetric', 'FineRSCocoMetric', 'dump_coco_gt', 'COCO_CATEGORY_ID',
    'EMPTY_RULES', 'coco_image_id', 'encode_mask', 'mask_overlap', 'sample_iou',
    'segmentation_scores'
]
