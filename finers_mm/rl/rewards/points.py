# Copyright (c) finers_mm contributors. All rights reserved.
"""The refiner's points term: both points inside the predicted box and near the GT points (rules
of :mod:`.localization`)."""
from typing import Any, List, Optional, Tuple

import numpy as np

from finers_mm.registry import REWARDS
from finers_mm.structures.authors_parsing import authors_point
from finers_mm.structures.frames import is_absent
from finers_mm.structures.parsing import ParsedCompletion
from finers_mm.structures.protocols import AUTHORS, DEFAULT_PROTOCOL
from finers_mm.structures.reward_sample import RewardSample, to_frame
from .authors_math import authors_points_distance, exact_numbers
from .base import BaseReward, required
from .localization import (authors_frame_numbers, authors_predicted_box, point_in_box,
                           points_distance, predicted_box)


@REWARDS.register_module()
class PointsReward(BaseReward):
    """1 when both points lie in the predicted box and are close to the GT points (authors' LPR).

    Close: the mean Euclidean distance to ``gt_points``, for the better of the two pairings, is
    below ``max_distance`` frame pixels. For an absent target (``gt_box`` all zeros) the term is 1
    when the box is absent and both points are ``(0, 0)`` (what the refiner prompt asks for), else
    0; an absent box for a present target scores 0.

    ``'authors'`` rule: the box is any 4 numbers (:func:`authors_predicted_box`), the points are
    ``int()`` of the first two items of ``points_1`` / ``points_2``
    (:func:`~finers_mm.structures.authors_parsing.authors_point`: numeric strings and floats truncated
    toward 0 are read), both must lie in the box edges included, then
    :func:`authors_points_distance` ``< max_distance``; no absent rule (``[0, 0, 0, 0]`` with
    points at the origin scores by its distance to the GT points).

    Args:
        max_distance (float): frame pixels; the mean distance must be strictly smaller. Defaults
            to 100.0 (the authors' value in the 512x512 refiner frame).
        weight (float): weight in the total. Defaults to 1.0.
        name (str, optional): log key. Defaults to ``'points'``.
        protocol (str): ``'finers_mm'`` (default) or ``'authors'``.
    """

    default_name = 'points'
    requires = ('gt_points', )

    def __init__(self,
                 max_distance: float = 100.0,
                 weight: float = 1.0,
                 name: Optional[str] = None,
                 protocol: str = DEFAULT_PROTOCOL) -> None:
        super().__init__(weight=weight, name=name, protocol=protocol)
        if not max_distance > 0:
            raise ValueError(f'PointsReward: max_distance must be > 0, got {max_distance!r}')
        self.max_distance = float(max_distance)

    def __call__(self, parsed: ParsedCompletion, sample: RewardSample) -> float:
        """Score one completion (see :meth:`BaseReward.__call__`)."""
        gt_points = required(sample, 'gt_points', self.name)
        self.check_parsed(parsed)
        if self.rule == AUTHORS:
            return self._score_authors(parsed, sample, gt_points)
        box = predicted_box(parsed, sample)
        if box is None or parsed.points is None:
            return 0.0
        points = to_frame(parsed.points, sample).tolist()
        if is_absent(sample.gt_box):
            return float(is_absent(box) and is_absent(points[0] + points[1]))
        if is_absent(box) or not all(point_in_box(point, box) for point in points):
            return 0.0
        return float(points_distance(points, gt_points.tolist()) < self.max_distance)

    def _score_authors(self, parsed: ParsedCompletion, sample: RewardSample,
                       gt_points: np.ndarray) -> float:
        """The value by the authors' rule (class docstring)."""
        box = authors_predicted_box(parsed, sample)
        points = _authors_points(parsed, sample)
        if box is None or points is None:
            return 0.0
        if not all(point_in_box(point, box) for point in points):
            return 0.0
        exact = exact_numbers(gt_points)
        distance = authors_points_distance(points, (exact[:2], exact[2:]))
        return float(distance < self.max_distance)


def _authors_points(parsed: ParsedCompletion,
                    sample: RewardSample) -> Optional[Tuple[List[Any], List[Any]]]:
    """Both points of the authors' reading in frame pixels, None when one is unreadable."""
    points = [authors_point(parsed.data, key) for key in ('points_1', 'points_2')]
    if None in points:
        return None
    points = [authors_frame_numbers(point, sample) for point in points]
    return None if None in points else (points[0], points[1])
