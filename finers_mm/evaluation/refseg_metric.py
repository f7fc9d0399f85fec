# Copyright (c) finers_mm contributors. All rights reserved.
"""mmdet's ``RefSegMetric`` (cIoU / mIoU) on FineRS predictions: :class:`FineRSRefSegMetric`."""
from typing import Optional, Sequence

import torch
from mmdet.evaluation import RefSegMetric
from mmengine.structures import BaseDataElement

from finers_mm.registry import METRICS


@METRICS.register_module()
class FineRSRefSegMetric(RefSegMetric):
    """mmdet's ``RefSegMetric`` with each sample scored ONCE, also when it has no prediction.

    ``FineRSDetector`` gives K = 1 mask, or K = 0 (``pred_instances.masks`` of shape (0, H, W))
    for an empty prediction, as mmdet detectors do. Plain ``RefSegMetric`` scores the K masks one
    by one against ``data_sample['gt_masks']``: a K = 0 sample broadcasts to a (0, H, W) overlap,
    which its ``reshape(0, -1)`` rejects (mmdet 3.3: ``RuntimeError: cannot reshape tensor of 0
    elements``), so one empty prediction stops ``tools/test.py``; had it passed, the sample would
    add nothing (its GT left out of cIoU's union, the sample out of mIoU's mean instead of scoring
    0), and K > 1 masks would count as K samples. This class only overrides ``process``: a sample's
    prediction is the union of its K masks (all False when K = 0) against the union of its GT
    masks, one IoU per sample; ``compute_metrics``, the options and the metric names (``cIoU``,
    ``mIoU``, in percent, no default prefix) are ``RefSegMetric``'s. So, on the same predictions:

    - ``cIoU`` equals :class:`~finers_mm.evaluation.FineRSMetric`'s ``cIoU`` and ``mIoU`` its
      ``gIoU`` with ``empty_rule='zero'`` (``RefSegMetric`` turns a 0 / 0 IoU, empty GT AND empty
      prediction, into 0; FineRS-4k has no empty GT, so there ``mIoU`` == ``gIoU`` whatever the
      rule). When EVERY sample is both-empty, ``cIoU`` is NaN (``RefSegMetric``'s 0 / 0), where
      ``FineRSMetric`` follows its ``empty_rule``.
    - Plain ``RefSegMetric`` gives the same numbers (to its float32 precision) when every sample
      has K = 1 and the test pipeline packs ``gt_masks`` in the metainfo
      (``PackFineRSInputs(meta_keys=(..., 'gt_masks'))``); it fails on K = 0.

    The GT is the metainfo's ``gt_masks`` when packed (``RefSegMetric``'s key), else
    ``gt_instances.masks`` (``PackFineRSInputs``' default packing), so it needs no change to the
    pipeline. Sums are kept in float64 (``RefSegMetric`` divides in float32). Use it as::

        test_evaluator = [dict(type='FineRSMetric'), dict(type='FineRSRefSegMetric')]

    Args:
        metric (Sequence[str]): from ``'cIoU'`` and ``'mIoU'`` (both by default).
        **kwargs: ``collect_device``, ``prefix`` (as ``BaseMetric``).
    """

    def process(self, data_batch: Optional[dict], data_samples: Sequence[dict]) -> None:
        """Reduce each sample to its intersection, union and IoU (stored in ``results``).

        Args:
            data_batch (dict, optional): the batch from the dataloader (unused).
            data_samples (Sequence[dict]): model outputs with GT, as dicts
                (``DetDataSample.to_dict()``, what mmengine's ``Evaluator`` passes) or
                ``DetDataSample``.
        """
        for data_sample in data_samples:
            if isinstance(data_sample, BaseDataElement):
                data_sample = data_sample.to_dict()
            pred_masks = torch.as_tensor(data_sample['pred_instances']['masks'])
            gt_masks = data_sample.get('gt_masks')
            if gt_masks is None:
                try:
                    gt_masks = data_sample['gt_instances']['masks']
                except KeyError:
                    raise KeyError(
                        f"sample img_id={data_sample.get('img_id')!r}, ann_index="
                        f"{data_sample.get('ann_index')!r} has neither gt_masks nor "
                        'gt_instances.masks: put LoadFineRSMask in the test pipeline') from None
            if hasattr(gt_masks, 'to_tensor'):  # mmdet BitmapMasks
                gt_masks = gt_masks.to_tensor(torch.bool, pred_masks.device)
            gt = torch.as_tensor(gt_masks, device=pred_masks.device).bool().any(dim=0)
            if len(pred_masks) == 0:
                pred = torch.zeros_like(gt)
            elif pred_masks.shape[1:] != gt.shape:
                raise ValueError(f'predicted masks {tuple(pred_masks.shape)} are not of the GT '
                                 f'mask size {tuple(gt.shape)}: predict full-image masks')
            else:
                pred = pred_masks.bool().any(dim=0)
            overlap, union = self.compute_iou(pred, gt)
            intersection = overlap.sum(dtype=torch.float64)
            union = union.sum(dtype=torch.float64)
            iou = torch.nan_to_num_(intersection / union, nan=0.0)
            self.results.append((intersection, union, iou, 1))
