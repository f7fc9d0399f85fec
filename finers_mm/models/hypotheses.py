# Copyright (c) finers_mm contributors. All rights reserved.
"""Multi-hypothesis inference of :class:`~finers_mm.models.FineRSDetector`: its config, the score
fusion, the choice of the best hypothesis and the adaptive window (pure functions).

A **hypothesis** of a sample is one crop window the refiner reads: the window around one of the
explorer's top-k regions, or, in the tiled fallback, one tile of the image. Each is refined, masked,
and scored by :func:`fuse_scores`; :func:`select_hypothesis` picks the prediction.
"""
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from finers_mm.structures import Size, crop_window_from_region, slice_windows

#: score fusion rules of :func:`fuse_scores`
FUSION_MODES = ('refiner', 'mask', 'product')
#: the fusion rules that need the refiner's score (``refine(..., with_scores=True)``)
REFINER_SCORED_FUSIONS = ('refiner', 'product')

#: keys of ``multi_hypothesis`` and their defaults
MULTI_HYPOTHESIS_DEFAULTS = dict(num_regions=1, fusion='product', adaptive_window=None,
                                 tiled_fallback=None)
#: keys of ``multi_hypothesis.adaptive_window`` and their defaults (``max_side`` None: the
#: detector's ``crop_min_side``, so the adaptive window only ever zooms in)
ADAPTIVE_WINDOW_DEFAULTS = dict(context_factor=4.0, min_side=128, max_side=None)
#: keys of ``multi_hypothesis.tiled_fallback`` and their defaults
TILED_FALLBACK_DEFAULTS = dict(tile_size=512, overlap_ratio=0.2)


def fuse_scores(refiner_logprob: Optional[float], mask_iou: Optional[float], mode: str) -> float:
    """The fused score of one hypothesis that located an object (higher is better).

    - ``'refiner'``: ``exp(refiner_logprob)``, the geometric mean of the refiner's per-token
      probabilities of its answer (in ``(0, 1]``);
    - ``'mask'``: the mask head's predicted IoU (SAM's mask-quality score), clipped at 0;
    - ``'product'``: ``exp(refiner_logprob) * mask_iou``: the refiner is sure of its answer AND the
      mask head finds a clean mask for its prompt.

    A missing term (None: the component does not compute it) counts as 1, so it does not change the
    ranking of the hypotheses of one sample (they all come from the same components). A broken
    term (a NaN log-prob, a NaN or infinite mask score: a broken forward pass) counts as 0, so
    such a hypothesis never wins on score; a log-prob above 0 (no probability has one) counts as
    0, i.e. probability 1. The fused score is always finite.

    Args:
        refiner_logprob (float, optional): ``RefinerOutput.score`` (log-scale, <= 0 for a VLM).
        mask_iou (float, optional): ``MaskPrediction.scores[i]``.
        mode (str): one of :data:`FUSION_MODES`.

    Returns:
        float: the fused score, >= 0.
    """
    if mode not in FUSION_MODES:
        raise ValueError(f'fusion must be one of {FUSION_MODES}, got {mode!r}')
    refiner = 1.0 if refiner_logprob is None else _probability(float(refiner_logprob))
    mask = 1.0 if mask_iou is None else float(mask_iou)
    mask = max(0.0, mask) if math.isfinite(mask) else 0.0
    if mode == 'refiner':
        return refiner
    if mode == 'mask':
        return mask
    return refiner * mask


def _probability(logprob: float) -> float:
    """``exp(logprob)`` in ``[0, 1]``: NaN gives 0, a log-prob above 0 gives 1 (never overflows)."""
    return 0.0 if math.isnan(logprob) else math.exp(min(logprob, 0.0))


def select_hypothesis(usable: Sequence[bool], absent: Sequence[bool],
                      scores: Sequence[Optional[float]]) -> int:
    """Index of the hypothesis that becomes the prediction.

    Rule: the usable hypothesis (box + points, not "no object") of highest fused score, the earliest
    on ties (the explorer's order: best first); with none usable, the first "no object" answer (the
    sample's answer is then "absent"); else the first hypothesis. So an absent or invalid hypothesis
    never beats a usable one, whatever its score.

    Args:
        usable (Sequence[bool]): per hypothesis, whether the refiner located an object.
        absent (Sequence[bool]): per hypothesis, whether the refiner answered "no object".
        scores (Sequence[float | None]): fused scores (read only where usable).

    Returns:
        int: the chosen index (0 for an empty sequence is an error).
    """
    if not len(usable):
        raise ValueError('select_hypothesis needs at least one hypothesis')
    best = None
    for i, ok in enumerate(usable):
        if ok and (best is None or scores[i] > scores[best]):
            best = i
    if best is not None:
        return best
    for i, is_absent in enumerate(absent):
        if is_absent:
            return i
    return 0


def adaptive_window(box, image_size: Size, context_factor: float, min_side: int,
                    max_side: int) -> np.ndarray:
    """A square window sized to a predicted object, for a second, magnified refinement.

    Rule: side ``s = clamp(ceil(context_factor * max(box w, box h)), min_side, max_side)``, centred
    on the box and SHIFTED into the image (:func:`~finers_mm.structures.crop_window_from_region`
    with ``min_side = s``); it never cuts the box (a box larger than ``s`` gets a window of the
    box's extent) and shrinks only where the image is smaller than ``s``. Resized to the refiner
    frame, the object is magnified ``frame side / s`` times (e.g. a 16 px object with the
    defaults 4.0 / 128 / 512: ``s = 128``, 4x in a 512 px frame, instead of 1x in the paper's
    512 px window).

    Args:
        box: (4,) the refiner's box, ORIGINAL pixels.
        image_size (tuple[int, int]): ``(W, H)`` of the original.
        context_factor (float): window side per object side (>= 1: context around the object).
        min_side (int): smallest side, ORIGINAL pixels.
        max_side (int): largest side (unless the box itself is larger), ORIGINAL pixels.

    Returns:
        np.ndarray: (4,) int64 window ``[x1, y1, x2, y2]`` inside the image.
    """
    box = np.asarray(box, np.float64)
    extent = max(box[2] - box[0], box[3] - box[1], 0.0)
    side = int(min(max(math.ceil(context_factor * extent), int(min_side)), int(max_side)))
    return crop_window_from_region(box, image_size, side)


@dataclass(frozen=True)
class MultiHypothesisConfig:
    """The validated ``multi_hypothesis`` of :class:`~finers_mm.models.FineRSDetector`.

    Attributes:
        num_regions (int): explorer hypotheses per sample, k >= 1.
        fusion (str): one of :data:`FUSION_MODES`.
        adaptive_window (dict | None): ``context_factor``, ``min_side``, ``max_side`` (resolved).
        tiled_fallback (dict | None): ``tile_size``, ``overlap_ratio``.
    """
    num_regions: int
    fusion: str
    adaptive_window: Optional[dict]
    tiled_fallback: Optional[dict]

    @property
    def refiner_scores(self) -> bool:
        """Whether the fusion needs the refiner's score."""
        return self.fusion in REFINER_SCORED_FUSIONS


def _check_keys(cfg, defaults: dict, cfg_key: str) -> dict:
    if not isinstance(cfg, dict):
        raise TypeError(f'{cfg_key} must be a dict or None, got {type(cfg).__name__}')
    unknown = sorted(set(cfg) - set(defaults))
    if unknown:
        raise KeyError(f'{cfg_key}: unknown key(s) {unknown}; expected some of {sorted(defaults)}')
    return dict(defaults, **cfg)


def _number(value, cfg_key: str, kind=float, low=None, high=None, high_open=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            kind is int and float(value) != int(value)):
        raise TypeError(f'{cfg_key} must be {"an integer" if kind is int else "a number"}, '
                        f'got {value!r}')
    value = kind(value)
    if (low is not None and value < low) or (high is not None and (
            value >= high if high_open else value > high)):
        bound = f'>= {low}' if high is None else f'in [{low}, {high}{")" if high_open else "]"}'
        raise ValueError(f'{cfg_key} must be {bound}, got {value}')
    return value


def parse_multi_hypothesis(cfg: Optional[dict], crop_min_side: int,
                           cfg_key: str = 'model.multi_hypothesis'
                           ) -> Optional[MultiHypothesisConfig]:
    """Validate the detector's ``multi_hypothesis`` config; errors name the offending key.

    Args:
        cfg (dict, optional): None (the paper's single-region chain) or a dict with keys of
            :data:`MULTI_HYPOTHESIS_DEFAULTS`; ``adaptive_window`` / ``tiled_fallback`` None (off),
            a dict (keys of :data:`ADAPTIVE_WINDOW_DEFAULTS` / :data:`TILED_FALLBACK_DEFAULTS`)
            or ``{}`` (on with the defaults).
        crop_min_side (int): the detector's, the default ``adaptive_window.max_side``.
        cfg_key (str): the config path used in error messages.

    Returns:
        MultiHypothesisConfig | None
    """
    if cfg is None:
        return None
    cfg = _check_keys(cfg, MULTI_HYPOTHESIS_DEFAULTS, cfg_key)
    num_regions = _number(cfg['num_regions'], f'{cfg_key}.num_regions', int, low=1)
    if cfg['fusion'] not in FUSION_MODES:
        raise ValueError(f'{cfg_key}.fusion must be one of {FUSION_MODES}, got {cfg["fusion"]!r}')
    adaptive = None
    if cfg['adaptive_window'] is not None:
        key = f'{cfg_key}.adaptive_window'
        adaptive = _check_keys(cfg['adaptive_window'], ADAPTIVE_WINDOW_DEFAULTS, key)
        if adaptive['max_side'] is None:
            adaptive['max_side'] = int(crop_min_side)
        adaptive['context_factor'] = _number(adaptive['context_factor'], f'{key}.context_factor',
                                             float, low=1.0)
        adaptive['min_side'] = _number(adaptive['min_side'], f'{key}.min_side', int, low=1)
        adaptive['max_side'] = _number(adaptive['max_side'], f'{key}.max_side', int,
                                       low=adaptive['min_side'])
    tiled = None
    if cfg['tiled_fallback'] is not None:
        key = f'{cfg_key}.tiled_fallback'
        tiled = _check_keys(cfg['tiled_fallback'], TILED_FALLBACK_DEFAULTS, key)
        tiled['tile_size'] = _number(tiled['tile_size'], f'{key}.tile_size', int, low=1)
        tiled['overlap_ratio'] = _number(tiled['overlap_ratio'], f'{key}.overlap_ratio', float,
                                         low=0.0, high=1.0, high_open=True)
    return MultiHypothesisConfig(num_regions=num_regions, fusion=cfg['fusion'],
                                 adaptive_window=adaptive, tiled_fallback=tiled)


def parse_tiled_fallback(cfg: Optional[dict], parent_key: str = 'model') -> Optional[dict]:
    """Validate a ``tiled_fallback`` dict on its own (``ReasoningProposerDetector``); errors name
    ``<parent_key>.tiled_fallback.<key>``."""
    if cfg is None:
        return None
    return parse_multi_hypothesis(dict(tiled_fallback=cfg), 1, cfg_key=parent_key).tiled_fallback


def fallback_tiles(image_size: Size, tiled_fallback: dict) -> np.ndarray:
    """The tiles of the fallback (:func:`~finers_mm.structures.slice_windows`), (T, 4) int64."""
    return slice_windows(image_size, tiled_fallback['tile_size'], tiled_fallback['overlap_ratio'])
