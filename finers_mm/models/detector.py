# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRSDetector: explorer -> crop -> refiner -> mask head, as one mmdet detector."""
import logging
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
from mmdet.models.detectors import BaseDetector
from mmdet.structures import DetDataSample
from mmengine.logging import print_log

from finers_mm.registry import MODELS
from finers_mm.structures import crop_window_from_region, image_size, paste_crop_mask
from finers_mm.structures.protocols import DEFAULT_PROTOCOL, protocol_setting
from finers_mm.structures.vocabulary import EXPLORER, REFINER, STAGES
from .hypotheses import (adaptive_window, fallback_tiles, fuse_scores, parse_multi_hypothesis,
                         select_hypothesis)
from .stages import (ExplorerOutput, Query, RefinerOutput, accepts_keyword, explore_regions,
                     make_pred_instances)

#: the stages whose response may be the QA answer (``qa_stage``)
ANSWER_SOURCES = STAGES


@dataclass
class _Hypothesis:
    """One crop window of one sample, through the chain (internal to :class:`FineRSDetector`)."""
    sample: int
    source: str                                 # 'explorer' or 'tile'
    rank: int                                   # explorer rank (best 0) or tile index
    explored: ExplorerOutput                    # its explorer output (a tile: the sample's first)
    window: np.ndarray                          # the window of the kept refinement
    refined: Optional[RefinerOutput] = None
    first_window: Optional[np.ndarray] = None   # the window before the adaptive zoom, if zoomed
    mask: Optional[np.ndarray] = None           # full-size
    mask_score: Optional[float] = None
    score: Optional[float] = None               # fused

    @property
    def usable(self) -> bool:
        return self.refined is not None and self.refined.usable

    @property
    def absent(self) -> bool:
        return self.refined is not None and self.refined.absent

    def record(self) -> dict:
        """What ``pred_hypotheses`` keeps of it."""
        refined = self.refined
        return dict(
            source=self.source, rank=self.rank,
            region=self.explored.region if self.source == 'explorer' else None,
            window=self.window, first_window=self.first_window,
            box=None if refined is None else refined.box,
            answer=None if refined is None else refined.answer,
            explorer_answer=self.explored.answer,
            usable=self.usable, absent=self.absent, explorer_score=self.explored.score,
            refiner_score=None if refined is None else refined.score,
            mask_score=self.mask_score, score=self.score)


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

    **The QA answer** (``pred_answer``) is one stage's ``response``, chosen by ``qa_stage``:

    - ``'explorer'`` (the authors' evaluation, ``eval.sh --qa_stage stage1``): the response of the
      explorer output whose window became the prediction (the explorer's only one in the paper's
      chain); it is the answer even when the explorer gave no region (the authors' evaluation
      then counts it wrong: :class:`~finers_mm.evaluation.FineRSMetric`'s ``'authors'`` rule
      reads ``pred_region`` None);
    - ``'refiner'`` (finers_mm: it sees the object at full resolution): the kept refinement's
      response, or the explorer's when the refiner gave none (it did not run, or answered no
      text).

    Metainfo ``pred_answer_stage`` says which stage's response ``pred_answer`` is, so a metric
    can apply that stage's answer rule.

    **Multi-hypothesis inference** (``multi_hypothesis``, off by default: None runs the paper's
    single-region chain above unchanged). Still one call per stage per batch:

    1. ``num_regions = k``: the explorer answers k regions per sample in its one generate
       (``explore(..., num_regions=k)``; ``GlobalExplorer``: beam search or sampling, its
       ``multi_region``); each valid region gives a window as above, identical windows of a
       sample are kept once.
    2. ``tiled_fallback``: a sample whose explorer gave NO usable region is instead given the tiles
       of :func:`~finers_mm.structures.slice_windows` (``tile_size``, ``overlap_ratio``) over the
       whole original. Its ``invalid_reason`` still reports the explorer's failure; metainfo
       ``fallback`` is ``'tiled'``.
    3. every window (hypothesis) of the batch is refined in ONE refine call (with scores when the
       fusion needs them).
    4. ``adaptive_window``: every hypothesis whose refiner located an object is refined again, in
       ONE more call, on a square window sized to its box
       (:func:`~finers_mm.models.hypotheses.adaptive_window`: side ``clamp(context_factor *
       max(w, h), min_side, max_side)``, centred on the box, shifted into the image); the zoomed
       answer replaces the first one when it still locates an object.
    5. every hypothesis that located an object gets its mask in ONE mask-head call.
    6. each is scored by :func:`~finers_mm.models.hypotheses.fuse_scores` (``fusion``:
       ``'refiner'`` = exp(refiner mean token log-prob), ``'mask'`` = SAM's predicted IoU,
       ``'product'`` of both), and :func:`~finers_mm.models.hypotheses.select_hypothesis` keeps the
       best: one prediction per question, as FineRS predicts; "no object" and invalid hypotheses
       lose to any that located an object. Every hypothesis is recorded in metainfo
       ``pred_hypotheses``.

    Args:
        explorer (dict): config of the explorer (e.g. :class:`GlobalExplorer`).
        refiner (dict): config of the refiner (e.g. :class:`LocalRefiner`).
        mask_head (dict): config of the mask head (e.g. ``SAMMaskHead``).
        crop_min_side (int): smallest side of the crop window in ORIGINAL pixels (512 in the paper;
            the dataset config's ``frames['crop_min_side']``).
        answer_from (str, optional): the former name of ``qa_stage``, kept for older configs;
            giving both with different values is an error.
        multi_hypothesis (dict, optional): None (default: the paper's chain) or
            ``dict(num_regions=1, fusion='product', adaptive_window=None, tiled_fallback=None)``,
            with ``adaptive_window`` None or ``dict(context_factor=4.0, min_side=128,
            max_side=None)`` (None: ``crop_min_side``) and ``tiled_fallback`` None or
            ``dict(tile_size=512, overlap_ratio=0.2)`` (``{}`` turns either on with these
            defaults). Validated at build time (:func:`~finers_mm.models.hypotheses
            .parse_multi_hypothesis`); ``num_regions > 1`` needs an explorer whose ``explore``
            takes ``num_regions``.
        data_preprocessor (dict): defaults to ``FineRSDataPreprocessor``.
        init_cfg (dict, optional): mmengine init config.
        qa_stage (str, optional): whose ``response`` is the QA answer, ``'explorer'`` or
            ``'refiner'`` (see "The QA answer" above); None: the protocol's (``'authors'`` ->
            ``'explorer'``, ``'finers_mm'`` -> ``'refiner'``).
        protocol (str): ``'finers_mm'`` (default) or ``'authors'``
            (:mod:`finers_mm.structures.protocols`).
    """

    def __init__(self, explorer: dict, refiner: dict, mask_head: dict, crop_min_side: int = 512,
                 answer_from: Optional[str] = None, multi_hypothesis: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None, qa_stage: Optional[str] = None,
                 protocol: str = DEFAULT_PROTOCOL) -> None:
        qa_stage = resolve_qa_stage(qa_stage, answer_from, protocol)
        multi = parse_multi_hypothesis(multi_hypothesis, crop_min_side)
        super().__init__(data_preprocessor=data_preprocessor or dict(type='FineRSDataPreprocessor'),
                         init_cfg=init_cfg)
        self.explorer = MODELS.build(explorer)
        self.refiner = MODELS.build(refiner)
        self.mask_head = MODELS.build(mask_head)
        self.crop_min_side = int(crop_min_side)
        self.protocol = protocol
        self.qa_stage = qa_stage
        self.multi_hypothesis = multi
        if multi is not None and multi.num_regions > 1 and not accepts_keyword(
                self.explorer.explore, 'num_regions'):
            raise TypeError(
                f'model.multi_hypothesis.num_regions={multi.num_regions} needs an explorer whose '
                f"explore() takes num_regions; model.explorer.type '{explorer.get('type')}' does "
                'not (see finers_mm.models.stages)')

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
            ``pred_answer_stage`` (``'explorer'`` or ``'refiner'``: whose response
            ``pred_answer`` is), ``pred_region`` ((4,) ORIGINAL or None: the explorer gave no
            region), ``pred_window`` (the crop window, (4,) or None), ``explorer_completion``,
            ``refiner_completion``, ``invalid_reason``; with ``multi_hypothesis`` also
            ``pred_hypotheses`` (one dict per hypothesis: ``source``, ``rank``, ``region``,
            ``window``, ``first_window``, ``box``, ``answer`` (the refiner's),
            ``explorer_answer``, ``usable``, ``absent``, ``explorer_score``, ``refiner_score``,
            ``mask_score``, ``score``),
            ``pred_score`` (the kept one's fused score or None) and ``fallback`` (None or
            ``'tiled'``).
        """
        originals = batch_inputs['original']
        sizes = [image_size(image) for image in originals]
        queries = [Query.from_data_sample(sample) for sample in batch_data_samples]
        multi = self.multi_hypothesis
        k = 1 if multi is None else multi.num_regions

        explored = explore_regions(self.explorer, batch_inputs['explorer'], sizes, queries, k)
        hypotheses, fallback = self._hypotheses(explored, sizes, k)
        with_scores = multi is not None and multi.refiner_scores
        self._refine(hypotheses, originals, queries, with_scores)
        if multi is not None and multi.adaptive_window is not None:
            self._zoom(hypotheses, originals, sizes, queries, with_scores)
        self._masks(originals, [h for h in hypotheses if h.usable])
        if multi is not None:
            for h in hypotheses:
                if h.usable:
                    h.score = fuse_scores(h.refined.score, h.mask_score, multi.fusion)

        for i, sample in enumerate(batch_data_samples):
            height, width = originals[i].shape[:2]
            own = [h for h in hypotheses if h.sample == i]
            best = own[select_hypothesis([h.usable for h in own], [h.absent for h in own],
                                         [h.score for h in own])] if own else None
            if best is not None and best.usable:
                sample.pred_instances = make_pred_instances(
                    [best.refined.box], scores=[best.mask_score], points=[best.refined.points],
                    masks=best.mask[None])
            else:
                sample.pred_instances = make_pred_instances(
                    [], points=[], masks=np.zeros((0, height, width), bool))
            if best is None:
                meta = self._meta(explored[i * k], None, None)
            else:
                meta = self._meta(best.explored, best.refined, best.window)
                if best.source == 'tile':  # no region; no window unless a tile located it
                    meta['pred_region'] = None
                    if not best.usable:
                        meta['pred_window'] = None
            if multi is not None:
                meta.update(pred_hypotheses=[h.record() for h in own],
                            pred_score=None if best is None else best.score,
                            fallback='tiled' if i in fallback else None)
            sample.set_metainfo(meta)
        return batch_data_samples

    def _hypotheses(self, explored: List[ExplorerOutput], sizes, k: int):
        """The windows to refine: per sample one per distinct window of its valid regions, or,
        with the tiled fallback and no valid region, its tiles. Also the fallback samples."""
        multi = self.multi_hypothesis
        hypotheses, fallback = [], set()
        for i, size in enumerate(sizes):
            own = []
            for rank, out in enumerate(explored[i * k:(i + 1) * k]):
                if out.region is None:
                    continue
                window = crop_window_from_region(out.region, size, self.crop_min_side)
                if not any(np.array_equal(window, h.window) for h in own):
                    own.append(_Hypothesis(sample=i, source='explorer', rank=rank, explored=out,
                                           window=window))
            if not own and multi is not None and multi.tiled_fallback is not None:
                fallback.add(i)
                own = [_Hypothesis(sample=i, source='tile', rank=t, explored=explored[i * k],
                                   window=window)
                       for t, window in enumerate(fallback_tiles(size, multi.tiled_fallback))]
            hypotheses.extend(own)
        return hypotheses, fallback

    def _call_refine(self, images, windows, queries, with_scores: bool) -> List[RefinerOutput]:
        """One refine call; ``with_scores`` only to a refiner that takes it (stages.py)."""
        if with_scores and accepts_keyword(self.refiner.refine, 'with_scores'):
            return self.refiner.refine(images, windows, queries, with_scores=True)
        return self.refiner.refine(images, windows, queries)

    def _refine(self, hypotheses, originals, queries, with_scores: bool) -> None:
        """Refine every hypothesis of the batch in one call."""
        if not hypotheses:
            return
        outputs = self._call_refine([originals[h.sample] for h in hypotheses],
                                    [h.window for h in hypotheses],
                                    [queries[h.sample] for h in hypotheses], with_scores)
        for h, output in zip(hypotheses, outputs):
            h.refined = output

    def _zoom(self, hypotheses, originals, sizes, queries, with_scores: bool) -> None:
        """The adaptive window: refine every located hypothesis again, in one call, on a window
        sized to its box; keep the zoomed answer when it still locates an object."""
        cfg = self.multi_hypothesis.adaptive_window
        zoom, windows = [], []
        for h in hypotheses:
            if not h.usable:
                continue
            window = adaptive_window(h.refined.box, sizes[h.sample], cfg['context_factor'],
                                     cfg['min_side'], cfg['max_side'])
            if not np.array_equal(window, h.window):
                zoom.append(h)
                windows.append(window)
        if not zoom:
            return
        outputs = self._call_refine([originals[h.sample] for h in zoom], windows,
                                    [queries[h.sample] for h in zoom], with_scores)
        for h, window, output in zip(zoom, windows, outputs):
            if output.usable:
                h.first_window, h.window, h.refined = h.window, window, output

    def _masks(self, originals, hypotheses) -> None:
        """Full-size masks and scores of the given hypotheses, one mask-head call."""
        if not hypotheses:
            return
        crops, boxes, points = [], [], []
        for h in hypotheses:
            x1, y1, x2, y2 = (int(v) for v in h.window)
            crops.append(originals[h.sample][y1:y2, x1:x2])
            offset = np.array([x1, y1], np.float32)
            boxes.append(h.refined.box - np.tile(offset, 2))
            points.append(h.refined.points - offset)
        prediction = self.mask_head.predict(crops, np.stack(boxes), np.stack(points))
        for h, crop_mask, score in zip(hypotheses, prediction.masks, prediction.scores):
            height, width = originals[h.sample].shape[:2]
            h.mask = paste_crop_mask(crop_mask, h.window, (width, height))
            h.mask_score = float(score)

    @property
    def answer_from(self) -> str:
        """The former name of :attr:`qa_stage`."""
        return self.qa_stage

    def _meta(self, explored: ExplorerOutput, refined: Optional[RefinerOutput],
              window: Optional[np.ndarray]) -> dict:
        """Text outputs, the QA answer and its stage, the region and window, and the first
        stage's invalid reason."""
        answer, answer_stage = qa_answer(self.qa_stage, explored, refined)
        if explored.invalid is not None:
            invalid = f'explorer:{explored.invalid}'
        elif refined is not None and refined.invalid is not None:
            invalid = f'refiner:{refined.invalid}'
        else:
            invalid = None
        return dict(
            pred_answer=answer or '',
            pred_answer_stage=answer_stage,
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


def resolve_qa_stage(qa_stage: Optional[str], answer_from: Optional[str], protocol: str) -> str:
    """The stage whose response is the QA answer: an explicit value, else the protocol's.

    Args:
        qa_stage (str, optional): ``'explorer'``, ``'refiner'`` or None.
        answer_from (str, optional): its former name; None or the same value as ``qa_stage``.
        protocol (str): ``'authors'`` or ``'finers_mm'``.

    Returns:
        str: ``'explorer'`` or ``'refiner'``.

    Raises:
        ValueError: an unknown protocol or stage, or ``qa_stage`` and ``answer_from`` disagreeing.
    """
    default = protocol_setting(protocol, 'qa_stage')
    if qa_stage is not None and answer_from is not None and qa_stage != answer_from:
        raise ValueError(f'FineRSDetector: qa_stage={qa_stage!r} and its former name '
                         f'answer_from={answer_from!r} disagree; give qa_stage only')
    stage = qa_stage if qa_stage is not None else answer_from
    if stage is None:
        return default
    if stage not in ANSWER_SOURCES:
        raise ValueError(
            f'FineRSDetector: qa_stage must be one of {ANSWER_SOURCES}, got {stage!r}')
    if stage != default:
        # an explicit value beats the protocol; said once, as a config written before protocols
        # existed may carry one without meaning to (answer_from='refiner')
        print_log(f'FineRSDetector: qa_stage={stage!r} overrides the qa_stage {default!r} of '
                  f'protocol {protocol!r}', logger='current', level=logging.WARNING)
    return stage


def qa_answer(qa_stage: str, explored: ExplorerOutput,
              refined: Optional[RefinerOutput]) -> Tuple[Optional[str], str]:
    """The QA answer of one prediction and the stage it comes from.

    Args:
        qa_stage (str): ``'explorer'`` or ``'refiner'``.
        explored (ExplorerOutput): the explorer output of the kept hypothesis.
        refined (RefinerOutput, optional): its refinement; None when the refiner did not run.

    Returns:
        tuple[str | None, str]: the response and its stage: the explorer's for ``'explorer'``;
        for ``'refiner'`` the refiner's when it gave a non-empty one, else the explorer's.
    """
    if qa_stage == REFINER and refined is not None and refined.answer:
        return refined.answer, REFINER
    return explored.answer, EXPLORER
