# Copyright (c) finers_mm contributors. All rights reserved.
"""Localisation terms: the predicted box (refiner) or region (explorer) against the ground truth.

The box terms and what every localisation term shares live here; the explorer's region terms are in
:mod:`.region`, the refiner's points term in :mod:`.points`.

Every term maps the completion's MODEL coordinates to frame pixels first (:func:`to_frame`), so
all thresholds are in pixels of the frame the model was fed (the authors' values: 10 px box L1 and
100 px point distance in the 512x512 refiner frame, 20 px region L1 in the 1920x1080 explorer
frame). Boxes are continuous (``x2 = xmax + 1``): IoU, L1 and sides use no ``+1``.

Absent targets (an all-zero box: the refiner's answer for a crop without the object):

- the GT box (or target) is absent: 1 when the predicted box is absent too, else 0;
- the GT is present: an absent predicted box scores 0 (its L1 to a GT box near the origin, or
  points at ``(0, 0)`` "inside" it, would otherwise score).

A completion without a valid ``bbox`` (or, for the points term, without both points) scores 0; the
other fields need not be valid (each term scores what it reads, as the authors' terms do).

**The authors' rule** (``protocol='authors'``): each term computes what the authors' function
computes, from the raw values of the first ``{...}`` of the completion
(:func:`~finers_mm.structures.authors_parsing.authors_box`,
:func:`~finers_mm.structures.authors_parsing.authors_point`):
inverted, all-zero and out-of-frame boxes are scored like any other, the absent rules above do
not apply, ``bool`` items count as 0/1, NaN compares false, infinities and integers of any size
compute as Python computes them (an overflow scores 0, as their ``except`` does), points are
``int()``-truncated and may be numeric strings; the arithmetic is :mod:`.authors_math`. Fix (b) of
:data:`~finers_mm.structures.protocols.AUTHORS_FIXES`: boxes are continuous, so the IoU has no
``+1`` in its areas and intersection, and the region size band is on ``x2 - x1`` (their
``x2 - x1 + 1`` put the band 1 px lower for the same numbers). Thresholds are the same numbers
in both rules. The GT is the sample's, in the frame the rewards compare in; integral GT values
compute as ints (their GT is parsed as ints), so arithmetic with a huge predicted integer is
exact as theirs.
"""
import math
from abc import abstractmethod
from typing import Any, List, Optional, Sequence

import numpy as np

from finers_mm.registry import REWARDS
from finers_mm.structures.authors_parsing import authors_box
from finers_mm.structures.frames import is_absent
from finers_mm.structures.parsing import ParsedCompletion
from finers_mm.structures.protocols import AUTHORS, DEFAULT_PROTOCOL
from finers_mm.structures.reward_sample import RewardSample, to_frame
from .authors_math import authors_box_iou, authors_box_l1, exact_numbers
from .base import BaseReward, required

#: the sample fields a box term may compare the prediction with
BOX_TARGETS = ('gt_box', 'target_region')


def box_iou(box1: Sequence[float], box2: Sequence[float]) -> float:
    """IoU of two continuous boxes (areas ``(x2 - x1) * (y2 - y1)``, no ``+1``).

    Args:
        box1 (Sequence[float]): ``[x1, y1, x2, y2]``.
        box2 (Sequence[float]): ``[x1, y1, x2, y2]``, same frame.

    Returns:
        float: IoU in ``[0, 1]``; 0 when the union has no area.
    """
    inter_w = min(box1[2], box2[2]) - max(box1[0], box2[0])
    inter_h = min(box1[3], box2[3]) - max(box1[1], box2[1])
    inter = inter_w * inter_h if inter_w > 0 and inter_h > 0 else 0.0
    union = ((box1[2] - box1[0]) * (box1[3] - box1[1]) + (box2[2] - box2[0]) * (box2[3] - box2[1])
             - inter)
    return min(inter / union, 1.0) if union > 0 else 0.0  # min: rounding of nested boxes


def box_l1(box1: Sequence[float], box2: Sequence[float]) -> float:
    """Mean absolute difference of the four coordinates of two boxes.

    Args:
        box1 (Sequence[float]): ``[x1, y1, x2, y2]``.
        box2 (Sequence[float]): ``[x1, y1, x2, y2]``, same frame.

    Returns:
        float: the mean L1 distance in pixels.
    """
    return sum(abs(a - b) for a, b in zip(box1, box2)) / 4


def points_distance(points: Sequence[Sequence[float]],
                    gt_points: Sequence[Sequence[float]]) -> float:
    """Mean Euclidean distance of two points to two GT points, the better of the two pairings.

    Args:
        points (Sequence): ``[[x, y], [x, y]]`` predicted.
        gt_points (Sequence): ``[[x, y], [x, y]]`` ground truth, same frame.

    Returns:
        float: ``min(d(p1, g1) + d(p2, g2), d(p1, g2) + d(p2, g1)) / 2``.
    """
    (p1, p2), (g1, g2) = points, gt_points
    straight = math.dist(p1, g1) + math.dist(p2, g2)
    crossed = math.dist(p1, g2) + math.dist(p2, g1)
    return min(straight, crossed) / 2


def point_in_box(point: Sequence[float], box: Sequence[float]) -> bool:
    """Whether a point lies in a box, edges included (as in the authors' points term)."""
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


# ------------------------------------------------------------------------------------------------
# The authors' rule (module docstring): raw numbers, their arithmetic, fix (b)
# ------------------------------------------------------------------------------------------------


def authors_frame_numbers(values: Sequence[Any], sample: RewardSample) -> Optional[List[Any]]:
    """Raw numbers of a completion (a box or a point) in frame pixels, the authors' way.

    Under the authors' protocol the model answers in frame pixels, so the numbers are kept AS
    THEY ARE (an ``int`` stays an exact ``int``, a ``bool`` a ``bool``, as in their arithmetic);
    with another model -> frame map (:func:`to_frame`) each is multiplied by its axis' scale.

    Args:
        values (Sequence): 4 (box) or 2 (point) raw numbers.
        sample (RewardSample): gives the model -> frame map.

    Returns:
        list, optional: the numbers in frame pixels; None when one is too large to scale.
    """
    scale = to_frame(np.ones(len(values)), sample).tolist()
    if all(factor == 1.0 for factor in scale):
        return list(values)
    try:
        return [value * factor for value, factor in zip(values, scale)]
    except OverflowError:  # an int beyond float range: no frame position, as theirs overflows
        return None


def authors_predicted_box(parsed: ParsedCompletion, sample: RewardSample) -> Optional[List[Any]]:
    """The box the authors' terms score, in frame pixels (:func:`authors_box`).

    Args:
        parsed (ParsedCompletion): the completion parsed by the authors' reading.
        sample (RewardSample): gives the model -> frame map.

    Returns:
        list, optional: four raw numbers; None when their code would raise on the box.
    """
    box = authors_box(parsed.data)
    return None if box is None else authors_frame_numbers(box, sample)


def predicted_box(parsed: ParsedCompletion, sample: RewardSample) -> Optional[List[float]]:
    """The completion's box in frame pixels; None without a valid box or when not finite.

    Args:
        parsed (ParsedCompletion): the parsed completion.
        sample (RewardSample): gives the model -> frame map.

    Returns:
        list[float], optional: ``[x1, y1, x2, y2]`` in frame pixels.
    """
    if parsed.bbox is None:
        return None
    box = to_frame(parsed.bbox, sample).tolist()
    return box if all(map(math.isfinite, box)) else None


class BoxTargetReward(BaseReward):
    """Base of the terms comparing the predicted box with a box field of the sample.

    ``'finers_mm'`` rule: applies the absent rules of the module docstring, then :meth:`score`.
    ``'authors'`` rule, for the terms with one (``has_authors_rule``): :meth:`score_authors` of
    the raw box (:func:`authors_predicted_box`), 0 without one; the others score as under
    ``'finers_mm'`` the box read from the authors' object.

    Args:
        target (str): the sample field compared with: ``'gt_box'`` or ``'target_region'``.
        weight (float): weight in the total. Defaults to 1.0.
        name (str, optional): log key. Defaults to the class's ``default_name``.
        protocol (str): ``'finers_mm'`` (default) or ``'authors'``.
    """

    #: whether the term is one of the authors' (and has :meth:`score_authors`)
    has_authors_rule: bool = True

    def __init__(self,
                 target: str,
                 weight: float = 1.0,
                 name: Optional[str] = None,
                 protocol: str = DEFAULT_PROTOCOL) -> None:
        super().__init__(weight=weight, name=name, protocol=protocol)
        if target not in BOX_TARGETS:
            raise ValueError(f'{type(self).__name__}: target must be one of {BOX_TARGETS}, got '
                             f'{target!r}')
        self.target = target
        self.requires = (target, )

    def __call__(self, parsed: ParsedCompletion, sample: RewardSample) -> float:
        """Score one completion (see :meth:`BaseReward.__call__`)."""
        target = required(sample, self.target, self.name)
        if self.has_authors_rule:
            self.check_parsed(parsed)
            if self.rule == AUTHORS:
                box = authors_predicted_box(parsed, sample)
                return 0.0 if box is None else self.score_authors(box, exact_numbers(target))
        box = predicted_box(parsed, sample)
        if box is None:
            return 0.0
        if is_absent(target):
            return float(is_absent(box))
        if is_absent(box):
            return 0.0
        return self.score(box, target.tolist())

    @abstractmethod
    def score(self, box: List[float], target: List[float]) -> float:
        """The term's value for a present box and a present target, both in frame pixels.

        Args:
            box (list[float]): the predicted ``[x1, y1, x2, y2]``.
            target (list[float]): the target ``[x1, y1, x2, y2]``.

        Returns:
            float: the value in ``[0, 1]``.
        """

    def score_authors(self, box: List[Any], target: List[Any]) -> float:
        """The term's value by the authors' rule (module docstring), frame pixels.

        Args:
            box (list): the predicted ``[x1, y1, x2, y2]``, raw numbers (maybe inverted, NaN).
            target (list): the target, integral values as ints (:func:`exact_numbers`).

        Returns:
            float: the value in ``[0, 1]``.
        """
        raise NotImplementedError(f'{type(self).__name__} has no authors\' rule')


@REWARDS.register_module()
class BoxIoUReward(BoxTargetReward):
    """1 when the box IoU with the target is above ``iou_thr`` (authors' LPR term, IoU > 0.5).

    ``'authors'`` rule: :func:`authors_box_iou` (their formula, continuous areas) ``> iou_thr``.

    Args:
        iou_thr (float): the IoU must be strictly greater. Defaults to 0.5 (the authors' value).
        target (str): ``'gt_box'`` or ``'target_region'``. Defaults to ``'gt_box'``.
        weight (float): weight in the total. Defaults to 1.0.
        name (str, optional): log key. Defaults to ``'box_iou'``.
        protocol (str): ``'finers_mm'`` (default) or ``'authors'``.
    """

    default_name = 'box_iou'

    def __init__(self,
                 iou_thr: float = 0.5,
                 target: str = 'gt_box',
                 weight: float = 1.0,
                 name: Optional[str] = None,
                 protocol: str = DEFAULT_PROTOCOL) -> None:
        super().__init__(target=target, weight=weight, name=name, protocol=protocol)
        if not 0 <= iou_thr < 1:
            raise ValueError(f'{type(self).__name__}: iou_thr must be in [0, 1), got {iou_thr!r}')
        self.iou_thr = float(iou_thr)

    def score(self, box: List[float], target: List[float]) -> float:
        """1 when ``IoU > iou_thr``."""
        return float(box_iou(box, target) > self.iou_thr)

    def score_authors(self, box: List[Any], target: List[Any]) -> float:
        """1 when the authors' IoU (continuous areas) ``> iou_thr``."""
        return float(authors_box_iou(box, target) > self.iou_thr)


@REWARDS.register_module()
class BoxL1Reward(BoxTargetReward):
    """1 when the mean L1 distance to the target is below ``max_l1`` pixels (authors' LPR term).

    ``'authors'`` rule: :func:`authors_box_l1` ``< max_l1`` for any box of 4 numbers (an
    inverted box near a small target scores too, as in theirs).

    Args:
        max_l1 (float): frame pixels; the mean L1 must be strictly smaller. Defaults to 10.0 (the
            authors' value in the 512x512 refiner frame).
        target (str): ``'gt_box'`` or ``'target_region'``. Defaults to ``'gt_box'``.
        weight (float): weight in the total. Defaults to 1.0.
        name (str, optional): log key. Defaults to ``'box_l1'``.
        protocol (str): ``'finers_mm'`` (default) or ``'authors'``.
    """

    default_name = 'box_l1'

    def __init__(self,
                 max_l1: float = 10.0,
                 target: str = 'gt_box',
                 weight: float = 1.0,
                 name: Optional[str] = None,
                 protocol: str = DEFAULT_PROTOCOL) -> None:
        super().__init__(target=target, weight=weight, name=name, protocol=protocol)
        if not max_l1 > 0:
            raise ValueError(f'{type(self).__name__}: max_l1 must be > 0, got {max_l1!r}')
        self.max_l1 = float(max_l1)

    def score(self, box: List[float], target: List[float]) -> float:
        """1 when ``mean L1 < max_l1``."""
        return float(box_l1(box, target) < self.max_l1)

    def score_authors(self, box: List[Any], target: List[Any]) -> float:
        """1 when the authors' mean L1 ``< max_l1``."""
        return float(authors_box_l1(box, target) < self.max_l1)


@REWARDS.register_module()
class IoUReward(BoxTargetReward):
    """The IoU with the target itself, a continuous value in ``[0, 1]`` (not in the authors' set).

    Not one of the authors' terms: under ``protocol='authors'`` it scores, by the rule above, the
    box read from the authors' object (``parsed.bbox``).

    Args:
        target (str): ``'gt_box'`` or ``'target_region'``. Defaults to ``'gt_box'``.
        weight (float): weight in the total. Defaults to 1.0.
        name (str, optional): log key. Defaults to ``'iou'``.
        protocol (str): ``'finers_mm'`` (default) or ``'authors'``.
    """

    default_name = 'iou'
    has_authors_rule = False

    def __init__(self,
                 target: str = 'gt_box',
                 weight: float = 1.0,
                 name: Optional[str] = None,
                 protocol: str = DEFAULT_PROTOCOL) -> None:
        super().__init__(target=target, weight=weight, name=name, protocol=protocol)

    def score(self, box: List[float], target: List[float]) -> float:
        """The IoU."""
        return box_iou(box, target)


