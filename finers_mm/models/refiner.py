# Copyright (c) finers_mm contributors. All rights reserved.
"""LocalRefiner: FineRS's localized perceptual refinement (LPR) stage."""
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmdet.structures import DetDataSample

from finers_mm.registry import MODELS
from finers_mm.structures import clip_boxes, crop_to_frame, frame_to_window, image_size
from finers_mm.structures.answers import ABSENT_RESPONSE
from finers_mm.structures.authors_prompts import TEST
from finers_mm.structures.images import resolve_resize
from finers_mm.structures.parsing import parse_completion
from finers_mm.structures.vocabulary import REFINER
from .stages import Query, RefinerOutput, make_pred_instances
from .vlm_stage import VLMStageModel


@MODELS.register_module()
class LocalRefiner(VLMStageModel):
    """LPR: a VLM that reads a crop of the ORIGINAL image, resized to the refiner frame, and
    answers a box, two points inside the object and the answer.

    The box is clipped to the crop it saw (:func:`~finers_mm.structures.clip_boxes` in the refiner
    frame), so a predicted box always lies inside its crop window and the image; a box with nothing
    left inside the crop is no box (``invalid`` ``'bbox_outside_frame'``), not the all-zero
    "No object found", which only an all-zero answer means. The points are mapped as written (the
    parser bounds every coordinate, so they are finite); a point outside the crop is the mask
    head's to ignore.

    Args:
        vlm (dict): config of a VLM adapter (:mod:`finers_mm.models.vlm`).
        frame_size (tuple[int, int]): ``(rw, rh)`` the crop is resized to when this model cuts it
            (:meth:`refine`); training crops are cut by ``RefinerCrop`` with the same value from
            the dataset config's ``frames``.
        interpolation (str): mmcv interpolation name of the crop resize (``'cv2_linear'``).
        resize (str, optional): how :meth:`refine` resizes a crop
            (:func:`~finers_mm.structures.images.resize_to_frame`: ``'cv2_linear'`` or
            ``'pil_bilinear'``, the authors' evaluation); None: the protocol's. Checked when the
            model is built (:func:`~finers_mm.structures.images.resolve_resize`).
        **kwargs: :class:`~finers_mm.models.vlm_stage.VLMStageModel` arguments (``prompt``,
            ``train_mode``, ``grpo_loss``, ``data_preprocessor``, ...).
    """

    stage = REFINER

    def __init__(self, vlm: dict, frame_size: Tuple[int, int] = (512, 512),
                 interpolation: str = 'bilinear', resize: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(vlm, **kwargs)
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.interpolation = interpolation
        self.resize = resolve_resize(resize, self.protocol, interpolation)

    def views(self, inputs: dict, data_samples: Sequence[DetDataSample]) -> List[np.ndarray]:
        """The refiner crops (``RefinerCrop``)."""
        return list(inputs['refiner'])

    def reward_sample(self, data_sample: DetDataSample, view: np.ndarray,
                      with_mask: bool = False):
        """GT in the refiner frame: box (all zeros when outside the crop), points, and optionally
        the view and the GT mask cut and resized like the view."""
        image = gt_mask = None
        if with_mask:
            full_mask = data_sample.gt_instances.masks.to_ndarray()[0].astype(np.uint8)
            gt_mask = crop_to_frame(full_mask, data_sample.crop_window, image_size(view),
                                    interpolation='nearest').astype(bool)
            image = view
        points = data_sample.get('gt_points_refiner', None)
        return self._reward_sample(
            data_sample, view, gt_box=np.asarray(data_sample.gt_bbox_refiner, np.float32),
            gt_points=None if points is None else np.asarray(points, np.float32),
            image=image, gt_mask=gt_mask)

    def target_answer(self, data_sample: DetDataSample, view: np.ndarray) -> dict:
        """``{"bbox", "points_1", "points_2", "response"}`` in model coordinates; the all-zero
        "No object found" answer when the target is outside the crop."""
        frame = image_size(view)
        box = np.asarray(data_sample.gt_bbox_refiner, np.float32)
        if not np.any(box):
            return dict(bbox=[0, 0, 0, 0], points_1=[0, 0], points_2=[0, 0],
                        response=ABSENT_RESPONSE)
        box = self.vlm.frame_to_model(box, frame)
        points = self.vlm.frame_to_model(np.asarray(data_sample.gt_points_refiner, np.float32),
                                         frame)
        return dict(bbox=[int(round(v)) for v in box],
                    points_1=[int(round(v)) for v in points[0]],
                    points_2=[int(round(v)) for v in points[1]],
                    response=self.target_response(data_sample))

    def refine(self, images: Sequence[np.ndarray], windows: Sequence[np.ndarray],
               queries: Sequence[Query], with_scores: bool = False) -> List[RefinerOutput]:
        """Cut each window out of its original, resize it to the refiner frame and refine it.

        Args:
            images (Sequence[np.ndarray]): ORIGINAL images, each (H, W, 3) uint8 RGB.
            windows (Sequence[np.ndarray]): (4,) integer crop windows, ORIGINAL pixels.
            queries (Sequence[Query]): what each sample asks.
            with_scores (bool): fill each output's ``score`` with the completion's mean per-token
                log-prob (one extra forward pass). Defaults to False.

        Returns:
            list[RefinerOutput]: boxes and points in ORIGINAL pixels.
        """
        views = [crop_to_frame(image, window, self.frame_size, self.interpolation, self.resize)
                 for image, window in zip(images, windows)]
        return self.refine_views(views, windows, queries, with_scores=with_scores)

    def refine_views(self, views: Sequence[np.ndarray], windows: Sequence[np.ndarray],
                     queries: Sequence[Query], with_scores: bool = False) -> List[RefinerOutput]:
        """Refine views already cut and resized (by ``RefinerCrop`` or :meth:`refine`).

        Args:
            views (Sequence[np.ndarray]): refiner-frame images, each (rh, rw, 3) uint8 RGB.
            windows (Sequence[np.ndarray]): the (4,) ORIGINAL-pixel window each view shows.
            queries (Sequence[Query]): what each sample asks.
            with_scores (bool): see :meth:`refine`.

        Returns:
            list[RefinerOutput]: one per view, in ORIGINAL pixels, boxes inside their window (an
            all-zero box stays all zeros: the refiner's "no object").
        """
        prompts = [self.build_prompt(q, image_size(view))
                   for q, view in zip(queries, views)]
        if with_scores:
            generation = self.vlm.generate(list(views), prompts, with_scores=True)
        else:
            generation = self.vlm.generate(list(views), prompts)
        scores = generation.mean_logprobs
        return [self._to_original(text, view, window,
                                  None if scores is None else float(scores[i]))
                for i, (text, view, window) in enumerate(zip(generation.texts, views, windows))]

    def _to_original(self, text: str, view: np.ndarray, window: np.ndarray,
                     score: Optional[float] = None) -> RefinerOutput:
        """Parse one completion and map its box (clipped to the crop) and points from model
        coordinates to ORIGINAL."""
        parsed = parse_completion(text, REFINER, self.protocol, phase=TEST)
        frame_size = image_size(view)
        box = points = None
        invalid = parsed.invalid
        if parsed.bbox is not None:
            box = np.asarray(parsed.bbox, np.float32)
            if np.any(box):
                frame_box = clip_boxes(self.vlm.model_to_frame(box, frame_size), frame_size)
                if np.any(frame_box):
                    box = frame_to_window(frame_box, window, frame_size)
                else:  # the box is the first key: its problem comes before the parser's others
                    box, invalid = None, 'bbox_outside_frame'
        if parsed.points is not None:
            points = frame_to_window(
                self.vlm.model_to_frame(np.asarray(parsed.points, np.float32), frame_size), window,
                frame_size)
        return RefinerOutput(box=box, points=points, answer=parsed.response, completion=text,
                             invalid=invalid, score=score)

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
            found = output.usable
            sample.pred_instances = make_pred_instances(
                [output.box] if found else [], points=[output.points] if found else [])
            sample.set_metainfo(dict(
                pred_answer=output.answer or '', refiner_completion=output.completion,
                invalid_reason=None if output.invalid is None else f'refiner:{output.invalid}'))
        return data_samples
