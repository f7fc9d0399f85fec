# Copyright (c) finers_mm contributors. All rights reserved.
"""ReasonSeg's gIoU / cIoU, computed as LISA's evaluation computes them: :class:`ReasonSegMetric`.

LISA (dvlab-research/LISA, ``train_ds.py::validate`` with ``utils/utils.py::
intersectionAndUnionGPU(output, target, K=2, ignore_index=255)``) scores one predicted mask per
query against the image's label map (0 background, 1 target, 255 ignore, the raster of
``utils/data_processing.py::get_mask_from_json``):

- **ignore pixels** are taken out of both masks: ``output[target == 255] = 255`` and ``histc`` over
  ``[0, 1]`` never counts 255, so a prediction inside an ignore region costs nothing;
- class 1's ``intersection`` and ``union`` (pixels) are kept per query;
- **gIoU** = mean over queries of ``intersection / (union + 1e-5)``, plus **1.0 when the union is
  0** (``acc_iou[union_i == 0] += 1.0``, "no-object target": an empty GT AND an empty prediction
  score 1, not 0 / 0). An empty prediction against a non-empty GT scores 0; a non-empty prediction
  against an empty GT scores 0 (its union is the prediction);
- **cIoU** = ``sum(intersection) / (sum(union) + 1e-10)``: 0 when every query is both-empty.

Both epsilons are reproduced; the ``1e-5`` moves a query's IoU by at most ``1e-5 / union``
(below 1e-7 for a 100-pixel union). FineRS's chain gives 0 masks (``pred_instances.masks`` of
shape (0, H, W)) for an invalid or "not found" answer: that is an all-background prediction here,
as LISA's model outputting no foreground. A query's K > 1 masks count as their union.

Figures are in percent (LISA prints fractions; papers report percent), overall and per query type
(``short``: a phrase, LISA's ``is_sentence`` false; ``long``: a sentence) when the samples say it.
"""
from collections import defaultdict
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.structures import BaseDataElement

from finers_mm.registry import METRICS
from .functional import mask_overlap

#: LISA's epsilons: ``intersection / (union + GIOU_EPS)`` and ``sum_i / (sum_u + CIOU_EPS)``
GIOU_EPS = 1e-5
CIOU_EPS = 1e-10
#: query types of ReasonSeg (``is_sentence`` false / true), in report order
QUERY_TYPES = ('short', 'long')


def lisa_overlap(pred_masks: np.ndarray, gt_mask: np.ndarray,
                 ignore_mask: Optional[np.ndarray] = None) -> Tuple[int, int]:
    """Class-1 intersection and union of one query, ignore pixels excluded (LISA's rule).

    Args:
        pred_masks (np.ndarray): (K, H, W) predicted masks (nonzero is foreground); K may be 0.
        gt_mask (np.ndarray): (H, W) target mask (the label map's 1 pixels).
        ignore_mask (np.ndarray, optional): (H, W) ignore pixels (the label map's 255); None:
            none.

    Returns:
        tuple[int, int]: intersection and union in pixels, outside the ignore region.

    Raises:
        ValueError: K > 0 and the masks are not of the GT's size, or the ignore mask is not.
    """
    gt = np.asarray(gt_mask).astype(bool)
    pred_masks = np.asarray(pred_masks)
    if ignore_mask is not None:
        ignore = np.asarray(ignore_mask).astype(bool)
        if ignore.shape != gt.shape:
            raise ValueError(f'ignore mask {ignore.shape} is not of the GT mask size {gt.shape}')
        valid = ~ignore
        gt = gt & valid
        if len(pred_masks):
            if pred_masks.shape[1:] != gt.shape:
                raise ValueError(f'predicted masks {tuple(pred_masks.shape)} are not of the GT '
                                 f'mask size {gt.shape}: predict full-image masks')
            pred_masks = pred_masks.astype(bool).any(axis=0, keepdims=True) & valid
    intersection, union, _, _ = mask_overlap(pred_masks, gt[None])
    return intersection, union


def lisa_scores(intersections: Sequence[int], unions: Sequence[int]) -> Dict[str, float]:
    """gIoU and cIoU of some queries as LISA's ``validate`` computes them, in percent.

    Args:
        intersections (Sequence[int]): per-query class-1 intersections (pixels).
        unions (Sequence[int]): per-query class-1 unions (pixels).

    Returns:
        dict: ``{'gIoU': float, 'cIoU': float}`` in percent; empty for no queries.
    """
    intersections = np.asarray(intersections, dtype=np.float64)
    unions = np.asarray(unions, dtype=np.float64)
    if intersections.size == 0:
        return {}
    ious = intersections / (unions + GIOU_EPS) + (unions == 0)
    c_iou = intersections.sum() / (unions.sum() + CIOU_EPS)
    return {'gIoU': 100.0 * float(ious.mean()), 'cIoU': 100.0 * float(c_iou)}


@METRICS.register_module()
class ReasonSegMetric(BaseMetric):
    """ReasonSeg gIoU / cIoU as LISA computes them (module docstring), per query type too.

    Reads from each sample: ``pred_instances.masks`` ((K, H, W), K = 0 for no prediction),
    ``gt_instances.masks`` (the target, (1, H, W)), metainfo ``gt_ignore_mask`` ((H, W) bool or
    None, packed by the ReasonSeg pipelines) and ``query_type`` (``'short'`` / ``'long'``, or
    absent, e.g. the parquet mirror, which has no ``is_sentence``).

    Metrics (percent; ``prefix`` default ``'reasonseg'``): ``gIoU``, ``cIoU``, ``num_samples``,
    ``empty_predictions`` (share of queries with no predicted mask, each scored as an
    all-background prediction), and ``short_gIoU`` / ``short_cIoU`` / ``long_gIoU`` /
    ``long_cIoU`` for the query types present.

    Args:
        **kwargs: ``collect_device``, ``prefix`` (as ``BaseMetric``).
    """

    default_prefix: Optional[str] = 'reasonseg'

    def process(self, data_batch: Optional[dict], data_samples: Sequence[dict]) -> None:
        """Reduce each sample to its intersection, union and query type (kept in ``results``).

        Args:
            data_batch (dict, optional): the batch from the dataloader (unused).
            data_samples (Sequence[dict]): model outputs with GT (dicts or ``DetDataSample``).
        """
        for sample in data_samples:
            if isinstance(sample, BaseDataElement):
                sample = sample.to_dict()
            name = f"sample img_id={sample.get('img_id')!r} ({sample.get('img_path')!r})"
            try:
                gt = _as_array(sample['gt_instances']['masks'])
            except KeyError:
                raise KeyError(f'{name} has no gt_instances.masks: put LoadReasonSegMask in the '
                               'test pipeline') from None
            pred = _as_array(sample['pred_instances']['masks'])
            try:
                intersection, union = lisa_overlap(
                    pred, gt.astype(bool).any(axis=0), sample.get('gt_ignore_mask'))
            except ValueError as error:
                raise ValueError(f'{name}: {error}') from None
            self.results.append(
                dict(intersection=intersection, union=union, empty=len(pred) == 0,
                     query_type=sample.get('query_type')))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """gIoU / cIoU overall and per query type.

        Args:
            results (list): the per-sample records of :meth:`process`.

        Returns:
            dict: the metrics of the class docstring.
        """
        if not results:
            return dict(num_samples=0)
        metrics = dict(lisa_scores([r['intersection'] for r in results],
                                   [r['union'] for r in results]))
        by_type = defaultdict(list)
        for record in results:
            by_type[record['query_type']].append(record)
        for query_type in QUERY_TYPES:
            if by_type.get(query_type):
                scores = lisa_scores([r['intersection'] for r in by_type[query_type]],
                                     [r['union'] for r in by_type[query_type]])
                metrics.update({f'{query_type}_{k}': v for k, v in scores.items()})
        metrics['num_samples'] = len(results)
        metrics['empty_predictions'] = 100.0 * float(np.mean([r['empty'] for r in results]))
        return metrics


def _as_array(masks) -> np.ndarray:
    """``BitmapMasks`` / tensor / array -> (N, H, W) numpy array."""
    if hasattr(masks, 'masks') and not hasattr(masks, 'cpu'):  # mmdet BitmapMasks
        return np.asarray(masks.masks)
    if hasattr(masks, 'cpu'):
        return masks.cpu().numpy()
    return np.asarray(masks)
