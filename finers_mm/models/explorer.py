# Copyright (c) finers_mm contributors. All rights reserved.
"""GlobalExplorer: FineRS's global semantic exploration (GSE) stage."""
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmdet.structures import DetDataSample
from mmengine.model import BaseModel

from finers_mm.registry import MODELS
from finers_mm.structures import explorer_to_original
from .parsing import parse_completion
from .prompts import EXPLORER, PromptBuilder
from .stages import ExplorerOutput, Query, make_pred_instances


@MODELS.register_module()
class GlobalExplorer(BaseModel):
    """GSE: a VLM that reads the whole image, resized to the explorer frame, and answers a region.

    The region's frame is the explorer view's own size (set once, by ``ExplorerView`` in the data
    pipeline); the VLM adapter turns the model's coordinates into that frame's pixels and
    :func:`~finers_mm.structures.explorer_to_original` into ORIGINAL pixels.

    Args:
        vlm (dict): config of a VLM adapter (:mod:`finers_mm.models.vlm`).
        prompt (dict, optional): :class:`~finers_mm.models.prompts.PromptBuilder` arguments
            (``templates`` overrides); ``region_size`` is taken from this model's argument.
        region_size (int): side of the region in explorer-frame pixels, told to the model in the
            prompt (256 in the paper).
        data_preprocessor (dict): defaults to ``FineRSDataPreprocessor``.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, vlm: dict, prompt: Optional[dict] = None, region_size: int = 256,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor or dict(type='FineRSDataPreprocessor'),
                         init_cfg=init_cfg)
        self.vlm = MODELS.build(vlm)
        self.prompts = PromptBuilder(region_size=region_size, **(prompt or {}))

    def explore(self, views: Sequence[np.ndarray], image_sizes: Sequence[Tuple[int, int]],
                queries: Sequence[Query]) -> List[ExplorerOutput]:
        """Answer one region per image, all prompts in one batched generate.

        Args:
            views (Sequence[np.ndarray]): explorer-frame images, each (fh, fw, 3) uint8 RGB.
            image_sizes (Sequence[tuple[int, int]]): ``(W, H)`` of each ORIGINAL image.
            queries (Sequence[Query]): what each sample asks.

        Returns:
            list[ExplorerOutput]: one per view; regions in ORIGINAL pixels.
        """
        prompts = [self.prompts.build(EXPLORER, q.question, q.question_type, q.options)
                   for q in queries]
        generation = self.vlm.generate(list(views), prompts)
        outputs = []
        for text, view, image_size in zip(generation.texts, views, image_sizes):
            parsed = parse_completion(text, EXPLORER)
            region = None
            if parsed.bbox is not None:
                frame_size = (view.shape[1], view.shape[0])
                frame_box = self.vlm.model_to_frame(np.asarray(parsed.bbox), frame_size)
                region = explorer_to_original(frame_box, image_size, frame_size)
            outputs.append(ExplorerOutput(region=region, answer=parsed.response, completion=text,
                                          invalid=parsed.invalid))
        return outputs

    def predict(self, inputs: dict, data_samples: List[DetDataSample]) -> List[DetDataSample]:
        """Explore a batch on its own (without the refiner).

        Args:
            inputs (dict): ``{'explorer': [(fh, fw, 3) arrays]}`` from the data preprocessor.
            data_samples (list[DetDataSample]): with the query and ``ori_shape`` in metainfo.

        Returns:
            list[DetDataSample]: ``pred_instances`` with the region as ``bboxes`` (1, 4) in
            ORIGINAL pixels (0 rows when invalid); metainfo ``pred_answer``,
            ``explorer_completion``, ``invalid_reason``.
        """
        sizes = [(s.ori_shape[1], s.ori_shape[0]) for s in data_samples]
        outputs = self.explore(inputs['explorer'], sizes,
                               [Query.from_data_sample(s) for s in data_samples])
        for sample, output in zip(data_samples, outputs):
            boxes = [] if output.region is None else [output.region]
            sample.pred_instances = make_pred_instances(boxes)
            sample.set_metainfo(dict(
                pred_answer=output.answer or '', explorer_completion=output.completion,
                invalid_reason=None if output.invalid is None else f'explorer:{output.invalid}'))
        return data_samples

    def forward(self, inputs: dict, data_samples: Optional[list] = None, mode: str = 'predict'):
        """mmengine's entry point; ``mode='predict'`` only until GRPO training lands."""
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise NotImplementedError(
            f"GlobalExplorer.forward(mode={mode!r}): only 'predict' is implemented so far")

