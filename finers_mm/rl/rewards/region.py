# Copyright (c) finers_mm contributors. All rights reserved.
"""The explorer's region terms: the region against the retrospective target (``best_region``),
its containment of the GT box and its size (rules of :mod:`.localization`)."""
from typing import Any, List, Optional

from finers_mm.registry import REWARDS
from finers_mm.structures.frames import box_contains, is_absent
from finers_mm.structures.parsing import ParsedCompletion
from finers_mm.structures.protocols import AUTHORS, DEFAULT_PROTOCOL
from finers_mm.structures.reward_sample import RewardSample
from .authors_math import authors_box_contains, authors_sides_in_band
from .base import BaseReward, required
from .localization import (BoxIoUReward, BoxL1Reward, BoxTargetReward, authors_predicted_box,
                           predicted_box)


@REWARDS.register_module()
class RegionIoUReward(BoxIoUReward):
    """:class:`BoxIoUReward` with the authors' GSE defaults: IoU with ``target_region`` > 0.9.

    Args:
        iou_thr (float): Defaults to 0.9 (the authors' value).
        target (str): Defaults to ``'target_region'`` (the searched ``best_region``).
        weight (float): weight in the total. Defaults to 1.0.
        name (str, optional): log key. Defaults to ``'region_iou'``.
        protocol (str): ``'finers_mm'`` (default) or ``'authors'``.
    """

    default_name = 'region_iou'

    def __init__(self,
                 iou_thr: float = 0.9,
                 target: str = 'target_region',
                 weight: float = 1.0,
                 name: Optional[str] = None,
                 protocol: str = DEFAULT_PROTOCOL) -> None:
        super().__init__(iou_thr=iou_thr, target=target, weight=weight, name=name,
                         protocol=protocol)


@REWARDS.register_module()
class RegionL1Reward(BoxL1Reward):
    """:class:`BoxL1Reward` with the authors' GSE defaults: mean L1 to ``target_region`` < 20 px.

    Args:
        max_l1 (float): explorer-frame pixels. Defaults to 20.0 (the authors' value in the
            1920x1080 explorer frame).
        target (str): Defaults to ``'target_region'``.
        weight (float): weight in the total. Defaults to 1.0.
        name (str, optional): log key. Defaults to ``'region_l1'``.
        protocol (str): ``'finers_mm'`` (default) or ``'authors'``.
    """

    default_name = 'region_l1'

    def __init__(self,
                 max_l1: float = 20.0,
                 target: str = 'target_region',
                 weight: float = 1.0,
                 name: Optional[str] = None,
                 protocol: str = DEFAULT_PROTOCOL) -> None:
        super().__init__(max_l1=max_l1, target=target, weight=weight, name=name,
                         protocol=protocol)


@REWARDS.register_module()
class RegionContainsReward(BoxTargetReward):
    """1 when the predicted region contains the whole target box, edges included (authors' GSE).

    ``'authors'`` rule: :func:`authors_box_contains` (any 4 numbers; no absent rule).

    Args:
        target (str): Defaults to ``'gt_box'``.
        weight (float): weight in the total. Defaults to 1.0.
        name (str, optional): log key. Defaults to ``'region_contains'``.
        protocol (str): ``'finers_mm'`` (default) or ``'authors'``.
    """

    default_name = 'region_contains'

    def __init__(self,
                 target: str = 'gt_box',
                 weight: float = 1.0,
                 name: Optional[str] = None,
                 protocol: str = DEFAULT_PROTOCOL) -> None:
        super().__init__(target=target, weight=weight, name=name, protocol=protocol)

    def score(self, box: List[float], target: List[float]) -> float:
        """1 when ``box`` contains ``target``."""
        return float(box_contains(box, target))

    def score_authors(self, box: List[Any], target: List[Any]) -> float:
        """1 when ``box`` contains ``target`` by the authors' comparisons."""
        return float(authors_box_contains(box, target))


@REWARDS.register_module()
class RegionSizeReward(BaseReward):
    """The explorer's region size (authors' GSE term): 1 when both sides are within
    ``region_size +- tolerance`` frame pixels, 0.5 when one is, else 0.

    Sides are ``x2 - x1`` and ``y2 - y1`` in frame pixels (continuous boxes). The authors
    measured inclusive sides ``x2 - x1 + 1`` against ``[241, 271]`` for a 256 region, so for the
    same numbers in the answer their band is ``x2 - x1`` in ``[240, 270]``; ours (with the default
    tolerance 15) is ``[241, 271]``: the band is shifted by 1 px, centred on a side of exactly
    ``region_size`` in our convention.

    ``'authors'`` rule: the same band (fix (b)) on any box of 4 numbers
    (:func:`authors_sides_in_band`: inverted sides are negative, an all-zero box scores 0, NaN
    sides are out of the band).

    Args:
        tolerance (float): frame pixels either side of ``sample.region_size``, inclusive.
            Defaults to 15.0 (the authors' value: [241, 271] for a 256 region).
        weight (float): weight in the total. Defaults to 1.0.
        name (str, optional): log key. Defaults to ``'region_size'``.
        protocol (str): ``'finers_mm'`` (default) or ``'authors'``.
    """

    default_name = 'region_size'
    requires = ('region_size', )

    def __init__(self,
                 tolerance: float = 15.0,
                 weight: float = 1.0,
                 name: Optional[str] = None,
                 protocol: str = DEFAULT_PROTOCOL) -> None:
        super().__init__(weight=weight, name=name, protocol=protocol)
        if not tolerance >= 0:
            raise ValueError(f'RegionSizeReward: tolerance must be >= 0, got {tolerance!r}')
        self.tolerance = float(tolerance)

    def __call__(self, parsed: ParsedCompletion, sample: RewardSample) -> float:
        """Score one completion (see :meth:`BaseReward.__call__`)."""
        size = required(sample, 'region_size', self.name)
        self.check_parsed(parsed)
        low, high = size - self.tolerance, size + self.tolerance
        if self.rule == AUTHORS:
            box = authors_predicted_box(parsed, sample)
            return 0.0 if box is None else authors_sides_in_band(box, low, high)
        box = predicted_box(parsed, sample)
        if box is None or is_absent(box):
            return 0.0
        sides_ok = (low <= box[2] - box[0] <= high) + (low <= box[3] - box[1] <= high)
        return sides_ok / 2
