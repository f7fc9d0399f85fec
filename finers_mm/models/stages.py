# Copyright (c) finers_mm contributors. All rights reserved.
"""The small interfaces between the FineRS stages; :class:`FineRSDetector` talks only to these.

A component plugs into the detector by config alone when it has the method of its stage:

- **explorer**: ``explore(views, image_sizes, queries) -> List[ExplorerOutput]``. ``views`` are the
  explorer-frame images (the whole original resized by the data pipeline), ``image_sizes`` the
  ``(W, H)`` of each original. The region comes back in ORIGINAL pixels.
- **refiner**: ``refine(images, windows, queries) -> List[RefinerOutput]``. ``images`` are the
  ORIGINAL images, ``windows`` the crop windows ``(N, 4)`` in ORIGINAL pixels; the refiner cuts and
  resizes its own view. Box and points come back in ORIGINAL pixels.
- **mask head**: ``predict(crops, boxes, points) -> MaskPrediction``
  (:mod:`finers_mm.models.mask_heads`): crops of the original at full resolution, prompts in CROP
  pixels, one mask per crop.

Coordinates follow :mod:`finers_mm.structures.frames` (continuous, boxes ``x2 = xmax + 1``).
"""
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmengine.structures import InstanceData


@dataclass(frozen=True)
class Query:
    """What a sample asks: the question, its type and, for multiple choice, the options.

    Args:
        question (str): the question or segmentation instruction.
        question_type (str): ``'segmentation'``, ``'multiple_choice'`` or ``'open'``.
        options (dict): ``{letter: text}``; empty unless multiple choice.
    """
    question: str
    question_type: str
    options: Dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_data_sample(cls, data_sample) -> 'Query':
        """The query carried in a packed sample's metainfo (see ``PackFineRSInputs``)."""
        return cls(question=data_sample.question, question_type=data_sample.question_type,
                   options=dict(data_sample.get('options', None) or {}))


@dataclass
class ExplorerOutput:
    """One explorer answer.

    Args:
        region (np.ndarray, optional): (4,) float32 region in ORIGINAL pixels; None when the
            completion gave no usable box.
        answer (str, optional): the completion's ``response``.
        completion (str): the raw completion text (reasoning included).
        invalid (str, optional): the parser's reason when the completion is not fully valid.
    """
    region: Optional[np.ndarray]
    answer: Optional[str]
    completion: str
    invalid: Optional[str] = None


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
    """
    box: Optional[np.ndarray]
    points: Optional[np.ndarray]
    answer: Optional[str]
    completion: str
    invalid: Optional[str] = None

    @property
    def absent(self) -> bool:
        """Whether the refiner answered "no object" (an all-zero box)."""
        return self.box is not None and not np.any(self.box)


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
