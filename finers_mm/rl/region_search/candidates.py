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
and its window is ``crop_window_from_region(region, image_size, crop_min_side)``. A candidate whose
window repeats an earlier candidate's is dropped (the refiner would see the same view; the earlier
one wins such a tie anyway), so a record may get fewer than ``num_candidates`` windows: e.g. regions
near a border whose windows are shifted to the same place, or a GT box too large to move around.
"""
import math
from typing import Optional, Sequence, Tuple

import numpy as np

from finers_mm.structures import (Size, crop_window_from_region, explorer_to_original,
                                  original_to_explorer, region_around_box)

CANDIDATE_RULES = ('random', 'grid')


class CandidateRegions:
    """The candidate regions of a record and their crop windows (rules: module docstring).

    Args:
        explorer_size (tuple[int, int]): ``(fw, fh)`` of the explorer frame.
        region_size (int): side of the explorer's region in EXPLORER pixels.
        crop_min_side (int): smallest crop-window side in ORIGINAL pixels.
        num_candidates (int): candidates per record, the centred region included. Defaults to 8.
        rule (str): ``'random'`` or ``'grid'`` (``num_candidates - 1`` must then be a square).
            Defaults to ``'random'``.
        seed (int): seed of ``'random'``, combined with the record's index. Defaults to 0.
    """

    def __init__(self, explorer_size: Size, region_size: int, crop_min_side: int,
                 num_candidates: int = 8, rule: str = 'random', seed: int = 0) -> None:
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

    @property
    def settings(self) -> dict:
        """Everything that decides the candidates, JSON-ready (part of a search's settings)."""
        return dict(explorer_size=list(self.explorer_size), region_size=self.region_size,
                    crop_min_side=self.crop_min_side, num_candidates=self.num_candidates,
                    rule=self.rule, seed=self.seed)

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
            ``1 <= K <= num_candidates``, no two windows equal, the centred region first.
        """
        gt_explorer = original_to_explorer(gt_bbox, image_size, self.explorer_size)
        regions = explorer_to_original(self.explorer_regions(gt_explorer, index), image_size,
                                       self.explorer_size)
        windows = np.stack([crop_window_from_region(region, image_size, self.crop_min_side)
                            for region in regions])
        _, first = np.unique(windows, axis=0, return_index=True)
        keep = np.sort(first)
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
