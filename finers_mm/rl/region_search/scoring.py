# Copyright (c) finers_mm contributors. All rights reserved.
"""Batched scoring of a refiner over the candidate windows, and the search's verdict on a record.

**Score** (:func:`localization_ious`): the IoU of the refiner's box (ORIGINAL pixels) with the GT
box when the output is one :class:`~finers_mm.models.FineRSDetector` would segment (a box and two
points, not "no object"), else 0 (unparsable box or points, "no object"). The best candidate has
the highest score, ties broken by the candidates' ``tie_rule``
(:func:`~finers_mm.rl.region_search.candidates.best_candidate`); either rule keeps the centred
region on every tie it is in, so when every window scores 0 the centred region is kept.
"""
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
import torch
from mmdet.evaluation.functional import bbox_overlaps

from finers_mm.models.stages import Query, RefinerOutput
from .candidates import CandidateRegions


@dataclass(frozen=True)
class SearchResult:
    """The search's verdict on one record.

    Args:
        best_region (tuple[float, ...]): (4,) the best candidate region, ORIGINAL pixels.
        ious (tuple[float, ...]): (K,) every candidate's score, the centred region's first.
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
        """JSON-ready form (the resumable state of a search)."""
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
        candidates (CandidateRegions): the candidate rule and its tie rule.

    Returns:
        list[SearchResult]: one per record, in order.
    """
    per_record = [candidates(info['gt_bbox'], (info['width'], info['height']), info['ann_index'])
                  for info in infos]
    owners = [i for i, (regions, _) in enumerate(per_record) for _ in regions]
    queries = [Query(info['question'], info['question_type'], dict(info['options']),
                     info.get('options_raw'))
               for info in infos]
    with torch.no_grad():
        outputs = refiner.refine([images[i] for i in owners],
                                 [window for _, windows in per_record for window in windows],
                                 [queries[i] for i in owners])
    results, start = [], 0
    for info, (regions, _) in zip(infos, per_record):
        ious = localization_ious(outputs[start:start + len(regions)], info['gt_bbox'])
        start += len(regions)
        best = candidates.best(ious)
        results.append(SearchResult(best_region=tuple(float(v) for v in regions[best]),
                                    ious=tuple(float(v) for v in ious)))
    return results
