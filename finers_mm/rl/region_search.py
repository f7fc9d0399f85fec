# Copyright (c) finers_mm contributors. All rights reserved.
"""Retrospective best-region search (METHOD.md step 4, "Locate-informed retrospective reward").

For every record, candidate explorer regions that contain the GT box are turned into crop windows
exactly as :class:`~finers_mm.models.FineRSDetector` turns a predicted region into one; the trained
refiner (LPR) localises the target in every window; the region whose window gives the refiner's box
the highest IoU with the GT box becomes the record's ``best_region``, the explorer's (GSE) region
target. ``tools/search_best_region.py`` runs it over an annotation file.

**Candidates** (:class:`CandidateRegions`), in the EXPLORER frame (the whole original resized to
``explorer_size``), each a ``region_size`` square (a side is the frame's where the frame is
smaller):

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

**Score** (:func:`localization_ious`): the IoU of the refiner's box (ORIGINAL pixels) with the GT
box when the output is one :class:`~finers_mm.models.FineRSDetector` would segment (a box and two
points, not "no object"), else 0 (unparsable box or points, "no object"). The best candidate is the
first with the highest score, so when every window scores 0 the centred region is kept.

**State** (:class:`SearchState`): each rank saves its finished records to its own shard
``<out>.partial.rank<r>.json`` beside the output, written atomically, with the settings that decide
the results and their digest. A run reads every shard of that output first, skips the records any
of them holds and refuses shards written with other settings; with several processes the records
left are split ``pending[rank::world_size]`` (:func:`run_search`).
"""
import glob
import hashlib
import json
import math
import os
import os.path as osp
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmdet.evaluation.functional import bbox_overlaps
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from finers_mm.datasets.transforms import LoadFineRSImage
from finers_mm.models.stages import Query, RefinerOutput
from finers_mm.structures import (Size, crop_window_from_region, explorer_to_original,
                                  original_to_explorer, region_around_box)
from finers_mm.utils.fileio import write_atomic

CANDIDATE_RULES = ('random', 'grid')
#: format tag of a state shard
STATE_FORMAT = 'finers_mm.region_search.state/v1'


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
        """Everything that decides the candidates, JSON-ready (part of the state's settings)."""
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


@dataclass(frozen=True)
class SearchResult:
    """The search's verdict on one record.

    Args:
        best_region (tuple[float, ...]): the best candidate region, ORIGINAL pixels.
        ious (tuple[float, ...]): every candidate's score, the centred region's first.
    """
    best_region: Tuple[float, float, float, float]
    ious: Tuple[float, ...]

    @property
    def best_iou(self) -> float:
        """The best candidate's score."""
        return max(self.ious)

    @property
    def improved(self) -> bool:
        """Whether a candidate beat the centred region."""
        return self.best_iou > self.ious[0]

    def to_dict(self) -> dict:
        """JSON-ready form (state shards)."""
        return dict(best_region=list(self.best_region), ious=list(self.ious))

    @classmethod
    def from_dict(cls, data: dict) -> 'SearchResult':
        """Inverse of :meth:`to_dict`."""
        return cls(best_region=tuple(data['best_region']), ious=tuple(data['ious']))


def localization_ious(outputs: Sequence[RefinerOutput], gt_bbox) -> np.ndarray:
    """Score refiner outputs against the GT box (rule: module docstring).

    Args:
        outputs (Sequence[RefinerOutput]): the refiner's answers, ORIGINAL pixels.
        gt_bbox: (4,) GT box, ORIGINAL pixels.

    Returns:
        np.ndarray: (len(outputs),) float64 IoUs in [0, 1].
    """
    ious = np.zeros(len(outputs))
    usable = [i for i, out in enumerate(outputs) if out.usable]
    if usable:
        boxes = np.stack([outputs[i].box for i in usable]).astype(np.float32)
        gt = np.asarray(gt_bbox, np.float32)[None]
        ious[usable] = bbox_overlaps(boxes, gt)[:, 0]
    return ious


def search_batch(refiner, images: Sequence[np.ndarray], infos: Sequence[dict],
                 candidates: CandidateRegions) -> List[SearchResult]:
    """Search the best region of a batch of records with ONE ``refiner.refine`` call.

    Args:
        refiner: a refiner with ``refine(images, windows, queries)`` (e.g.
            :class:`~finers_mm.models.LocalRefiner`), outputs in ORIGINAL pixels.
        images (Sequence[np.ndarray]): each record's ORIGINAL image, (H, W, 3) uint8 RGB.
        infos (Sequence[dict]): :class:`~finers_mm.datasets.FineRS4kDataset` data infos
            (``gt_bbox``, ``width``, ``height``, ``ann_index``, the query keys).
        candidates (CandidateRegions): the candidate rule.

    Returns:
        list[SearchResult]: one per record, in order.
    """
    per_record = [candidates(info['gt_bbox'], (info['width'], info['height']), info['ann_index'])
                  for info in infos]
    owners = [i for i, (regions, _) in enumerate(per_record) for _ in regions]
    queries = [Query(info['question'], info['question_type'], dict(info['options']))
               for info in infos]
    with torch.no_grad():
        outputs = refiner.refine([images[i] for i in owners],
                                 [window for _, windows in per_record for window in windows],
                                 [queries[i] for i in owners])
    results, start = [], 0
    for info, (regions, _) in zip(infos, per_record):
        ious = localization_ious(outputs[start:start + len(regions)], info['gt_bbox'])
        start += len(regions)
        best = int(np.argmax(ious))  # the first of equal scores
        results.append(SearchResult(best_region=tuple(float(v) for v in regions[best]),
                                    ious=tuple(float(v) for v in ious)))
    return results


def settings_digest(settings: dict) -> str:
    """SHA-256 of the settings' canonical JSON (sorted keys)."""
    text = json.dumps(settings, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


class RegionSearchStateError(ValueError):
    """A state shard that cannot be resumed from (unreadable, or written with other settings)."""


class SearchState:
    """The resumable progress of one search: a JSON shard per rank beside the output file.

    A shard holds ``{"format", "digest", "settings", "records": {ann_index: SearchResult}}``.
    Creating the state reads every shard of ``out_file`` (any rank, any earlier world size).

    Args:
        out_file (str): the search's output annotation file.
        settings (dict): JSON-ready settings that decide the results; a shard written with other
            settings is refused.
        rank (int): the rank whose shard :meth:`save` writes. Defaults to 0.

    Raises:
        RegionSearchStateError: a shard is unreadable or was written with other settings.
    """

    def __init__(self, out_file: str, settings: dict, rank: int = 0) -> None:
        self.out_file = out_file
        self.settings = json.loads(json.dumps(settings, default=str))
        self.digest = settings_digest(self.settings)
        self.shard_file = f'{out_file}.partial.rank{int(rank)}.json'
        #: results of every shard (all ranks)
        self.done: Dict[int, SearchResult] = {}
        #: results this rank's shard holds and :meth:`save` writes
        self.own: Dict[int, SearchResult] = {}
        for path in self.shard_files():
            records = self._read_shard(path)
            self.done.update(records)
            if path == self.shard_file:
                self.own.update(records)

    def shard_files(self) -> List[str]:
        """Every rank's shard of this output file that exists, sorted."""
        return sorted(glob.glob(glob.escape(self.out_file) + '.partial.rank*.json'))

    def add(self, index: int, result: SearchResult) -> None:
        """Record a finished record (saved by the next :meth:`save`)."""
        self.own[int(index)] = result
        self.done[int(index)] = result

    def save(self) -> None:
        """Write this rank's shard atomically."""
        content = dict(format=STATE_FORMAT, digest=self.digest, settings=self.settings,
                       records={str(i): r.to_dict() for i, r in sorted(self.own.items())})
        write_atomic(self.shard_file, json.dumps(content, ensure_ascii=False))

    def remove(self) -> None:
        """Delete every shard of this output file (after the output is written)."""
        for path in self.shard_files():
            os.remove(path)

    def _read_shard(self, path: str) -> Dict[int, SearchResult]:
        """The records of one shard, after checking its format and settings."""
        try:
            with open(path, encoding='utf-8') as f:
                content = json.load(f)
            if content.get('format') != STATE_FORMAT:
                raise ValueError(f'format is {content.get("format")!r}, not {STATE_FORMAT!r}')
            digest, settings = content['digest'], content['settings']
            records = {int(i): SearchResult.from_dict(r) for i, r in content['records'].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise RegionSearchStateError(f'{path}: unreadable region-search state ({error}). '
                                         'Delete it to start the search over.') from None
        if digest != self.digest:
            changed = sorted(key for key in set(settings) | set(self.settings)
                             if settings.get(key) != self.settings.get(key))
            raise RegionSearchStateError(
                f'{path}: this region-search state was written with other settings (differing: '
                f'{", ".join(changed) or "digest"}). Rerun with the config, checkpoint and '
                f'annotation file it was written with to resume, or delete {path} (and its '
                f'sibling {osp.basename(self.out_file)}.partial.rank*.json files) to start over.')
        return records


def run_search(refiner, infos: Sequence[dict], candidates: CandidateRegions, state: SearchState,
               batch_size: int = 1, save_interval: int = 16, rank: int = 0, world_size: int = 1,
               progress: bool = True) -> None:
    """Search this rank's share of the records that ``state`` does not hold yet, saving as it goes.

    The records no shard holds are split ``pending[rank::world_size]``; every rank must have read
    the same shards (create every rank's state before any rank runs this). The shard is saved once
    at least ``save_interval`` records were added since the last save (checked after each batch)
    and at the end.

    Args:
        refiner: see :func:`search_batch`.
        infos (Sequence[dict]): the data infos of every record of the annotation file.
        candidates (CandidateRegions): the candidate rule.
        state (SearchState): where the results go (``state.own``).
        batch_size (int): records per ``refine`` call. Defaults to 1.
        save_interval (int): records between saves. Defaults to 16.
        rank (int): this process's rank. Defaults to 0.
        world_size (int): number of processes. Defaults to 1.
        progress (bool): show an mmengine progress bar. Defaults to True.
    """
    pending = [info for info in infos if info['ann_index'] not in state.done]
    if len(pending) < len(infos):
        print_log(f'region search: resuming, {len(infos) - len(pending)} of {len(infos)} records '
                  f'already done ({", ".join(state.shard_files())})', logger='current')
    pending = pending[rank::world_size]
    loader = LoadFineRSImage()
    bar = ProgressBar(len(pending)) if progress and pending else None
    unsaved = 0
    for batch in _chunks(pending, batch_size):
        images = _load_images(batch, loader)
        for info, result in zip(batch, search_batch(refiner, images, batch, candidates)):
            state.add(info['ann_index'], result)
        unsaved += len(batch)
        if unsaved >= save_interval:
            state.save()
            unsaved = 0
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.file.write('\n')
    state.save()


def _chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    """Consecutive slices of ``size`` items."""
    for start in range(0, len(items), max(int(size), 1)):
        yield items[start:start + size]


def _load_images(infos: Sequence[dict], loader: LoadFineRSImage) -> List[np.ndarray]:
    """The ORIGINAL images of a batch, each file decoded once."""
    decoded = {info['img_path']: loader(dict(info))['img'] for info in infos}
    return [decoded[info['img_path']] for info in infos]


def add_best_regions(content: dict, results: Dict[int, SearchResult]) -> dict:
    """Set ``best_region`` in every record of an annotation file's content.

    Args:
        content (dict): the loaded annotation JSON ``{"annotations": [...], ...}``; changed in
            place, nothing else in it is touched.
        results (dict[int, SearchResult]): a result for every record index.

    Returns:
        dict: ``content``.

    Raises:
        ValueError: a record has no result.
    """
    records = content['annotations']
    missing = [i for i in range(len(records)) if i not in results]
    if missing:
        raise ValueError(f'region search: no result for records {missing[:10]} (of '
                         f'{len(records)}); rerun the same command to finish them')
    for index, record in enumerate(records):
        record['best_region'] = list(results[index].best_region)
    return content


def summarize(results: Dict[int, SearchResult]) -> dict:
    """Mean best IoU, mean IoU of the centred region and how many records improved on it.

    Args:
        results (dict[int, SearchResult]): the search's results.

    Returns:
        dict: ``num_records``, ``mean_best_iou``, ``mean_centred_iou``, ``num_improved``.
    """
    values = list(results.values())
    return dict(
        num_records=len(values),
        mean_best_iou=float(np.mean([r.best_iou for r in values])) if values else 0.0,
        mean_centred_iou=float(np.mean([r.ious[0] for r in values])) if values else 0.0,
        num_improved=sum(r.improved for r in values))
