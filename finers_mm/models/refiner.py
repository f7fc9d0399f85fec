# Copyright (c) finers_mm contributors. All rights reserved.
"""LocalRefiner: FineRS's localized perceptual refinement (LPR) stage."""
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmdet.structures import DetDataSample
from mmengine.model import BaseModel

from finers_mm.registry import MODELS
from finers_mm.structures import crop_to_frame, frame_to_window
from .parsing import parse_completion
from .prompts import REFINER, PromptBuilder
from .stages import Query, RefinerOutput, make_pred_instances


@MODELS.register_module()
class LocalRefiner(BaseModel):
    """LPR: a VLM that reads a crop of the ORIGINAL image, resized to the refiner frame, and
    answers a box, two points inside the object and the answer.

    Args:
        vlm (dict): config of a VLM adapter (:mod:`finers_mm.models.vlm`).
        frame_size (tuple[int, int]): ``(rw, rh)`` the crop is resized to when this model cuts it
            (:meth:`refine`); training crops are cut by ``RefinerCrop`` with the same value from
            the dataset config's ``frames``.
        prompt (dict, optional): :class:`~finers_mm.models.prompts.PromptBuilder` arguments.
        interpolation (str): mmcv interpolation name of the crop resize.
        data_preprocessor (dict): defaults to ``FineRSDataPreprocessor``.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, vlm: dict, frame_size: Tuple[int, int] = (512, 512),
                 prompt: Optional[dict] = None, interpolation: str = 'bilinear',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor or dict(type='FineRSDataPreprocessor'),
                         init_cfg=init_cfg)
        self.vlm = MODELS.build(vlm)
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.prompts = PromptBuilder(**(prompt or {}))
        self.interpolation = interpolation

    def refine(self, images: Sequence[np.ndarray], windows: Sequence[np.ndarray],
               queries: Sequence[Query]) -> List[RefinerOutput]:
        """Cut each window out of its original, resize it to the refiner frame and refine it.

        Args:
            images (Sequence[np.ndarray]): ORIGINAL images, each (H, W, 3) uint8 RGB.
            windows (Sequence[np.ndarray]): (4,) integer crop windows, ORIGINAL pixels.
            queries (Sequence[Query]): what each sample asks.

        Returns:
            list[RefinerOutput]: boxes and points in ORIGINAL pixels.
        """
        views = [crop_to_frame(image, window, self.frame_size, self.interpolation)
                 for image, window in zip(images, windows)]
        return self.refine_views(views, windows, queries)

    def refine_views(self, views: Sequence[np.ndarray], windows: Sequence[np.ndarray],
                     queries: Sequence[Query]) -> List[RefinerOutput]:
        """Refine views already cut and resized (by ``RefinerCrop`` or :meth:`refine`).

        Args:
            views (Sequence[np.ndarray]): refiner-frame images, each (rh, rw, 3) uint8 RGB.
            windows (Sequence[np.ndarray]): the (4,) ORIGINAL-pixel window each view shows.
            queries (Sequence[Query]): what each sample asks.

        Returns:
            list[RefinerOutput]: one per view, in ORIGINAL pixels (an all-zero box stays all
            zeros: the refiner's "no object").
        """
        prompts = [self.prompts.build(REFINER, q.question, q.question_type, q.options)
                   for q in queries]
        generation = self.vlm.generate(list(views), prompts)
        return [self._to_original(text, view, window)
                for text, view, window in zip(generation.texts, views, windows)]

    def _to_original(self, text: str, view: np.ndarray, window: np.ndarray) -> RefinerOutput:
        """Parse one completion and map its box and points from model coordinates to ORIGINAL."""
        parsed = parse_completion(text, REFINER)
        frame_size = (view.shape[1], view.shape[0])
        box = points = None
        if parsed.bbox is not None:
            box = np.asarray(parsed.bbox, np.float32)
            if np.any(box):
                box = frame_to_window(self.vlm.model_to_frame(box, frame_size), window, frame_size)
        if parsed.points is not None:
            points = frame_to_window(
                self.vlm.model_to_frame(np.asarray(parsed.points, np.float32), frame_size), window,
                frame_size)
        return RefinerOutput(box=box, points=points, answer=parsed.response, completion=text,
                             invalid=parsed.invalid)

    def predict(self, inputs: dict, data_samples: List[DetDataSample]) -> List[DetDataSample]:
        """Refine a batch on its own, on the crops the data pipeline cut (``RefinerCrop``).

        Args:
            inputs (dict): ``{'refiner': [(rh, rw, 3) arrays]}`` from the data preprocessor.
            data_samples (list[DetDataSample]): with the query and ``crop_window`` in metainfo.

        Returns:
            list[DetDataSample]: ``pred_instances`` with ``bboxes`` (1, 4) and ``points``
            (1, 2, 2) in ORIGINAL pixels (0 rows when invalid or absent); metainfo
            ``pred_answer``, ``refiner_completion``, ``invalid_reason``.
        """
        windows = [np.asarray(s.crop_window) for s in data_samples]
        outputs = self.refine_views(inputs['refiner'], windows,
                                    [Query.from_data_sample(s) for s in data_samples])
        for sample, output in zip(data_samples, outputs):
            found = output.box is not None and output.points is not None and not output.absent
            sample.pred_instances = make_pred_instances(
                [output.box] if found else [], points=[output.points] if found else [])
            sample.set_metainfo(dict(
                pred_answer=output.answer or '', refiner_completion=output.completion,
                invalid_reason=None if output.invalid is None else f'refiner:{output.invalid}'))
        return data_samples

    def forward(self, inputs: dict, data_samples: Optional[list] = None, mode: str = 'predict'):
        """mmengine's entry point; ``mode='predict'`` only until GRPO training lands."""
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise NotImplementedError(
            f"LocalRefiner.forward(mode={mode!r}): only 'predict' is implemented so far")
