# Copyright (c) finers_mm contributors. All rights reserved.
"""The candidate regions of a record and their crop windows.

Candidates are placed in the EXPLORER frame (the whole original resized to ``explorer_size``),
each a ``region_size`` square (a side is the frame's where the frame is smaller):

- the first is the region centred on the GT box and shifted into the frame
  (:func:`~finers_mm.structures.region_around_box`, the region target without a search);
- the others are placed where the region holds the whole GT box and lies inside the frame, on
  integer explorer pixels: ``rule='random'`` draws each start uniformly (x then y) from
  ``np.random.default_rng((seed, ann_index))``, so a record gets the same candidates in every run,
  rank and batch; ``rule='grid'`` puts them on a ``g x g`` lattice (``num_candidates = 1 + g * g``)
  spanning the placements from the one where the GT touches the region's right (bottom) side to the
  one where it touches its left (top) side;
- a GT box longer than the region along an axis fits in no region: along that axis every candidate
  keeps the centred position (so none contains the GT box; the refiner's window, at least
  ``crop_min_side`` wide, may still hold it) and the candidates differ along the other axis only.

Each candidate is mapped to ORIGINAL pixels (:func:`~finers_mm.structures.explorer_to_original`)
and its window is ``crop_window_from_region(region, image_size, crop_min_side)``.

**Ties** (``tie_rule``, :data:`TIE_RULES`): the search keeps the best-scoring candidate; among equal
scores, the one first in the rule's preference order (:func:`preference_order`):

- ``'first'`` (finers_mm): the candidates in order, the centred region first;
- ``'centred_then_last'`` (the authors: their ``inference_scripts/search_best_region_by_trained_
  lr_model_for_HR_training.py`` scores the 4 random windows, then the centred one, keeping a window
  whenever ``iou >= max_iou``): the centred region, then the others from the LAST drawn to the first.

Both give the centred region every tie it is in, so all-zero scores keep it; among the random
candidates, which of equal-scoring (independent, identically drawn) candidates wins does not change
what the search's output is distributed as, but ``'centred_then_last'`` reproduces their choice.

A candidate whose window repeats another's is dropped, keeping the one the tie rule prefers (the
refiner would see the same view and score it the same), so a record may get fewer than
``num_candidates`` windows: e.g. regions near a border whose windows are shifted to the same place,
or a GT box too large to move around.

``num_candidates`` and ``tie_rule`` default to the protocol's (:mod:`finers_mm.structures.protocols`
``'region_candidates'``: 5 under ``'authors'``, their 4 random + 1 centred; 8 under ``'finers_mm'``).

**The authors' windows differ in geometry** (kept under both protocols: for a tiny target at 4K both
draw 512-pixel windows uniformly among those holding the GT): they place 512 x 512 windows (the LPR
frame's side) directly in ORIGINAL pixels, the GT's offset inside the window drawn per axis with
Python's unseeded ``random.randint(0, 512 - (xmax - xmin))`` and the window then clamped into the
image (near a border several offsets pile onto the border position; at the largest offset the GT's
last pixel column or row falls just outside the window); their centred window is
``max(512, w, h)`` around the GT centre with its corners clamped independently (fix (d)); their
``best_region`` is the window itself. Here candidates are regions the explorer could answer, on
integer explorer pixels (a 2-pixel lattice of a 3840 x 2160 original), uniform over the placements
that hold the whole GT, seeded per record, and each window is cut exactly as inference cuts it.
"""
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np

from finers_mm.structures import (Size, crop_window_from_region, explorer_to_original,
                                  original_to_explorer, region_around_box)
from finers_mm.structures.protocols import DEFAULT_PROTOCOL, check_protocol, protocol_setting

CANDIDATE_RULES = ('random', 'grid')
#: how equal scores are broken (module docstring)
TIE_RULES = ('first', 'centred_then_last')


def preference_order(count: int, tie_rule: str) -> List[int]:
    """Candidate indices (the centred region at 0) from the most to the least preferred on a tie.

    Args:
        count (int): number of candidates K.
        tie_rule (str): ``'first'`` or ``'centred_then_last'``.

    Returns:
        list[int]: a permutation of ``range(count)``: ``[0, 1, ..., K - 1]`` for ``'first'``,
        ``[0, K - 1, ..., 1]`` for ``'centred_then_last'``.
    """
    _check_tie_rule(tie_rule)
    if tie_rule == 'first' or count == 0:
        return list(range(count))
    return [0] + list(range(count - 1, 0, -1))


def _check_tie_rule(tie_rule: str) -> None:
    """ValueError naming the known rules unless ``tie_rule`` is one."""
    if tie_rule not in TIE_RULES:
        raise ValueError(f'region_search tie_rule must be one of {TIE_RULES}, got {tie_rule!r}')


def best_candidate(scores: Sequence[float], tie_rule: str) -> int:
    """Index of the best-scoring candidate, ties broken by ``tie_rule``.

    Args:
        scores (Sequence[float]): (K,) the candidates' scores, the centred region's first; K >= 1.
        tie_rule (str): ``'first'`` or ``'centred_then_last'`` (:func:`preference_order`).

    Returns:
        int: the chosen candidate's index.
    """
    scores = np.asarray(scores, dtype=np.float64)
    order = preference_order(len(scores), tie_rule)
    return order[int(np.argmax(scores[order]))]  # argmax: the first maximum in that order


class CandidateRegions:
    """The candidate regions of a record and their crop windows (rules: module docstring).

    Args:
        explorer_size (tuple[int, int]): ``(fw, fh)`` of the explorer frame.
        region_size (int): side of the explorer's region in EXPLORER pixels.
        crop_min_side (int): smallest crop-window side in ORIGINAL pixels.
        num_candidates (int, optional): candidates per record, the centred region included.
            Defaults to None: the protocol's ``'region_candidates'`` (8 under ``'finers_mm'``, 5
            under ``'authors'``).
        rule (str): ``'random'`` or ``'grid'`` (``num_candidates - 1`` must then be a square).
            Defaults to ``'random'``.
        seed (int): seed of ``'random'``, combined with the record's index. Defaults to 0.
        tie_rule (str, optional): ``'first'`` or ``'centred_then_last'`` (module docstring).
            Defaults to None: the protocol's (``'first'`` under ``'finers_mm'``,
            ``'centred_then_last'`` under ``'authors'``).
        protocol (str): ``'finers_mm'`` or ``'authors'``. Defaults to ``'finers_mm'``.
    """

    def __init__(self, explorer_size: Size, region_size: int, crop_min_side: int,
                 num_candidates: Optional[int] = None, rule: str = 'random', seed: int = 0,
                 tie_rule: Optional[str] = None, protocol: str = DEFAULT_PROTOCOL) -> None:
        check_protocol(protocol)
        if num_candidates is None:
            num_candidates = protocol_setting(protocol, 'region_candidates')
        if tie_rule is None:
            tie_rule = protocol_setting(protocol, 'region_ties')
        _check_tie_rule(tie_rule)
        if rule not in CANDIDATE_RULES:
            raise ValueError(f'region_search rule must be one of {CANDIDATE_RULES}, got {rule!r}')
        if int(num_candidates) < 1:
            raise ValueError(f'region_search num_candidates must be >= 1, got {num_candidates}')
        if rule == 'grid' and math.isqrt(int(num_candidates) - 1)**2 != int(num_candidates) - 1:
            raise ValueError(
                "region_search rule='grid' needs num_candidates = 1 + g * g (the centred region "
                f'plus a g x g lattice, e.g. 5, 10 or 17), got {num_candidates}')
        self.explorer_size = (int(explorer_size[0]), int(explorer_size[1]))
        self.region_size = int(region_size)
        self.crop_min_side = int(crop_min_side)
        self.num_candidates = int(num_candidates)
        self.rule = rule
        self.seed = int(seed)
        self.tie_rule = tie_rule

    @property
    def settings(self) -> dict:
        """Everything that decides the candidates and the choice among them, JSON-ready (part of
        a search's settings)."""
        return dict(explorer_size=list(self.explorer_size), region_size=self.region_size,
                    crop_min_side=self.crop_min_side, num_candidates=self.num_candidates,
                    rule=self.rule, seed=self.seed, tie_rule=self.tie_rule)

    def best(self, scores: Sequence[float]) -> int:
        """Index of the best of a record's candidates (:func:`best_candidate` with this
        :attr:`tie_rule`).

        Args:
            scores (Sequence[float]): (K,) the scores of :meth:`__call__`'s candidates, in order.

        Returns:
            int: the chosen candidate's index.
        """
        return best_candidate(scores, self.tie_rule)

    def explorer_regions(self, gt_bbox_explorer, index: int) -> np.ndarray:
        """Candidate regions in the EXPLORER frame, the centred one first.

        Args:
            gt_bbox_explorer: (4,) GT box in EXPLORER pixels.
            index (int): the record's index in the annotation file (seeds ``'random'``).

        Returns:
            np.ndarray: (num_candidates, 4) float32 regions (repeats possible).
        """
        centred = region_around_box(gt_bbox_explorer, self.explorer_size, self.region_size)
        sides = [min(self.region_size, self.explorer_size[axis]) for axis in (0, 1)]
        starts = self._other_starts(gt_bbox_explorer, centred, sides, index)
        others = np.concatenate([starts, starts + np.array(sides)], axis=1)
        return np.concatenate([centred[None], others]).astype(np.float32)

    def __call__(self, gt_bbox, image_size: Size, index: int) -> Tuple[np.ndarray, np.ndarray]:
        """Candidate regions of a record and their crop windows, in ORIGINAL pixels.

        Args:
            gt_bbox: (4,) GT box in ORIGINAL pixels.
            image_size (tuple[int, int]): ``(W, H)`` of the original.
            index (int): the record's index in the annotation file.

        Returns:
            tuple[np.ndarray, np.ndarray]: regions (K, 4) float32 and their windows (K, 4) int64,
            ``1 <= K <= num_candidates``, no two windows equal, in the order drawn, the centred
            region first (of repeated windows, the one :attr:`tie_rule` prefers is kept).
        """
        gt_explorer = original_to_explorer(gt_bbox, image_size, self.explorer_size)
        regions = explorer_to_original(self.explorer_regions(gt_explorer, index), image_size,
                                       self.explorer_size)
        windows = np.stack([crop_window_from_region(region, image_size, self.crop_min_side)
                            for region in regions])
        order = np.array(preference_order(len(windows), self.tie_rule))
        _, first = np.unique(windows[order], axis=0, return_index=True)
        keep = np.sort(order[first])
        return regions[keep], windows[keep]

    def _other_starts(self, gt_bbox, centred: np.ndarray, sides: Sequence[int],
                      index: int) -> np.ndarray:
        """(num_candidates - 1, 2) integer top-left corners of the non-centred candidates."""
        count = self.num_candidates - 1
        ranges = [_start_range(gt_bbox[axis], gt_bbox[axis + 2], sides[axis],
                               self.explorer_size[axis]) for axis in (0, 1)]
        if self.rule == 'random':
            rng = np.random.default_rng((self.seed, int(index)))
            columns = [rng.integers(low, high + 1, size=count) if low is not None else
                       np.full(count, centred[axis]) for axis, (low, high) in enumerate(ranges)]
            return np.stack(columns, axis=1).astype(np.float64)
        steps = math.isqrt(count)
        xs, ys = [np.round(np.linspace(low, high, steps)) if low is not None else
                  np.full(steps, centred[axis]) for axis, (low, high) in enumerate(ranges)]
        grid_y, grid_x = np.meshgrid(ys, xs, indexing='ij')  # row by row, left to right
        return np.stack([grid_x.ravel(), grid_y.ravel()], axis=1).astype(np.float64)


def _start_range(low: float, high: float, side: int,
                 frame_side: int) -> Tuple[Optional[int], Optional[int]]:
    """Integer starts ``s`` with ``[s, s + side]`` holding ``[low, high]`` and inside
    ``[0, frame_side]``, as ``(first, last)``; ``(None, None)`` when there is none."""
    first = max(math.ceil(float(high) - side), 0)
    last = min(math.floor(float(low)), frame_side - side)
    return (first, last) if first <= last else (None, None)
