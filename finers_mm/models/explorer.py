# Copyright (c) finers_mm contributors. All rights reserved.
"""GlobalExplorer: FineRS's global semantic exploration (GSE) stage."""
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmdet.structures import DetDataSample

from finers_mm.registry import MODELS
from finers_mm.structures import explorer_to_original, image_size
from finers_mm.structures.authors_prompts import TEST
from finers_mm.structures.parsing import parse_completion
from finers_mm.structures.vocabulary import EXPLORER
from .stages import ExplorerOutput, Query, make_pred_instances
from .vlm_stage import VLMStageModel

#: decodings of ``k > 1`` regions (``multi_region``)
MULTI_REGION_DECODING = ('beam', 'sample')


@MODELS.register_module()
class GlobalExplorer(VLMStageModel):
    """GSE: a VLM that reads the whole image, resized to the explorer frame, and answers a region.

    The region's frame is the explorer view's own size (set once, by ``ExplorerView`` in the data
    pipeline); the VLM adapter turns the model's coordinates into that frame's pixels and
    :func:`~finers_mm.structures.explorer_to_original` into ORIGINAL pixels. In training the region
    target is the record's searched ``best_region`` (the locate-informed retrospective target), or,
    without one, the ``region_size`` region centred on the GT box.

    Several regions per image (``explore(..., num_regions=k)``, the detector's multi-hypothesis
    inference): all prompts still go in ONE generate, with ``k`` completions per prompt, by beam
    search (``num_beams=k, num_return_sequences=k``, greedy otherwise: the k best beams) or by
    sampling (``do_sample=True, num_return_sequences=k`` at the ``vlm.generation`` temperature /
    top-p / top-k), as ``multi_region`` says. Each completion is then scored by its mean per-token
    log-prob (one extra forward, ``with_scores``) and a sample's k hypotheses are returned best
    score first. With ``k = 1`` nothing changes: one completion with the config's own decoding, no
    score.

    Args:
        vlm (dict): config of a VLM adapter (:mod:`finers_mm.models.vlm`).
        region_size (int): side of the region in explorer-frame pixels (256 in the paper; the
            dataset config's ``frames['region_size']``). The prompt states it in the model's
            coordinates of the view (:meth:`prompt_region`): 256*256 for Qwen2.5-VL (its pixels
            under a budget that shrinks the frame, e.g. 175*173 at 1280 merged tokens), 133*237
            on Qwen2-VL's / Qwen3-VL's 0..1000 scale in a 1920 x 1080 frame.
        prompt (dict, optional): :class:`~finers_mm.models.prompts.PromptBuilder` arguments other
            than ``region_size``.
        multi_region (str): how ``k > 1`` regions are decoded: ``'beam'`` (default) or
            ``'sample'``.
        **kwargs: :class:`~finers_mm.models.vlm_stage.VLMStageModel` arguments (``train_mode``,
            ``grpo_loss``, ``data_preprocessor``, ...).
    """

    stage = EXPLORER

    def __init__(self, vlm: dict, region_size: int = 256, prompt: Optional[dict] = None,
                 multi_region: str = 'beam', **kwargs) -> None:
        if multi_region not in MULTI_REGION_DECODING:
            raise ValueError(f'GlobalExplorer: `multi_region` must be one of '
                             f'{MULTI_REGION_DECODING}, got {multi_region!r}')
        super().__init__(vlm, prompt=dict(prompt or {}, region_size=region_size), **kwargs)
        self.multi_region = multi_region

    def views(self, inputs: dict, data_samples: Sequence[DetDataSample]) -> List[np.ndarray]:
        """The explorer views (``ExplorerView``)."""
        return list(inputs['explorer'])

    def prompt_region(self, frame_size: Tuple[int, int]) -> Tuple[int, int]:
        """``(width, height)`` of the region in the model's coordinates of a frame, as the prompt
        states it (:meth:`~finers_mm.models.vlm.BaseVLMAdapter.region_size_in_model`)."""
        return self.vlm.region_size_in_model(self.prompts.region_size, frame_size)

    def build_prompt(self, query: Query, frame_size: Optional[Tuple[int, int]] = None,
                     phase: str = TEST) -> str:
        """The explorer prompt of one query on a view of ``frame_size``, its region size in the
        model's coordinates (:meth:`prompt_region`); training and :meth:`explore` both build it
        here.

        Raises:
            ValueError: no ``frame_size`` (the region size in model units depends on it).
        """
        if frame_size is None:
            raise ValueError('GlobalExplorer.build_prompt needs the frame size of the view (the '
                             'region size in model units depends on it)')
        return self.prompts.build(EXPLORER, query.question, query.question_type,
                                  query.prompt_options, region=self.prompt_region(frame_size),
                                  coordinate_scale=self.vlm.relative_scale, phase=phase)

    def reward_sample(self, data_sample: DetDataSample, view: np.ndarray,
                      with_mask: bool = False):
        """GT in the explorer frame: the GT box and the retrospective target region, if searched."""
        region = data_sample.get('best_region_explorer', None)
        return self._reward_sample(
            data_sample, view, gt_box=np.asarray(data_sample.gt_bbox_explorer, np.float32),
            target_region=None if region is None else np.asarray(region, np.float32),
            region_size=self.prompts.region_size)

    def target_answer(self, data_sample: DetDataSample, view: np.ndarray) -> dict:
        """``{"bbox": region, "response": ...}``: the searched region, else the one around the GT."""
        region = data_sample.get('best_region_explorer', None)
        if region is None:
            region = data_sample.gt_region_explorer
        box = self.vlm.frame_to_model(np.asarray(region, np.float32), image_size(view))
        return dict(bbox=[int(round(v)) for v in box], response=self.target_response(data_sample))

    def explore(self, views: Sequence[np.ndarray], image_sizes: Sequence[Tuple[int, int]],
                queries: Sequence[Query], num_regions: int = 1) -> List[ExplorerOutput]:
        """Answer ``num_regions`` regions per image, all prompts in one batched generate.

        Args:
            views (Sequence[np.ndarray]): explorer-frame images, each (fh, fw, 3) uint8 RGB.
            image_sizes (Sequence[tuple[int, int]]): ``(W, H)`` of each ORIGINAL image.
            queries (Sequence[Query]): what each sample asks.
            num_regions (int): hypotheses per image, k (see the class docstring). Defaults to 1.

        Returns:
            list[ExplorerOutput]: ``len(views) * k``, sample-major, best score first within a
            sample (``score``: mean token log-prob, only when k > 1); regions in ORIGINAL pixels.
        """
        k = int(num_regions)
        if k < 1:
            raise ValueError(f'GlobalExplorer.explore: num_regions must be >= 1, got {num_regions}')
        if len(views) != len(queries):
            raise ValueError(f'GlobalExplorer.explore: {len(views)} views for {len(queries)} '
                             'queries')
        prompts = [self.build_prompt(query, image_size(view))
                   for query, view in zip(queries, views)]
        if k == 1:
            generation = self.vlm.generate(list(views), prompts)
        elif self.multi_region == 'beam':
            generation = self.vlm.generate(list(views), prompts, with_scores=True, do_sample=False,
                                           num_beams=k, num_return_sequences=k)
        else:
            generation = self.vlm.generate(list(views), prompts, with_scores=True, do_sample=True,
                                           num_return_sequences=k)
        scores = generation.mean_logprobs
        outputs = []
        for index, text in enumerate(generation.texts):
            sample = index // k
            parsed = parse_completion(text, EXPLORER, self.protocol, phase=TEST)
            region = None
            if parsed.bbox is not None:
                frame_size = image_size(views[sample])
                frame_box = self.vlm.model_to_frame(np.asarray(parsed.bbox), frame_size)
                region = explorer_to_original(frame_box, image_sizes[sample], frame_size)
            outputs.append(ExplorerOutput(
                region=region, answer=parsed.response, completion=text, invalid=parsed.invalid,
                score=None if scores is None else float(scores[index])))
        if k > 1 and scores is not None:  # best first; a stable sort keeps the beams' order on ties
            outputs = [out for i in range(len(views)) for out in sorted(
                outputs[i * k:(i + 1) * k], key=lambda out: _rank_key(out.score))]
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


def _rank_key(score: float) -> Tuple[bool, float]:
    """Sort key of a hypothesis score, best first; a NaN score (a broken forward pass) ranks last,
    after ``-inf`` (a NaN key would leave the order undefined)."""
    return (True, 0.0) if math.isnan(score) else (False, -score)
