# Copyright (c) finers_mm contributors. All rights reserved.
"""ReasoningProposerDetector (FineRS explorer -> windows -> any mmdet detector) and the sliced
baseline (tiles over the whole image -> the same detector), both ordinary mmdet detectors whose
``pred_instances`` are in ORIGINAL pixels, so ``CocoMetric`` / ``FineRSCocoMetric`` score them."""
import copy
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmcv.ops import batched_nms
from mmdet.models.detectors import BaseDetector
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from finers_mm.models.hypotheses import fallback_tiles, parse_tiled_fallback
from finers_mm.models.stages import Query, accepts_keyword, explore_regions
from finers_mm.registry import MODELS
from finers_mm.structures import (clip_boxes, crop_window_from_region, image_size,
                                  slice_windows)
from .crop_detector import _empty_instances


def merge_detections(parts: Sequence[InstanceData], windows: Sequence[np.ndarray],
                     nms: Optional[dict], max_per_img: Optional[int] = None,
                     class_agnostic: bool = True) -> InstanceData:
    """Map each window's detections (CROP pixels) to ORIGINAL pixels and merge them.

    Each box gets its window's offset and is clipped to its window; non-finite and empty boxes are
    dropped; the rest are merged with ``mmcv.ops.batched_nms`` (per label, or all together with
    ``class_agnostic``, which also sets every label to 0: FineRS's one category ``object``).

    Args:
        parts: one ``InstanceData`` per window (``bboxes`` (N, 4) crop pixels, ``scores``,
            ``labels``).
        windows: (4,) ``[x1, y1, x2, y2]`` windows, ORIGINAL pixels.
        nms (dict, optional): ``batched_nms``'s ``nms_cfg`` (``dict(type='nms',
            iou_threshold=0.5)``); None keeps every box.
        max_per_img (int, optional): most boxes kept (highest scores first).
        class_agnostic (bool): see above.

    Returns:
        InstanceData: ``bboxes`` (K, 4) float32 ORIGINAL pixels, ``scores`` (K,), ``labels`` (K,),
        sorted by score.
    """
    boxes, scores, labels = [], [], []
    for part, window in zip(parts, windows):
        if len(part) == 0:
            continue
        x1, y1, x2, y2 = (int(v) for v in window)
        crop_boxes = part.bboxes.detach().float().cpu().numpy().reshape(-1, 4)
        part_scores = part.scores.detach().float().cpu().numpy().reshape(-1)
        finite = np.isfinite(crop_boxes).all(axis=1) & np.isfinite(part_scores)
        crop_boxes = clip_boxes(np.where(finite[:, None], crop_boxes, 0), (x2 - x1, y2 - y1))
        keep = finite & crop_boxes.any(axis=1)
        boxes.append(crop_boxes[keep] + np.array([x1, y1, x1, y1], np.float32))
        scores.append(part_scores[keep])
        labels.append(part.labels.detach().cpu().numpy().reshape(-1)[keep])
    if not boxes or sum(len(b) for b in boxes) == 0:
        return _empty_instances()
    bboxes = torch.as_tensor(np.concatenate(boxes), dtype=torch.float32)
    score_t = torch.as_tensor(np.concatenate(scores), dtype=torch.float32)
    label_t = torch.as_tensor(np.concatenate(labels), dtype=torch.long)
    if class_agnostic:
        label_t = torch.zeros_like(label_t)
    if nms is not None:
        dets, keep = batched_nms(bboxes, score_t, label_t, copy.deepcopy(dict(nms)))
        bboxes, score_t, label_t = dets[:, :4], dets[:, 4], label_t[keep]
    else:
        order = torch.argsort(score_t, descending=True)
        bboxes, score_t, label_t = bboxes[order], score_t[order], label_t[order]
    if max_per_img is not None:
        bboxes, score_t, label_t = (t[:int(max_per_img)] for t in (bboxes, score_t, label_t))
    out = InstanceData()
    out.bboxes, out.scores, out.labels = bboxes.contiguous(), score_t.contiguous(), label_t
    return out


def _build_crop_detector(detector: dict, cfg_key: str):
    """``detector`` with no ``type`` is an :class:`MMDetCropDetector` (``config``,
    ``checkpoint``, ...); any other type must have ``detect(images, jobs, data_samples)``."""
    if not isinstance(detector, dict):
        raise TypeError(f'{cfg_key} must be a dict (config, checkpoint, ...), got '
                        f'{type(detector).__name__}')
    cfg = dict(detector)
    cfg.setdefault('type', 'MMDetCropDetector')
    if cfg['type'] in ('MMDetCropDetector', 'finers_mm.MMDetCropDetector'):
        if 'config' not in cfg:
            raise KeyError(f'{cfg_key}.config is required: an mmdet config file or model dict')
        cfg.setdefault('cfg_key', cfg_key)
    built = MODELS.build(cfg)
    if not callable(getattr(built, 'detect', None)):
        raise TypeError(f"{cfg_key}.type: '{cfg['type']}' has no detect(images, jobs, "
                        f"data_samples) method")
    return built


class _WindowedDetector(BaseDetector):
    """Shared by both pipelines: run ``self.detector`` on windows, merge per sample."""

    def __init__(self, detector: dict, nms: Optional[dict], max_per_img: Optional[int],
                 class_agnostic: bool, data_preprocessor: Optional[dict],
                 init_cfg: Optional[dict]) -> None:
        super().__init__(data_preprocessor=data_preprocessor or dict(type='FineRSDataPreprocessor'),
                         init_cfg=init_cfg)
        if nms is not None and 'iou_threshold' not in nms:
            raise KeyError("model.nms needs iou_threshold, e.g. dict(type='nms', iou_threshold=0.5)")
        self.detector = _build_crop_detector(detector, 'model.detector')
        self.nms = None if nms is None else dict(nms)
        self.max_per_img = max_per_img
        self.class_agnostic = bool(class_agnostic)

    def _detect_and_merge(self, originals, windows_per_sample, data_samples) -> List[InstanceData]:
        jobs = [(i, w) for i, windows in enumerate(windows_per_sample) for w in windows]
        found = self.detector.detect(originals, jobs, data_samples) if jobs else []
        merged, start = [], 0
        for windows in windows_per_sample:
            parts = found[start:start + len(windows)]
            start += len(windows)
            merged.append(merge_detections(parts, windows, self.nms, self.max_per_img,
                                           self.class_agnostic))
        return merged

    def loss(self, batch_inputs, batch_data_samples):
        raise NotImplementedError(f'{type(self).__name__} only predicts')

    def _forward(self, batch_inputs, batch_data_samples=None):
        raise NotImplementedError(f"{type(self).__name__} has no 'tensor' mode; use 'predict'")

    def extract_feat(self, batch_inputs):
        raise NotImplementedError(f'{type(self).__name__} has no shared features')


@MODELS.register_module()
class ReasoningProposerDetector(_WindowedDetector):
    """FineRS's explorer as a region proposer for any mmdet detector.

    Per batch: the explorer answers the question on the explorer view (one batched generate; its
    region in ORIGINAL pixels); each region becomes a square crop window (side
    ``max(crop_min_side, region side)``, shifted into the image: the window FineRSDetector gives its
    refiner); the detector runs on all native-resolution crops of the batch in one call; its boxes
    are mapped to ORIGINAL pixels, clipped to their window and merged per sample with
    ``mmcv.ops.batched_nms``. A sample whose explorer gave no usable region gets 0 instances and
    ``invalid_reason`` ``'explorer:<reason>'``; with ``tiled_fallback`` it is instead given the
    tiles of :func:`finers_mm.structures.slice_windows` over the whole image (sliced inference for
    that sample only, in the same detector call, merged the same way; metainfo
    ``fallback='tiled'``, the ``invalid_reason`` still reports the explorer's failure). The same
    fallback as :class:`~finers_mm.models.FineRSDetector`'s
    (:func:`finers_mm.models.hypotheses.fallback_tiles`).

    Args:
        explorer (dict): an explorer config (``GlobalExplorer``, or anything with the explorer
            interface of :mod:`finers_mm.models.stages`).
        detector (dict): ``dict(config=<mmdet config file or model dict>, checkpoint=<local
            .pth>, batch_size=None, pipeline=None)`` (an :class:`MMDetCropDetector`), or
            ``dict(type=..., ...)`` of another crop detector (``OracleCropDetector``).
        crop_min_side (int): smallest crop-window side, ORIGINAL pixels.
        num_regions (int): explorer answers per sample, k (``explore(..., num_regions=k)``, one
            batched generate; ``GlobalExplorer``: beam search or sampling, its ``multi_region``);
            identical windows are run once.
        nms (dict, optional): merge of the windows' boxes (``batched_nms``'s ``nms_cfg``).
        max_per_img (int, optional): most boxes per sample after the merge.
        class_agnostic (bool): merge all classes together and label everything 0 (FineRS's one
            category); False keeps the detector's labels.
        tiled_fallback (dict, optional): None (default: off) or ``dict(tile_size=512,
            overlap_ratio=0.2)`` (see above).
    """

    def __init__(self, explorer: dict, detector: dict, crop_min_side: int = 512,
                 num_regions: int = 1, nms: Optional[dict] = dict(type='nms', iou_threshold=0.5),
                 max_per_img: Optional[int] = 100, class_agnostic: bool = True,
                 tiled_fallback: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None) -> None:
        if int(num_regions) < 1:
            raise ValueError(f'model.num_regions must be >= 1, got {num_regions}')
        tiled = parse_tiled_fallback(tiled_fallback, 'model')
        super().__init__(detector, nms, max_per_img, class_agnostic, data_preprocessor, init_cfg)
        self.explorer = MODELS.build(explorer)
        if not callable(getattr(self.explorer, 'explore', None)):
            raise TypeError(f"model.explorer.type: '{explorer.get('type')}' has no "
                            f"explore(views, image_sizes, queries) method")
        if int(num_regions) > 1 and not accepts_keyword(self.explorer.explore, 'num_regions'):
            raise TypeError(f"model.num_regions={num_regions} needs an explorer whose explore() "
                            f"takes num_regions; model.explorer.type '{explorer.get('type')}' "
                            'does not (see finers_mm.models.stages)')
        self.crop_min_side = int(crop_min_side)
        self.num_regions = int(num_regions)
        self.tiled_fallback = tiled

    def predict(self, batch_inputs: dict, batch_data_samples: List[DetDataSample],
                rescale: bool = True) -> List[DetDataSample]:
        """Propose, detect on the crops, merge.

        Returns:
            list[DetDataSample]: ``pred_instances`` (``bboxes`` (K, 4) ORIGINAL pixels, ``scores``,
            ``labels``) and metainfo ``pred_regions`` (list of (4,) ORIGINAL), ``pred_windows``
            ((W, 4) int64), ``num_detector_inputs`` (crops run for the sample), ``pred_answer``,
            ``explorer_completion`` and ``invalid_reason``; with ``tiled_fallback`` also
            ``fallback`` (None or ``'tiled'``).
        """
        originals = batch_inputs['original']
        sizes = [image_size(image) for image in originals]
        queries = [Query.from_data_sample(sample) for sample in batch_data_samples]
        k = self.num_regions
        explored = explore_regions(self.explorer, batch_inputs['explorer'], sizes, queries, k)
        windows_per_sample, regions_per_sample, fallback = [], [], set()
        for i in range(len(originals)):
            regions, windows = [], []
            for out in explored[i * k:(i + 1) * k]:
                if out.region is None:
                    continue
                regions.append(np.asarray(out.region, np.float32))
                window = crop_window_from_region(out.region, sizes[i], self.crop_min_side)
                if not any(np.array_equal(window, w) for w in windows):
                    windows.append(window)
            if not windows and self.tiled_fallback is not None:
                fallback.add(i)
                windows = list(fallback_tiles(sizes[i], self.tiled_fallback))
            regions_per_sample.append(regions)
            windows_per_sample.append(windows)
        merged = self._detect_and_merge(originals, windows_per_sample, batch_data_samples)
        for i, sample in enumerate(batch_data_samples):
            first = explored[i * k]
            valid = [out for out in explored[i * k:(i + 1) * k] if out.region is not None]
            reason = None
            if not valid:
                reason = f'explorer:{first.invalid or "no_region"}'
            sample.pred_instances = merged[i]
            meta = dict(
                pred_regions=regions_per_sample[i],
                pred_windows=np.asarray(windows_per_sample[i], np.int64).reshape(-1, 4),
                num_detector_inputs=len(windows_per_sample[i]),
                pred_answer=(valid[0] if valid else first).answer or '',
                explorer_completion=first.completion,
                invalid_reason=reason)
            if self.tiled_fallback is not None:
                meta['fallback'] = 'tiled' if i in fallback else None
            sample.set_metainfo(meta)
        return batch_data_samples


@MODELS.register_module()
class SlicedDetector(_WindowedDetector):
    """The baseline: the same detector on overlapping tiles over the WHOLE image (SAHI-style
    sliced inference, :func:`finers_mm.structures.slice_windows`), merged the same way. It reads
    only the ``original`` view; the question is ignored.

    Args:
        detector (dict): as :class:`ReasoningProposerDetector`'s.
        tile_size (int): tile side, ORIGINAL pixels (default 512: FineRS's crop side, so both
            pipelines feed the detector crops of the same size).
        overlap_ratio (float): SAHI's default 0.2.
        nms, max_per_img, class_agnostic: as :class:`ReasoningProposerDetector`'s.
    """

    def __init__(self, detector: dict, tile_size: int = 512, overlap_ratio: float = 0.2,
                 nms: Optional[dict] = dict(type='nms', iou_threshold=0.5),
                 max_per_img: Optional[int] = 100, class_agnostic: bool = True,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(detector, nms, max_per_img, class_agnostic, data_preprocessor, init_cfg)
        slice_windows((tile_size, tile_size), tile_size, overlap_ratio)  # validate early
        self.tile_size = int(tile_size)
        self.overlap_ratio = float(overlap_ratio)

    def predict(self, batch_inputs: dict, batch_data_samples: List[DetDataSample],
                rescale: bool = True) -> List[DetDataSample]:
        originals = batch_inputs['original']
        windows_per_sample = [
            list(slice_windows(image_size(im), self.tile_size, self.overlap_ratio))
            for im in originals]
        merged = self._detect_and_merge(originals, windows_per_sample, batch_data_samples)
        for sample, instances, windows in zip(batch_data_samples, merged, windows_per_sample):
            sample.pred_instances = instances
            sample.set_metainfo(dict(pred_windows=np.asarray(windows, np.int64),
                                     num_detector_inputs=len(windows), invalid_reason=None))
        return batch_data_samples
