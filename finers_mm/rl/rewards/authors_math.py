# Copyright (c) finers_mm contributors. All rights reserved.
"""The authors' reward arithmetic on raw numbers, with fix (b) (continuous boxes): pure functions.

The box and point terms of the ``'authors'`` protocol
(:mod:`finers_mm.rl.rewards.localization`) compute with these exactly as the authors' reward
functions compute (``verl/utils/reward_score/seg_restrict_qa.py``,
``seg_restrict8_regions_and_qa.py``): on the numbers as the completion wrote them (``bool`` items
count as 0/1, NaN compares false, infinities and integers of any size compute as Python computes
them), without their ``+1`` areas.
"""
import math
from typing import Any, List, Sequence

import numpy as np


def exact_numbers(coords: Any) -> List[Any]:
    """GT coordinates as the authors' arithmetic sees them: integral values as ``int``.

    Args:
        coords: an array of finite numbers (a box or a flat list of points).

    Returns:
        list: the values, flattened; ``12.0`` becomes ``12``, ``12.5`` stays.
    """
    return [int(value) if value.is_integer() else value
            for value in np.asarray(coords, dtype=np.float64).ravel().tolist()]


def authors_box_iou(box: Sequence[Any], target: Sequence[Any]) -> float:
    """The authors' IoU with continuous areas (fix (b)): no ``+1`` anywhere.

    Their formula otherwise: the intersection counts only when its ``x1 < x2`` and ``y1 < y2``;
    ``max``/``min`` take the prediction first (so a NaN propagates as in theirs); areas of inverted
    boxes are not clipped; a zero union or an overflow gives 0 (their ``except``).

    Args:
        box (Sequence): the predicted ``[x1, y1, x2, y2]``, raw numbers.
        target (Sequence): the target box.

    Returns:
        float: the IoU (NaN or negative for some degenerate boxes: never above a threshold).
    """
    inter_x1, inter_y1 = max(box[0], target[0]), max(box[1], target[1])
    inter_x2, inter_y2 = min(box[2], target[2]), min(box[3], target[3])
    try:
        inter = ((inter_x2 - inter_x1) * (inter_y2 - inter_y1)
                 if inter_x1 < inter_x2 and inter_y1 < inter_y2 else 0)
        union = ((box[2] - box[0]) * (box[3] - box[1]) +
                 (target[2] - target[0]) * (target[3] - target[1]) - inter)
        return float(inter) / union
    except (ZeroDivisionError, OverflowError):
        return 0.0


def authors_box_l1(box: Sequence[Any], target: Sequence[Any]) -> float:
    """The authors' mean L1 distance of the four coordinates (summed left to right).

    Args:
        box (Sequence): the predicted ``[x1, y1, x2, y2]``, raw numbers.
        target (Sequence): the target box.

    Returns:
        float: the mean absolute difference; ``inf`` when it overflows a float.
    """
    try:
        return (abs(box[0] - target[0]) + abs(box[1] - target[1]) + abs(box[2] - target[2]) +
                abs(box[3] - target[3])) / 4
    except OverflowError:
        return math.inf


def authors_box_contains(box: Sequence[Any], target: Sequence[Any]) -> bool:
    """The authors' containment: ``x1, y1 <=`` the target's and ``x2, y2 >=`` the target's.

    Inverted predictions are not special (``[-inf, -inf, inf, inf]`` contains everything).
    """
    return (box[0] <= target[0] and box[1] <= target[1] and box[2] >= target[2]
            and box[3] >= target[3])


def authors_points_distance(points: Sequence[Sequence[Any]],
                            gt_points: Sequence[Sequence[Any]]) -> float:
    """The authors' point distance: the better pairing's summed Euclidean distances, halved.

    Computed as theirs (``math.sqrt`` of the squared differences, summed per pairing), so the
    value at the 100 px threshold is theirs to the last bit.

    Args:
        points (Sequence): ``[[x, y], [x, y]]`` predicted (ints after their ``int()``).
        gt_points (Sequence): ``[[x, y], [x, y]]`` ground truth.

    Returns:
        float: the distance; ``inf`` when a square overflows a float.
    """
    def dist(p, g):
        return math.sqrt((p[0] - g[0])**2 + (p[1] - g[1])**2)

    (p1, p2), (g1, g2) = points, gt_points
    try:
        return min(dist(p1, g1) + dist(p2, g2), dist(p1, g2) + dist(p2, g1)) / 2
    except OverflowError:
        return math.inf


def authors_sides_in_band(box: Sequence[Any], low: float, high: float) -> float:
    """The authors' region size score with continuous sides (fix (b)).

    Args:
        box (Sequence): the predicted ``[x1, y1, x2, y2]``, raw numbers.
        low (float): least side, inclusive.
        high (float): largest side, inclusive.

    Returns:
        float: 1 when ``x2 - x1`` and ``y2 - y1`` both lie in ``[low, high]``, 0.5 when one
        does, else 0 (also on overflow).
    """
    try:
        width, height = box[2] - box[0], box[3] - box[1]
    except OverflowError:
        return 0.0
    return ((low <= width <= high) + (low <= height <= high)) / 2
