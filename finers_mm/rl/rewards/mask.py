# Copyright (c) finers_mm contributors. All rights reserved.
"""The mask-IoU term: the mask a (frozen) mask head draws from the predicted prompts vs the GT.

Not in the authors' reward set; the Seg-R1 / SAM-R1 style of rewarding the segmentation itself.
"""
from typing import Any, Optional, Union

import numpy as np

from finers_mm.registry import MODELS, REWARDS
from finers_mm.structures.frames import is_absent
from finers_mm.structures.parsing import ParsedCompletion
from finers_mm.structures.reward_sample import RewardSample, to_frame
from .base import BaseReward, required
from .localization import predicted_box


@REWARDS.register_module()
class MaskIoUReward(BaseReward):
    """IoU of the mask head's mask for the predicted box (and points) with ``sample.gt_mask``.

    The head is prompted on the FRAME image (``sample.image``) with the box and, when the
    completion has both, the two points as positive points, all in frame pixels; its ``predict``
    is :meth:`~finers_mm.models.mask_heads.SAMMaskHead.predict`. An empty ``gt_mask`` (target
    absent) scores 1 when the predicted box is all zeros and 0 otherwise; an all-zero box for a
    present target scores 0 without running the head. One head call per completion.

    Args:
        mask_head (dict | object): a mask-head config built with ``finers_mm.registry.MODELS``
            (e.g. ``dict(type='SAMMaskHead', model_type='vit_h', checkpoint=...)``), or a built
            head with the same ``predict``.
        weight (float): weight in the total. Defaults to 1.0.
        name (str, optional): log key. Defaults to ``'mask_iou'``.
    """

    default_name = 'mask_iou'
    requires = ('image', 'gt_mask')

    def __init__(self,
                 mask_head: Union[dict, Any],
                 weight: float = 1.0,
                 name: Optional[str] = None) -> None:
        super().__init__(weight=weight, name=name)
        self.mask_head = MODELS.build(mask_head) if isinstance(mask_head, dict) else mask_head

    def __call__(self, parsed: ParsedCompletion, sample: RewardSample) -> float:
        """Score one completion (see :meth:`BaseReward.__call__`)."""
        image = required(sample, 'image', self.name)
        gt_mask = required(sample, 'gt_mask', self.name)
        box = predicted_box(parsed, sample)
        if box is None:
            return 0.0
        if not gt_mask.any():
            return float(is_absent(box))
        if is_absent(box):
            return 0.0
        points = None if parsed.points is None else to_frame(parsed.points, sample)[None]
        mask = self.mask_head.predict([image], np.array([box]), points).masks[0]
        union = np.count_nonzero(mask | gt_mask)
        return float(np.count_nonzero(mask & gt_mask) / union)
