# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRSDetector: explorer -> crop -> refiner -> mask head, as one mmdet detector."""
from typing import List, Optional, Tuple

import numpy as np
from mmdet.models.detectors import BaseDetector
from mmdet.structures import DetDataSample

from finers_mm.registry import MODELS
from finers_mm.structures import crop_window_from_region, paste_crop_mask
from .stages import ExplorerOutput, Query, RefinerOutput, make_pred_instances

ANSWER_SOURCES = ('refiner', 'explorer')


@MODELS.register_module()
class FineRSDetector(BaseDetector):
    """The FineRS chain for inference, batched per stage.

    For a batch: all explorer prompts in one generate; a crop window around each valid region
    (square, side ``max(crop_min_side, region side)``, shifted into the image); all refiner prompts
    in one generate; all masks in one mask-head call; each crop mask pasted into a full-size mask.
    The stages are config-swappable sub-modules with the interfaces of
    :mod:`finers_mm.models.stages`. Train the explorer and refiner on their own (GRPO configs); this
    class only predicts.

    A sample whose stage output is unusable (no parsable box, or the refiner's "no object") gets
    an empty prediction (0 instances) and, when the parser flagged it, an ``invalid_reason`` such as
    ``'explorer:no_json'``; it never raises.

    Args:
        explorer (dict): config of the explorer (e.g. :class:`GlobalExplorer`).
        refiner (dict): config of the refiner (e.g. :class:`LocalRefiner`).
        mask_head (dict): config of the mask head (e.g. ``SAMMaskHead``).
        crop_min_side (int): smallest side of the crop window in ORIGINAL pixels (512 in the paper;
            the dataset config's ``frames['crop_min_side']``).
        answer_from (str): whose ``response`` is the final answer: ``'refiner'`` (default; it
            sees the object at full resolution) falling back to the explorer's when the refiner gave
            none, or ``'explorer'``.
        data_preprocessor (dict): defaults to ``FineRSDataPreprocessor``.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, explorer: dict, refiner: dict, mask_head: dict, crop_min_side: int = 512,
                 answer_from: str = 'refiner', data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if answer_from not in ANSWER_SOURCES:
            raise ValueError(f'answer_from must be one of {ANSWER_SOURCES}, got {answer_from!r}')
        super().__init__(data_preprocessor=data_preprocessor or dict(type='FineRSDataPreprocessor'),
                         init_cfg=init_cfg)
        self.explorer = MODELS.build(explorer)
        self.refiner = MODELS.build(refiner)
        self.mask_head = MODELS.build(mask_head)
        self.crop_min_side = int(crop_min_side)
        self.answer_from = answer_from

    def predict(self, batch_inputs: dict, batch_data_samples: List[DetDataSample],
                rescale: bool = True) -> List[DetDataSample]:
        """Run the chain on a batch.

        Args:
            batch_inputs (dict): ``{'explorer': [(fh, fw, 3)], 'original': [(H, W, 3)]}`` uint8
                RGB arrays from the data preprocessor (``PackFineRSInputs(views=('explorer',
                'original'))``).
            batch_data_samples (list[DetDataSample]): with the query in metainfo.
            rescale (bool): unused; predictions are always in ORIGINAL pixels.

        Returns:
            list[DetDataSample]: ``pred_instances`` (``bboxes`` (K, 4), ``scores`` (K,) from the
            mask head, ``labels``, ``masks`` (K, H, W) bool full size, ``points`` (K, 2, 2); all in
            ORIGINAL pixels; K is 1, or 0 for an empty prediction) and metainfo ``pred_answer``,
            ``pred_region`` ((4,) ORIGINAL or None), ``pred_window`` (the crop window, (4,) or None),
            ``explorer_completion``, ``refiner_completion``, ``invalid_reason``.
        """
        originals = batch_inputs['original']
        sizes = [(image.shape[1], image.shape[0]) for image in originals]
        queries = [Query.from_data_sample(sample) for sample in batch_data_samples]

        explored = self.explorer.explore(batch_inputs['explorer'], sizes, queries)
        to_refine = [i for i, out in enumerate(explored) if out.region is not None]
        windows = {i: crop_window_from_region(explored[i].region, sizes[i], self.crop_min_side)
                   for i in to_refine}
        refined = {}
        if to_refine:
            refined = dict(zip(to_refine, self.refiner.refine(
                [originals[i] for i in to_refine], [windows[i] for i in to_refine],
                [queries[i] for i in to_refine])))

        to_mask = [i for i, out in refined.items()
                   if out.box is not None and out.points is not None and not out.absent]
        masks, scores = self._masks(originals, windows, refined, to_mask)

        for i, sample in enumerate(batch_data_samples):
            height, width = originals[i].shape[:2]
            refiner_out = refined.get(i)
            if i in masks:
                sample.pred_instances = make_pred_instances(
                    [refiner_out.box], scores=[scores[i]], points=[refiner_out.points],
                    masks=masks[i][None])
            else:
                sample.pred_instances = make_pred_instances(
                    [], points=[], masks=np.zeros((0, height, width), bool))
            sample.set_metainfo(self._meta(explored[i], refiner_out, windows.get(i)))
        return batch_data_samples

    def _masks(self, originals, windows, refined, to_mask) -> Tuple[dict, dict]:
        """Full-size masks and scores of the samples in ``to_mask``, one mask-head call."""
        if not to_mask:
            return {}, {}
        crops, boxes, points = [], [], []
        for i in to_mask:
            x1, y1, x2, y2 = (int(v) for v in windows[i])
            crops.append(originals[i][y1:y2, x1:x2])
            offset = np.array([x1, y1], np.float32)
            boxes.append(refined[i].box - np.tile(offset, 2))
            points.append(refined[i].points - offset)
        prediction = self.mask_head.predict(crops, np.stack(boxes), np.stack(points))
        masks, scores = {}, {}
        for i, crop_mask, score in zip(to_mask, prediction.masks, prediction.scores):
            height, width = originals[i].shape[:2]
            masks[i] = paste_crop_mask(crop_mask, windows[i], (width, height))
            scores[i] = float(score)
        return masks, scores

    def _meta(self, explored: ExplorerOutput, refined: Optional[RefinerOutput],
              window: Optional[np.ndarray]) -> dict:
        """Text outputs, the region and window, and the first stage's invalid reason."""
        answer = explored.answer
        if self.answer_from == 'refiner' and refined is not None and refined.answer:
            answer = refined.answer
        if explored.invalid is not None:
            invalid = f'explorer:{explored.invalid}'
        elif refined is not None and refined.invalid is not None:
            invalid = f'refiner:{refined.invalid}'
        else:
            invalid = None
        return dict(
            pred_answer=answer or '',
            pred_region=explored.region,
            pred_window=window,
            explorer_completion=explored.completion,
            refiner_completion=None if refined is None else refined.completion,
            invalid_reason=invalid)

    def loss(self, batch_inputs, batch_data_samples):
        """Not trained as a whole: train ``GlobalExplorer`` / ``LocalRefiner`` with their configs."""
        raise NotImplementedError(
            'FineRSDetector only predicts; train its explorer and refiner with their own configs')

    def _forward(self, batch_inputs, batch_data_samples=None):
        """No raw tensor output: the chain's outputs are text, boxes and masks (use predict)."""
        raise NotImplementedError("FineRSDetector has no 'tensor' mode; use mode='predict'")

    def extract_feat(self, batch_inputs):
        """No shared feature map: each stage reads its own view."""
        raise NotImplementedError('FineRSDetector has no shared features; use mode="predict"')
