# Copyright (c) finers_mm contributors. All rights reserved.
"""What a reward term scores a completion against.

A :class:`RewardSample` holds one prompt's ground truth in the stage's FRAME pixels (the image fed
to the model: the resized whole image for the explorer, the resized crop for the refiner), with the
conventions of :mod:`finers_mm.structures.frames`: continuous coordinates, boxes
``[x1, y1, x2, y2]`` with ``x2 = xmax + 1``, an all-zero box meaning "absent".

A completion's coordinates are MODEL coordinates, spanning ``[0, sx] x [0, sy]`` over the frame
(``model_coord_size``: the processor-resized image size for Qwen2.5-VL, ``(1000, 1000)`` for the
0-1000 relative convention of Qwen3-VL); :func:`to_frame` maps them to frame pixels with
:func:`~finers_mm.structures.frames.model_to_frame`, the map the VLM adapters use too.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from .frames import model_to_frame
from .vocabulary import check_question_type, check_stage

#: array fields of :class:`RewardSample` holding coordinates, and their shapes
_COORD_FIELDS = (('gt_box', (4,)), ('gt_points', (2, 2)), ('target_region', (4,)))


@dataclass(frozen=True, eq=False)
class RewardSample:
    """One prompt's ground truth, in the stage's frame pixels (shared by its n rollouts).

    Validated on construction (a bad sample is a data or hook bug, reported at once); coordinate
    fields are stored as float64 arrays, ``gt_mask`` as bool.

    Attributes:
        stage (str): ``'explorer'`` or ``'refiner'``.
        frame_size (tuple[int, int]): ``(W, H)`` of the image fed to the model.
        model_coord_size (tuple[float, float]): ``(sx, sy)``: model coordinates span
            ``[0, sx] x [0, sy]`` over the frame.
        question_type (str): ``'segmentation'``, ``'multiple_choice'`` or ``'open'``.
        answer (str): the ground-truth answer (see ``answer_is_correct``).
        options (dict): the options of a multiple-choice question (any form
            ``normalize_options`` accepts). Defaults to ``{}``.
        gt_box (np.ndarray, optional): (4,) GT box in frame pixels; all zeros: the target is
            absent from this view.
        gt_points (np.ndarray, optional): (2, 2) GT points in frame pixels (refiner).
        target_region (np.ndarray, optional): (4,) the region the explorer is rewarded for
            (``best_region`` in explorer-frame pixels).
        region_size (int, optional): side of the explorer's region in frame pixels.
        image (np.ndarray, optional): (H, W, 3) uint8 RGB frame image (mask-IoU term only).
        gt_mask (np.ndarray, optional): (H, W) bool GT mask in frame pixels (mask-IoU term only).
    """

    stage: str
    frame_size: Tuple[int, int]
    model_coord_size: Tuple[float, float]
    question_type: str
    answer: str
    options: Dict[str, str] = field(default_factory=dict)
    gt_box: Optional[np.ndarray] = None
    gt_points: Optional[np.ndarray] = None
    target_region: Optional[np.ndarray] = None
    region_size: Optional[int] = None
    image: Optional[np.ndarray] = None
    gt_mask: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        check_stage(self.stage)
        check_question_type(self.question_type)
        _check_extent('frame_size', self.frame_size)
        _check_extent('model_coord_size', self.model_coord_size)
        for name, shape in _COORD_FIELDS:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _coords(name, value, shape))
        for name in ('gt_box', 'target_region'):
            box = getattr(self, name)
            if box is not None and box.any() and not (box[2] > box[0] and box[3] > box[1]):
                raise ValueError(f'RewardSample.{name} {box.tolist()} must be all zeros (absent) '
                                 f'or have x2 > x1 and y2 > y1')
        if self.region_size is not None and not self.region_size > 0:
            raise ValueError(f'RewardSample.region_size must be > 0, got {self.region_size!r}')
        height_width = (self.frame_size[1], self.frame_size[0])
        if self.image is not None:
            image = np.asarray(self.image)
            if image.shape != height_width + (3,) or image.dtype != np.uint8:
                raise ValueError(f'RewardSample.image must be a (H, W, 3) = {height_width + (3,)} '
                                 f'uint8 frame image, got {image.shape} {image.dtype}')
        if self.gt_mask is not None:
            mask = np.asarray(self.gt_mask).astype(bool, copy=False)
            if mask.shape != height_width:
                raise ValueError(f'RewardSample.gt_mask must be (H, W) = {height_width} frame '
                                 f'pixels, got {mask.shape}')
            object.__setattr__(self, 'gt_mask', mask)


def _check_extent(name: str, extent: Sequence[float]) -> None:
    """Raise ValueError unless ``extent`` is two finite positive numbers."""
    values = np.asarray(extent, dtype=np.float64)
    if values.shape != (2,) or not np.isfinite(values).all() or not (values > 0).all():
        raise ValueError(f'RewardSample.{name} must be two finite numbers > 0, got {extent!r}')


def _coords(name: str, value: Any, shape: Tuple[int, ...]) -> np.ndarray:
    """``value`` as a finite float64 array of ``shape``; ValueError naming the field otherwise."""
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape or not np.isfinite(array).all():
        raise ValueError(f'RewardSample.{name} must be finite numbers of shape {shape}, got '
                         f'{value!r}')
    return array


def to_frame(coords: Any, sample: RewardSample) -> np.ndarray:
    """Map model coordinates to the sample's frame pixels (:func:`model_to_frame`).

    Args:
        coords: boxes (..., 4) ``[x1, y1, x2, y2]`` or points (..., 2) ``[x, y]`` in model
            coordinates.
        sample (RewardSample): gives ``frame_size`` and ``model_coord_size``.

    Returns:
        np.ndarray: float64, same shape, in frame pixels (not clipped; a coordinate too large
        for float64 after scaling becomes inf).

    Raises:
        ValueError: ``coords`` is not of shape (..., 4) or (..., 2).
    """
    return model_to_frame(coords, sample.frame_size, sample.model_coord_size)
