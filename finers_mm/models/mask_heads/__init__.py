# Copyright (c) finers_mm contributors. All rights reserved.
"""Mask heads: prompted segmentation of the refiner's crop.

The mask-head interface (what :class:`FineRSDetector` calls; any component with this method plugs
in)::

    predict(crops, boxes, points=None, point_labels=None) -> MaskPrediction(masks, scores)

with ``crops`` N (h_i, w_i, 3) uint8 RGB arrays, ``boxes`` (N, 4) and ``points`` (N, P, 2) in CROP
pixels (continuous: pixel centre ``i + 0.5``, box ``x2 = xmax + 1``), ``point_labels`` (N, P)
(default all positive); ``masks`` N (h_i, w_i) bool arrays in CROP pixels, ``scores`` (N,) float.
An all-zero box means "no object": an empty mask with score 0. Paste a crop's mask into the original
image with :func:`finers_mm.structures.masks.paste_crop_mask`.
"""
from .mmseg import MMSegMaskHead, build_mmseg_segmentor, select_component
from .sam import MaskPrediction, SAMMaskHead, boxes_to_sam, points_to_sam
from .sam2 import SAM2MaskHead

__all__ = [
    'MaskPrediction', 'SAMMaskHead', 'boxes_to_sam', 'points_to_sam', 'MMSegMaskHead',
    'build_mmseg_segmentor', 'select_component', 'SAM2MaskHead'
]
