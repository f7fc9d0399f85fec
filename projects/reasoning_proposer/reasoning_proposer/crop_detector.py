# Copyright (c) finers_mm contributors. All rights reserved.
"""The detector that runs on windows of the original image: any mmdet detector, or an oracle.

Interface (what :class:`~.proposer.ReasoningProposerDetector` and :class:`~.proposer.SlicedDetector`
call)::

    detect(images, jobs, data_samples) -> List[InstanceData]

``images``: the batch's ORIGINAL images ((H, W, 3) uint8 RGB); ``jobs``: ``(image_index, window)``
pairs, ``window`` (4,) int ``[x1, y1, x2, y2]`` in ORIGINAL pixels; one ``InstanceData``
(``bboxes`` (N, 4) in CROP pixels, ``scores`` (N,), ``labels`` (N,)) per job. ``num_inputs`` counts
the crops seen and ``num_forwards`` the batched forward passes, for the benchmark.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.model import BaseModule
from mmengine.structures import InstanceData

from finers_mm.models.frozen_mmdet import (build_detector, crop_pipeline, detect_on_crops,
                                           load_detector_checkpoint, read_detector_config)
from finers_mm.registry import MODELS

Job = Tuple[int, np.ndarray]


def _empty_instances() -> InstanceData:
    out = InstanceData()
    out.bboxes = torch.zeros(0, 4)
    out.scores = torch.zeros(0)
    out.labels = torch.zeros(0, dtype=torch.long)
    return out


class _CountingMixin:
    """``num_inputs`` (crops seen) and ``num_forwards`` (batched detector calls)."""

    def reset_counters(self) -> None:
        self.num_inputs = 0
        self.num_forwards = 0


@MODELS.register_module()
class MMDetCropDetector(BaseModule, _CountingMixin):
    """Any mmdet detector, frozen, run on native-resolution crops of the original.

    Each crop is cut at full resolution and goes through the detector's OWN test pipeline (mmdet's
    ``inference_detector`` recipe: ``LoadImageFromNDArray``, the config's resize / pad,
    ``PackDetInputs``; BGR input like ``LoadImageFromFile``), all crops of a call through one
    ``test_step`` (``batch_size`` to split), boxes rescaled to crop pixels.

    Args:
        config (str | dict): an mmdet config FILE (its ``model`` and test pipeline;
            ``'mmdet::...'`` names one shipped with mmdet) or an inline ``model`` dict.
        checkpoint (str, optional): LOCAL checkpoint of the detector; None keeps the freshly
            built weights (random; only for smoke runs).
        pipeline (list, optional): test pipeline for the crops; defaults to the config file's
            test pipeline, else ``Resize(scale_factor=1.0)`` + ``PackDetInputs``.
        batch_size (int, optional): most crops per forward pass; None: all at once.
        cfg_key (str): where this dict sits in the top config, for error messages.
    """

    def __init__(self, config, checkpoint: Optional[str] = None, pipeline: Optional[list] = None,
                 batch_size: Optional[int] = None, cfg_key: str = 'model.detector') -> None:
        super().__init__()
        self.cfg_key = cfg_key
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f'{cfg_key}.batch_size must be >= 1 or None, got {batch_size}')
        self.batch_size = None if batch_size is None else int(batch_size)
        file_cfg, model_cfg, self.source = read_detector_config(config, f'{cfg_key}.config')
        self.detector = build_detector(model_cfg, f'{cfg_key}.config.type', self.source)
        if checkpoint is not None:
            load_detector_checkpoint(self.detector, checkpoint, f'{cfg_key}.checkpoint',
                                     self.source)
        self.pipeline = crop_pipeline(pipeline, file_cfg)
        self.reset_counters()
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> 'MMDetCropDetector':
        """Frozen: always eval mode."""
        return super().train(False)

    def init_weights(self) -> None:
        """Nothing: the weights come from ``checkpoint`` at build time."""

    @torch.no_grad()
    def detect(self, images: Sequence[np.ndarray], jobs: Sequence[Job],
               data_samples=None) -> List[InstanceData]:
        """Detections of each job's crop, boxes in CROP pixels (see the module docstring)."""
        crops = []
        for image_index, window in jobs:
            x1, y1, x2, y2 = (int(v) for v in window)
            crops.append(images[image_index][y1:y2, x1:x2])
        found, calls = detect_on_crops(self.detector, self.pipeline, crops, self.batch_size)
        self.num_forwards += calls
        self.num_inputs += len(crops)
        outputs = []
        for instances in found:
            out = InstanceData()
            out.bboxes = instances.bboxes.detach().float().cpu().reshape(-1, 4)
            out.scores = instances.scores.detach().float().cpu().reshape(-1)
            out.labels = instances.labels.detach().cpu().long().reshape(-1)
            outputs.append(out)
        return outputs


@MODELS.register_module()
class OracleCropDetector(BaseModule, _CountingMixin):
    """TEST SCAFFOLDING: a 'perfect detector' that reads the GT, to measure COVERAGE.

    For each crop it returns the sample's GT box (``gt_instances.bboxes``, ORIGINAL pixels) as it
    appears in the crop: the part inside the window, clipped, with score = the visible fraction of
    the box (1.0 when the crop holds the whole target), label 0; nothing when the target does not
    overlap the window, or (``mode='contain'``) is not wholly inside it. A pipeline using it recalls
    the target exactly when what its detector SEES covers the target, which is the question the
    benchmark asks (the tiny random detectors cannot find anything).

    Args:
        mode (str): ``'clip'`` (default) or ``'contain'``.
    """

    def __init__(self, mode: str = 'clip') -> None:
        super().__init__()
        if mode not in ('clip', 'contain'):
            raise ValueError(f"OracleCropDetector.mode must be 'clip' or 'contain', got {mode!r}")
        self.mode = mode
        self.reset_counters()

    def detect(self, images, jobs, data_samples=None) -> List[InstanceData]:
        if data_samples is None:
            raise ValueError('OracleCropDetector needs the data samples (their gt_instances)')
        outputs = []
        for image_index, window in jobs:
            gt = data_samples[image_index].gt_instances.bboxes.reshape(-1, 4).float().numpy()
            x1, y1, x2, y2 = (float(v) for v in window)
            boxes, scores = [], []
            for box in gt:
                area = max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
                inner = np.array([max(box[0], x1), max(box[1], y1), min(box[2], x2),
                                  min(box[3], y2)], np.float32)
                visible = max(inner[2] - inner[0], 0) * max(inner[3] - inner[1], 0)
                if visible <= 0 or area <= 0 or (self.mode == 'contain' and visible < area):
                    continue
                boxes.append(inner - np.array([x1, y1, x1, y1], np.float32))
                scores.append(visible / area)
            out = _empty_instances()
            if boxes:
                out.bboxes = torch.as_tensor(np.stack(boxes))
                out.scores = torch.as_tensor(np.asarray(scores, np.float32))
                out.labels = torch.zeros(len(boxes), dtype=torch.long)
            outputs.append(out)
        self.num_inputs += len(jobs)
        self.num_forwards += 1 if len(jobs) else 0
        return outputs
