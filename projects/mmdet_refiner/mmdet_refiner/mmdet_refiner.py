# Copyright (c) finers_mm contributors. All rights reserved.
"""MMDetRefiner: any mmdet detector as the FineRS refiner stage.

It honours the refiner interface of :mod:`finers_mm.models.stages`
(``refine(images, windows, queries) -> List[RefinerOutput]``, everything in ORIGINAL pixels), so
``FineRSDetector`` takes it by config alone::

    custom_imports = dict(imports=['finers_mm', 'projects.mmdet_refiner.mmdet_refiner'])
    model = dict(refiner=dict(_delete_=True, type='MMDetRefiner',
                              detector='path/to/an/mmdet/detector/config.py',
                              checkpoint='path/to/its/checkpoint.pth'))
"""
import json
import math
import re
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmdet.models.detectors import BaseDetector
from mmengine.config import Config, ConfigDict
from mmengine.dataset import Compose
from mmengine.logging import print_log
from mmengine.model import BaseModule

from finers_mm.models.frozen_mmdet import (build_detector, crop_pipeline, detect_on_crops,
                                           load_detector_checkpoint, read_detector_config)
from finers_mm.models.stages import Query, RefinerOutput
from finers_mm.registry import MODELS
from finers_mm.structures import clip_boxes, frame_to_window, inscribed_circle_points
from finers_mm.utils.compat import patch_mmdet_text_encoders

#: how one box is chosen among a crop's detections
SELECTIONS = ('score', 'class_name', 'text')
#: where the two points come from
POINT_SOURCES = ('box', 'mask')
#: what ``PackDetInputs`` keeps on top of the rescale keys for grounding detectors
_TEXT_META_KEYS = ('text', 'custom_entities')
#: the detection score under which ``RefinerOutput.score`` (its log) is floored (log 0 is -inf)
_MIN_SCORE = 1e-12


def log_score(score: float) -> float:
    """``RefinerOutput.score`` of a detection: the log of its score (a log-scale confidence, as
    the interface of :mod:`finers_mm.models.stages` asks, so ``exp`` reads it back), floored at
    ``log(1e-12)`` so a zero score stays finite."""
    return math.log(max(float(score), _MIN_SCORE))


def box_points(box, fractions: Sequence[float] = (0.25, 0.75)) -> np.ndarray:
    """Two points on a box's middle line along its longer axis.

    Args:
        box: (4,) ``[x1, y1, x2, y2]`` (continuous, ``x2 = xmax + 1``), any frame.
        fractions (Sequence[float]): where the two points sit along the longer side, as fractions
            of it from ``x1`` (or ``y1``); ``(0.25, 0.75)`` by default. A square box counts as
            wider than tall.

    Returns:
        np.ndarray: (2, 2) float32 ``[[x, y], [x, y]]`` in the box's frame.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    width, height = x2 - x1, y2 - y1
    if width >= height:
        centre = (y1 + y2) / 2
        points = [[x1 + f * width, centre] for f in fractions]
    else:
        centre = (x1 + x2) / 2
        points = [[centre, y1 + f * height] for f in fractions]
    return np.asarray(points, dtype=np.float32)


@MODELS.register_module()
class MMDetRefiner(BaseModule):
    """An mmdet detector (RTMDet, Faster R-CNN, Grounding DINO, ...) as the FineRS refiner.

    :meth:`refine` cuts each crop window out of its ORIGINAL image, runs the detector on all the
    crops in one batch (the detector's own test pipeline and ``data_preprocessor``, mmdet's
    ``inference_detector`` recipe, boxes rescaled to crop pixels), keeps ONE box per crop, maps it
    back to ORIGINAL pixels and derives the two points the mask head is prompted with.

    A detector gives no answer: ``answer`` is ``''``, so ``FineRSDetector(answer_from='refiner')``
    falls back to the explorer's answer. The ``completion`` is a JSON record of the chosen
    detection (``bbox``, ``score``, ``label``, ``label_name``, ...); ``RefinerOutput.score`` is the
    log of that detection's score (the log-scale confidence of the refiner interface; the
    detector's score fusion reads ``exp`` of it).

    The detector is frozen (no parameter requires grad) and stays in eval mode; its weights come
    from ``checkpoint`` at build time, and :meth:`init_weights` leaves them alone.

    Args:
        detector (str | dict): an mmdet detector config: a config FILE (its ``model`` is built and,
            unless ``pipeline`` or ``input_size`` is given, its test pipeline is used; a
            ``'mmdet::...'`` path names a config shipped with mmdet) or a ``model`` dict.
        checkpoint (str, optional): LOCAL path of the detector's checkpoint (an mmengine /
            mmdet ``.pth``); nothing is downloaded. None keeps the freshly built (random) weights.
        detector_overrides (dict, optional): ``--cfg-options``-style ``{'dotted.key': value}``
            merged into the detector's ``model`` (e.g. ``{'language_model.name': local_dir}``,
            ``{'test_cfg.score_thr': 0.3}``).
        pipeline (list[dict], optional): the test pipeline, starting with
            ``LoadImageFromNDArray`` and ending with ``PackDetInputs``.
        input_size (tuple[int, int], optional): ``(w, h)`` of mmdet's ``Resize`` in a default
            pipeline (``keep_ratio`` below). Without it, ``pipeline`` or a config file's test
            pipeline, crops go in at full resolution.
        keep_ratio (bool): ``Resize(keep_ratio=...)`` of the default pipeline.
        selection (str): how one box is chosen per crop:

            - ``'score'`` (default): class-agnostic, the highest-scoring detection;
            - ``'class_name'``: the highest-scoring detection of a class the question names (a
              word-boundary match, plural ``s`` allowed, case-insensitive); all classes when the
              question names none;
            - ``'text'``: open-vocabulary detectors (Grounding DINO / MM-Grounding-DINO / GLIP): the
              question, formatted by ``text_prompt``, is the detector's text prompt, as ONE entity
              (``custom_entities=True``); the highest-scoring detection.

        class_names (Sequence[str], optional): the detector's class names for ``'class_name'``
            (and the completion record); default: the checkpoint's ``meta.dataset_meta.classes``,
            then the config file's ``metainfo.classes``.
        score_thr (float): detections scoring below are ignored (0: every detection counts).
        text_prompt (str): ``str.format`` template of the text prompt, fields ``question`` and
            ``question_type``.
        points (str): ``'box'`` (default): two points along the box's longer axis at
            ``point_fractions``; ``'mask'``: the two largest inscribed circles' centres of the mask
            ``point_mask_head`` predicts for the box (box points when that mask is empty).
        point_fractions (Sequence[float]): see :func:`box_points`.
        point_mask_head (dict, optional): a mask head (``predict(crops, boxes, points)``, e.g.
            ``SAMMaskHead``) for ``points='mask'``.
        batch_size (int, optional): most crops per detector forward; None: all at once.
        cfg_key (str): where this refiner sits in the whole config, for error messages.
        init_cfg (dict, optional): mmengine init config (unused: weights come from ``checkpoint``).

    Raises:
        FileNotFoundError: the detector config file or the checkpoint does not exist (the message
            names the config key and the path).
        ValueError / TypeError: the detector type is not registered / not an mmdet detector, or an
            option is unknown.
    """

    def __init__(self,
                 detector: Union[str, dict],
                 checkpoint: Optional[str] = None,
                 detector_overrides: Optional[dict] = None,
                 pipeline: Optional[List[dict]] = None,
                 input_size: Optional[Tuple[int, int]] = None,
                 keep_ratio: bool = True,
                 selection: str = 'score',
                 class_names: Optional[Sequence[str]] = None,
                 score_thr: float = 0.0,
                 text_prompt: str = '{question}',
                 points: str = 'box',
                 point_fractions: Sequence[float] = (0.25, 0.75),
                 point_mask_head: Optional[dict] = None,
                 batch_size: Optional[int] = None,
                 cfg_key: str = 'model.refiner',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.cfg_key = cfg_key
        if selection not in SELECTIONS:
            raise ValueError(f'{cfg_key}.selection must be one of {SELECTIONS}, got {selection!r}')
        if points not in POINT_SOURCES:
            raise ValueError(f'{cfg_key}.points must be one of {POINT_SOURCES}, got {points!r}')
        if points == 'mask' and point_mask_head is None:
            raise ValueError(f"{cfg_key}.points='mask' needs {cfg_key}.point_mask_head (a mask "
                             f"head config such as SAMMaskHead)")
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f'{cfg_key}.batch_size must be >= 1 or None, got {batch_size}')
        self.selection = selection
        self.score_thr = float(score_thr)
        self.text_prompt = text_prompt
        self.points = points
        self.point_fractions = tuple(float(f) for f in point_fractions)
        self.batch_size = None if batch_size is None else int(batch_size)

        file_cfg, model_cfg, self.source = read_detector_config(detector,
                                                                 f'{cfg_key}.detector')
        if detector_overrides:  # --cfg-options style keys into the detector's `model`
            wrapped = Config(dict(model=model_cfg))
            wrapped.merge_from_dict({f'model.{k}': v for k, v in detector_overrides.items()})
            model_cfg = wrapped.model
        self.detector: BaseDetector = self._build_detector(model_cfg)
        meta = self._load_checkpoint(checkpoint)
        self.class_names = self._class_names(class_names, meta, file_cfg)
        if selection == 'class_name' and not self.class_names:
            raise ValueError(f"{cfg_key}.selection='class_name' needs {cfg_key}.class_names (or "
                             f"classes in the checkpoint's meta.dataset_meta)")
        if file_cfg is not None:
            self.detector.cfg = file_cfg  # what mmdet's APIs (inference_detector) read
        self.detector.dataset_meta = dict(classes=self.class_names)
        self.pipeline = self._build_pipeline(pipeline, input_size, keep_ratio, file_cfg)
        self.point_mask_head = None if points != 'mask' else MODELS.build(point_mask_head)

        self.requires_grad_(False)
        self.eval()

    # ----------------------------------------------------------------------------------------
    # build
    # ----------------------------------------------------------------------------------------

    def _build_detector(self, model_cfg: ConfigDict) -> BaseDetector:
        """The registered mmdet detector of ``model_cfg``, its text encoders patched."""
        detector = build_detector(model_cfg, f'{self.cfg_key}.detector.type', self.source)
        patch_mmdet_text_encoders(detector)
        return detector

    def _load_checkpoint(self, checkpoint: Optional[str]) -> dict:
        """Load the detector weights; the checkpoint's ``meta`` (empty without one)."""
        if checkpoint is None:
            print_log(f'MMDetRefiner: no {self.cfg_key}.checkpoint, the detector ({self.source}) '
                      f'keeps its freshly built weights', logger='current')
            return {}
        return load_detector_checkpoint(self.detector, checkpoint, f'{self.cfg_key}.checkpoint',
                                        self.source)

    @staticmethod
    def _class_names(class_names, meta: dict, file_cfg: Optional[Config]) -> Optional[tuple]:
        """The first of: the argument, the checkpoint's dataset_meta, the config's metainfo."""
        if class_names is not None:
            return tuple(str(name) for name in class_names)
        classes = (meta.get('dataset_meta', None) or {}).get('classes', None)
        if classes is None and file_cfg is not None:
            classes = (file_cfg.get('metainfo', None) or {}).get('classes', None)
        return None if classes is None else tuple(str(name) for name in classes)

    def _build_pipeline(self, pipeline, input_size, keep_ratio: bool,
                        file_cfg: Optional[Config]) -> Compose:
        """The test pipeline crops go through (see the class docstring for the precedence)."""
        resize = (None if input_size is None else
                  dict(scale=tuple(int(v) for v in input_size), keep_ratio=bool(keep_ratio)))
        return crop_pipeline(pipeline, file_cfg, resize,
                             _TEXT_META_KEYS if self.selection == 'text' else ())

    # ----------------------------------------------------------------------------------------
    # frozen
    # ----------------------------------------------------------------------------------------

    def train(self, mode: bool = True) -> 'MMDetRefiner':
        """Stay in eval mode whatever ``mode`` the parent sets (the stage is frozen)."""
        return super().train(False)

    def init_weights(self) -> None:
        """Nothing: the weights come from ``checkpoint`` at build time (a detector's own
        ``init_cfg`` often names a download, and would overwrite them)."""

    # ----------------------------------------------------------------------------------------
    # the refiner interface
    # ----------------------------------------------------------------------------------------

    @torch.no_grad()
    def refine(self, images: Sequence[np.ndarray], windows: Sequence[np.ndarray],
               queries: Sequence[Query]) -> List[RefinerOutput]:
        """Detect in each crop window and keep one box per crop.

        Args:
            images (Sequence[np.ndarray]): ORIGINAL images, each (H, W, 3) uint8 RGB.
            windows (Sequence[np.ndarray]): (4,) integer crop windows inside their image,
                ORIGINAL pixels.
            queries (Sequence[Query]): what each sample asks (the text prompt for
                ``selection='text'``, the class names for ``'class_name'``).

        Returns:
            list[RefinerOutput]: one per window: ``box`` (4,) and ``points`` (2, 2) float32 in
            ORIGINAL pixels, ``answer`` ``''``, ``completion`` a JSON record (the raw ``score``
            among it), ``score`` the log of the chosen detection's score (:func:`log_score`);
            ``box``, ``points`` and ``score`` None and ``invalid='no_detection'`` when no
            detection is left.
        """
        if not (len(images) == len(windows) == len(queries)):
            raise ValueError(f'MMDetRefiner.refine: {len(images)} images, {len(windows)} windows '
                             f'and {len(queries)} queries; expected one of each per sample')
        crops = [self._cut(image, window) for image, window in zip(images, windows)]
        detections = self._detect(crops, queries)
        outputs, chosen = [], []
        for crop, window, query, found in zip(crops, windows, queries, detections):
            output, crop_box = self._select(found, crop, window, query)
            outputs.append(output)
            chosen.append(crop_box)
        if self.points == 'mask':
            self._mask_points(crops, windows, outputs, chosen)
        return outputs

    @staticmethod
    def _cut(image: np.ndarray, window) -> np.ndarray:
        """The window of the original, full resolution (a view, not a copy)."""
        x1, y1, x2, y2 = (int(v) for v in window)
        height, width = image.shape[:2]
        if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
            raise ValueError(f'MMDetRefiner.refine: window {[x1, y1, x2, y2]} is not inside the '
                             f'{width}x{height} image')
        return image[y1:y2, x1:x2]

    def _detect(self, crops: List[np.ndarray], queries: Sequence[Query]) -> list:
        """The detector's ``pred_instances`` of each crop, boxes in CROP pixels (rescaled)."""
        extras = None
        if self.selection == 'text':
            extras = [dict(text=(self.text_prompt.format(question=query.question,
                                                         question_type=query.question_type), ),
                           custom_entities=True) for query in queries]
        found, _ = detect_on_crops(self.detector, self.pipeline, crops, self.batch_size, extras)
        return found

    def _named_labels(self, question: str) -> List[int]:
        """Indices of the classes whose name the question contains."""
        text = question.lower()
        return [index for index, name in enumerate(self.class_names or ())
                if re.search(r'\b' + re.escape(name.lower()) + r's?\b', text)]

    def _select(self, found, crop: np.ndarray, window, query: Query):
        """One RefinerOutput and the chosen box in CROP pixels (None when nothing is left)."""
        crop_size = (int(crop.shape[1]), int(crop.shape[0]))
        boxes = found.bboxes.detach().float().cpu().numpy().reshape(-1, 4)
        scores = found.scores.detach().float().cpu().numpy().reshape(-1)
        labels = found.labels.detach().cpu().numpy().reshape(-1)
        finite = np.isfinite(boxes).all(axis=1) & np.isfinite(scores)
        boxes = clip_boxes(np.where(finite[:, None], boxes, 0), crop_size)
        keep = finite & boxes.any(axis=1) & (scores >= self.score_thr)
        named = []
        if self.selection == 'class_name':
            named = self._named_labels(query.question)
            if named:
                keep &= np.isin(labels, named)
        record = dict(detector=type(self.detector).__name__, num_detections=int(len(boxes)),
                      num_candidates=int(keep.sum()))
        if named:
            record['named_classes'] = [self.class_names[i] for i in named]
        if not keep.any():
            return RefinerOutput(box=None, points=None, answer='',
                                 completion=json.dumps(record), invalid='no_detection'), None
        best = int(np.flatnonzero(keep)[np.argmax(scores[keep])])
        crop_box = boxes[best]
        box = frame_to_window(crop_box, window, crop_size)
        label = int(labels[best])
        record.update(bbox=[round(float(v), 2) for v in box], score=round(float(scores[best]), 6),
                      label=label)
        names = found.get('label_names', None)  # grounding detectors name their entity
        if names is not None and best < len(names):
            record['label_name'] = str(names[best])
        elif self.class_names is not None and 0 <= label < len(self.class_names):
            record['label_name'] = self.class_names[label]
        output = RefinerOutput(box=box, points=box_points(box, self.point_fractions), answer='',
                               completion=json.dumps(record), invalid=None,
                               score=log_score(scores[best]))
        return output, crop_box

    def _mask_points(self, crops, windows, outputs: List[RefinerOutput], chosen) -> None:
        """Replace the box points by the mask's inscribed-circle centres (one mask-head call)."""
        todo = [i for i, box in enumerate(chosen) if box is not None]
        if not todo:
            return
        prediction = self.point_mask_head.predict([crops[i] for i in todo],
                                                  np.stack([chosen[i] for i in todo]))
        for i, mask in zip(todo, prediction.masks):
            if np.any(mask):
                offset = np.asarray(windows[i][:2], np.float32)
                outputs[i].points = (inscribed_circle_points(mask) + offset).astype(np.float32)
