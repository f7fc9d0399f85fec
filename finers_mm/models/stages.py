# Copyright (c) finers_mm contributors. All rights reserved.
"""The small interfaces between the FineRS stages; :class:`FineRSDetector` talks only to these.

A component plugs into the detector by config alone when it has the method of its stage:

- **explorer**: ``explore(views, image_sizes, queries, num_regions=1) -> List[ExplorerOutput]``.
  ``views`` are the explorer-frame images (the whole original resized by the data pipeline),
  ``image_sizes`` the ``(W, H)`` of each original. It returns ``B * num_regions`` outputs,
  sample-major (rows ``i * k .. i * k + k - 1`` are sample i's ``k = num_regions`` hypotheses),
  best first within a sample. Regions come back in ORIGINAL pixels. An explorer that only ever
  answers one region may leave ``num_regions`` out of its signature: the detector passes it only
  when its ``multi_hypothesis`` asks for more than one region (and then refuses, at build time,
  an explorer without it).
- **refiner**: ``refine(images, windows, queries, with_scores=False) -> List[RefinerOutput]``.
  ``images`` are the ORIGINAL images, ``windows`` the crop windows ``(N, 4)`` in ORIGINAL pixels;
  the refiner cuts and resizes its own view. Box and points come back in ORIGINAL pixels. With
  ``with_scores`` each output's ``score`` is filled; a component that always (or never) fills it may
  leave ``with_scores`` out of its signature: the detector passes it only when its score fusion
  needs the refiner's score.
- **mask head**: ``predict(crops, boxes, points) -> MaskPrediction``, written down in
  :class:`finers_mm.models.mask_heads.BaseMaskHead` (subclass it and write ``segment``): crops of
  the original at full resolution, prompts in CROP pixels, one mask per crop, and one
  mask-quality score per crop (SAM: its predicted IoU, in ``[0, 1]``; a higher-is-better number
  for other heads).

**Scores.** ``ExplorerOutput.score`` and ``RefinerOutput.score`` are LOG-scale confidences,
higher is better: for the VLM stages the completion's mean per-token log-prob under the model
(:attr:`finers_mm.models.vlm.GenerationResult.mean_logprobs`), for other components the log of a
``[0, 1]`` confidence (e.g. ``log(detector score)``), so ``exp(score)`` always reads as a
probability; None when not computed. How the detector fuses them with the mask head's score is
:func:`finers_mm.models.hypotheses.fuse_scores`.

Coordinates follow :mod:`finers_mm.structures.frames` (continuous, boxes ``x2 = xmax + 1``).
"""
import inspect
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.structures import InstanceData

from finers_mm.structures.frames import is_absent


@dataclass(frozen=True)
class Query:
    """What a sample asks: the question, its type and, for multiple choice, the options.

    Args:
        question (str): the question or segmentation instruction.
        question_type (str): ``'segmentation'``, ``'multiple_choice'`` or ``'open'``.
        options (dict): ``{letter: text}``; empty unless multiple choice.
        options_raw (list | dict | str, optional): the options as the annotation wrote them (the
            authors' prompts insert ``str()`` of this value); None when not known, then the
            prompts use ``options``.
    """
    question: str
    question_type: str
    options: Dict[str, str] = field(default_factory=dict)
    options_raw: Any = None

    @property
    def prompt_options(self):
        """The options a prompt inserts: as the annotation wrote them when known."""
        return self.options if self.options_raw is None else self.options_raw

    @classmethod
    def from_data_sample(cls, data_sample) -> 'Query':
        """The query carried in a packed sample's metainfo (see ``PackFineRSInputs``)."""
        return cls(question=data_sample.question, question_type=data_sample.question_type,
                   options=dict(data_sample.get('options', None) or {}),
                   options_raw=data_sample.get('options_raw', None))


@dataclass
class ExplorerOutput:
    """One explorer answer.

    Args:
        region (np.ndarray, optional): (4,) float32 region in ORIGINAL pixels; None when the
            completion gave no usable box.
        answer (str, optional): the completion's ``response``.
        completion (str): the raw completion text (reasoning included).
        invalid (str, optional): the parser's reason when the completion is not fully valid.
        score (float, optional): log-scale confidence (the completion's mean per-token log-prob
            for :class:`GlobalExplorer`); None when not computed. See the module docstring.
    """
    region: Optional[np.ndarray]
    answer: Optional[str]
    completion: str
    invalid: Optional[str] = None
    score: Optional[float] = None


@dataclass
class RefinerOutput:
    """One refiner answer.

    Args:
        box (np.ndarray, optional): (4,) float32 box in ORIGINAL pixels; all zeros when the refiner
            says the object is absent; None when the completion gave no usable box.
        points (np.ndarray, optional): (2, 2) float32 points in ORIGINAL pixels, or None.
        answer (str, optional): the completion's ``response``.
        completion (str): the raw completion text.
        invalid (str, optional): the parser's reason when the completion is not fully valid.
        score (float, optional): log-scale confidence (the completion's mean per-token log-prob
            for :class:`LocalRefiner`); None when not computed. See the module docstring.
    """
    box: Optional[np.ndarray]
    points: Optional[np.ndarray]
    answer: Optional[str]
    completion: str
    invalid: Optional[str] = None
    score: Optional[float] = None

    @property
    def absent(self) -> bool:
        """Whether the refiner answered "no object" (an all-zero box)."""
        return is_absent(self.box)

    @property
    def usable(self) -> bool:
        """Whether the answer locates an object: a box and points, not "no object"."""
        return self.box is not None and self.points is not None and not self.absent


def accepts_keyword(method, name: str) -> bool:
    """Whether a stage method takes keyword ``name`` (or ``**kwargs``): the optional parts of the
    interfaces above (``num_regions``, ``with_scores``) are passed only to components that take
    them."""
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def explore_regions(explorer, views: Sequence[np.ndarray], image_sizes: Sequence[tuple],
                    queries: Sequence[Query], num_regions: int = 1) -> List[ExplorerOutput]:
    """Call an explorer through its interface: ``num_regions`` passed only when k > 1 (so an
    explorer without it still serves the single-region chain), the answer count checked.

    Args:
        explorer: a component with ``explore(views, image_sizes, queries[, num_regions])``.
        views, image_sizes, queries: as the explorer interface above (B samples).
        num_regions (int): k hypotheses per sample.

    Returns:
        list[ExplorerOutput]: B * k outputs, sample-major, best first within a sample.

    Raises:
        ValueError: the explorer returned another number of outputs.
    """
    k = int(num_regions)
    if k > 1:
        explored = explorer.explore(views, image_sizes, queries, num_regions=k)
    else:
        explored = explorer.explore(views, image_sizes, queries)
    if len(explored) != len(views) * k:
        raise ValueError(f'{type(explorer).__name__}.explore returned {len(explored)} outputs for '
                         f'{len(views)} samples x {k} regions')
    return list(explored)


def make_pred_instances(boxes: Sequence[np.ndarray], scores: Optional[Sequence[float]] = None,
                        points: Optional[Sequence[np.ndarray]] = None,
                        masks: Optional[Sequence[np.ndarray]] = None) -> InstanceData:
    """mmdet ``pred_instances`` of K predictions (K = 0 for an empty prediction).

    Args:
        boxes (Sequence[np.ndarray]): K boxes (4,), ORIGINAL pixels.
        scores (Sequence[float], optional): K scores; ones by default.
        points (Sequence[np.ndarray], optional): K point pairs (2, 2), ORIGINAL pixels.
        masks (Sequence[np.ndarray], optional): K (H, W) bool full-image masks.

    Returns:
        InstanceData: ``bboxes`` (K, 4) float32, ``scores`` (K,), ``labels`` (K,) zeros, and
        ``points`` (K, 2, 2) / ``masks`` (K, H, W) bool when given.
    """
    count = len(boxes)
    instances = InstanceData()
    instances.bboxes = torch.as_tensor(np.asarray(boxes, np.float32).reshape(count, 4))
    instances.scores = (torch.ones(count) if scores is None
                        else torch.as_tensor(np.asarray(scores, np.float32).reshape(count)))
    instances.labels = torch.zeros(count, dtype=torch.long)
    if points is not None:
        instances.points = torch.as_tensor(np.asarray(points, np.float32).reshape(count, 2, 2))
    if masks is not None:
        instances.masks = torch.as_tensor(np.asarray(masks, bool))
    return instances
