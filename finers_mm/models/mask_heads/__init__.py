# Copyright (c) finers_mm contributors. All rights reserved.
"""Mask heads: prompted segmentation of the refiner's crop.

The interface every head honours (and any other component may, to plug in by config) is
:class:`~finers_mm.models.mask_heads.base.BaseMaskHead`'s ``predict``.
"""
from .base import BaseMaskHead, MaskPrediction, check_prompts
from .mmseg import MMSegMaskHead, build_mmseg_segmentor, select_component
from .sam import SAMMaskHead, boxes_to_sam, points_to_sam
from .sam2 import SAM2MaskHead

__all__ = [
    'BaseMaskHead', 'MaskPrediction', 'check_prompts', 'SAMMaskHead', 'boxes_to_sam',
    'points_to_sam', 'MMSegMaskHead', 'build_mmseg_segmentor', 'select_component', 'SAM2MaskHead'
]
