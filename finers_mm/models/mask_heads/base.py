# Copyright (c) finers_mm contributors. All rights reserved.
"""The mask-head interface, written once: :class:`BaseMaskHead`, :class:`MaskPrediction` and the
prompt check every head shares.

What :class:`~finers_mm.models.FineRSDetector` calls (any component with this method plugs in)::

    predict(crops, boxes, points=None, point_labels=None) -> MaskPrediction(masks, scores)

with ``crops`` N (h_i, w_i, 3) uint8 RGB arrays, ``boxes`` (N, 4) and ``points`` (N, P, 2) in CROP
pixels (continuous: pixel centre ``i + 0.5``, box ``x2 = xmax + 1``), ``point_labels`` (N, P)
(default all positive); ``masks`` N (h_i, w_i) bool arrays in CROP pixels, ``scores`` (N,) float.
An all-zero box means "no object": an empty mask with score 0. Paste a crop's mask into the
original image with :func:`finers_mm.structures.masks.paste_crop_mask`.
"""
from abc import abstractmethod
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.model import BaseModule

from finers_mm.structures.frames import clip_boxes

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence]


class MaskPrediction(NamedTuple):
    """What a mask head returns for N crops (one prompt per crop).

    Attributes:
        masks (list[np.ndarray]): N masks, the i-th of shape (h_i, w_i), bool, in CROP pixels of
            crop i (all False where no object was prompted or found).
        scores (np.ndarray): (N,) float32 mask quality of the kept mask (each head says what it is:
            SAM's predicted IoU, ...); 0 for an empty mask returned without running the model.
    """
    masks: List[np.ndarray]
    scores: np.ndarray



def _to_numpy(array: ArrayLike) -> np.ndarray:
    """A tensor, array or nested sequence as a float64 numpy array."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    return np.asarray(array, dtype=np.float64)



def _finite32(array: np.ndarray) -> np.ndarray:
    """Per element: finite in float32, the precision the heads run in (``1e39`` is finite in
    float64 and ``inf`` in float32; SAM's prompt encoder turns it into a NaN mask score)."""
    return np.abs(array) <= np.finfo(np.float32).max


def check_prompts(head: str, crops: List[np.ndarray], boxes: ArrayLike,
                  points: Optional[ArrayLike], point_labels: Optional[ArrayLike]):
    """Validate a mask head's prompts; return ``(boxes, points, point_labels)`` as numpy arrays.

    The mask-head interface's one input check, shared by every head (errors name ``head``).

    Args:
        head (str): the calling head's name, for error messages.
        crops (list[np.ndarray]): N (h_i, w_i, 3) uint8 RGB crops.
        boxes: (N, 4) continuous CROP pixels.
        points: (N, P, 2) continuous CROP pixels, or None.
        point_labels: (N, P) (1 positive, 0 negative), or None (all positive).

    Returns:
        tuple: ``boxes`` (N, 4) float32 continuous CROP pixels, clipped to each crop, all zeros
        where the prompt is unusable (no area in the crop, or a box or point not finite in
        float32);
        ``points`` (N, P, 2) float64 continuous CROP pixels or None; ``point_labels`` (N, P)
        int64 or None (None when ``points`` is).
    """
    num = len(crops)
    for i, crop in enumerate(crops):
        if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8 or not crop.size:
            raise ValueError(f'{head}.predict: crop {i} must be a non-empty (h, w, 3) '
                             f'uint8 RGB array, got shape {crop.shape} dtype {crop.dtype}.')
    boxes = _to_numpy(boxes)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.shape != (num, 4):
        raise ValueError(f'{head}.predict: boxes must be (N={num}, 4), one per crop, got '
                         f'{boxes.shape}.')
    usable = _finite32(boxes).all(axis=1)
    if points is not None:
        points = _to_numpy(points)
        if points.ndim != 3 or points.shape[0] != num or points.shape[2] != 2:
            raise ValueError(f'{head}.predict: points must be (N={num}, P, 2), got '
                             f'{points.shape}.')
        usable &= _finite32(points).all(axis=(1, 2))
        if point_labels is None:
            point_labels = np.ones(points.shape[:2], dtype=np.int64)
        else:
            point_labels = _to_numpy(point_labels).astype(np.int64)
            if point_labels.shape != points.shape[:2]:
                raise ValueError(f'{head}.predict: point_labels must be '
                                 f'{points.shape[:2]}, got {point_labels.shape}.')
    elif point_labels is not None:
        raise ValueError(f'{head}.predict: point_labels given without points.')
    clipped = np.zeros((num, 4), dtype=np.float32)
    for i in np.flatnonzero(usable):
        clipped[i] = clip_boxes(boxes[i], (crops[i].shape[1], crops[i].shape[0]))
    return clipped, points, point_labels


class BaseMaskHead(BaseModule):
    """A frozen prompted segmenter: the mask-head interface and its shared checks.

    :meth:`predict` validates the prompts (:func:`check_prompts`), answers an empty mask with score
    0 for every crop whose box is unusable (all zeros: the refiner's "No object found", no area
    inside the crop, or a non-finite coordinate) without running the model, and hands the others
    to the subclass's :meth:`segment`. The head is frozen: it stays in eval mode whatever its
    parent sets (subclasses also turn off their parameters' gradients).
    """

    def train(self, mode: bool = True) -> 'BaseMaskHead':
        """Keep the frozen head in eval mode whatever ``mode`` the parent sets."""
        return super().train(False)

    @torch.no_grad()
    def predict(self,
                crops: List[np.ndarray],
                boxes: ArrayLike,
                points: Optional[ArrayLike] = None,
                point_labels: Optional[ArrayLike] = None) -> MaskPrediction:
        """Segment one prompted object in each crop.

        Args:
            crops (list[np.ndarray]): N crops, the i-th of shape (h_i, w_i, 3), uint8, RGB (a crop
                of the ORIGINAL image, not resized).
            boxes (np.ndarray | torch.Tensor): (N, 4) ``[x1, y1, x2, y2]`` in CROP pixels of crop i,
                continuous (``x2 = xmax + 1``). Clipped to the crop; all zeros means "absent".
            points (np.ndarray | torch.Tensor, optional): (N, P, 2) ``[x, y]`` in CROP pixels,
                continuous (pixel centre ``i + 0.5``); the refiner gives P = 2. Defaults to None
                (box only).
            point_labels (np.ndarray | torch.Tensor, optional): (N, P), 1 positive, 0 negative.
                Defaults to None (all positive).

        Returns:
            MaskPrediction: ``masks`` N (h_i, w_i) bool arrays in CROP pixels, ``scores`` (N,)
            float32.
        """
        boxes, points, point_labels = check_prompts(type(self).__name__, crops, boxes, points,
                                                     point_labels)
        masks = [np.zeros(crop.shape[:2], dtype=bool) for crop in crops]
        scores = np.zeros(len(crops), dtype=np.float32)
        usable = [i for i in range(len(crops)) if boxes[i].any()]
        for i, mask, score in self.segment(crops, boxes, points, point_labels, usable):
            masks[i], scores[i] = mask, score
        return MaskPrediction(masks=masks, scores=scores)

    @abstractmethod
    def segment(self, crops: List[np.ndarray], boxes: np.ndarray, points: Optional[np.ndarray],
                point_labels: Optional[np.ndarray],
                indices: List[int]) -> Iterator[Tuple[int, np.ndarray, float]]:
        """Segment the crops ``indices`` (their prompts checked and usable).

        Args:
            crops (list[np.ndarray]): all N (h_i, w_i, 3) uint8 RGB crops of the call.
            boxes (np.ndarray): (N, 4) float32 continuous CROP pixels, clipped to each crop.
            points (np.ndarray, optional): (N, P, 2) continuous CROP pixels.
            point_labels (np.ndarray, optional): (N, P) int64 (None when ``points`` is).
            indices (list[int]): the crops to segment.

        Yields:
            tuple[int, np.ndarray, float]: a crop index, its (h_i, w_i) bool mask in CROP pixels
            and the mask's score.
        """
