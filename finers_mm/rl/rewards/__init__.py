# Copyright (c) finers_mm contributors. All rights reserved.
"""GRPO reward terms (registered in ``finers_mm.registry.REWARDS``) and their weighted sum.

Each term's defaults are the authors' values (METHOD.md, "Rewards"), stated in its docstring: the
configs name the terms (``dict(type='BoxIoUReward')``) and write a threshold only to change it, so
every threshold lives in one place, next to the code and the tests that check it.
"""
from .answer import AnswerReward
from .base import BaseReward, required
from .composite import CompositeReward, RewardResult
from .format import JsonFormatReward, ThinkFormatReward
from .localization import (BOX_TARGETS, BoxIoUReward, BoxL1Reward, BoxTargetReward, IoUReward,
                           box_iou, box_l1, point_in_box, points_distance, predicted_box)
from .points import PointsReward
from .region import RegionContainsReward, RegionIoUReward, RegionL1Reward, RegionSizeReward
from .mask import MaskIoUReward

__all__ = [
    'AnswerReward',
    'BOX_TARGETS', 'BaseReward', 'BoxIoUReward', 'BoxL1Reward', 'BoxTargetReward',
    'CompositeReward', 'IoUReward', 'JsonFormatReward', 'MaskIoUReward', 'PointsReward',
    'RegionContainsReward', 'RegionIoUReward', 'RegionL1Reward', 'RegionSizeReward',
    'RewardResult', 'ThinkFormatReward', 'box_iou', 'box_l1',
    'point_in_box', 'points_distance', 'predicted_box', 'required'
]
