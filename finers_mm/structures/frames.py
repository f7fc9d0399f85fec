# Copyright (c) finers_mm contributors. All rights reserved.
"""Coordinate frames of the FineRS pipeline and the maps between them (pure numpy).

Frames (METHOD.md, "Coordinate frames"); every size is an argument, never a literal:

- **original**: the image as stored, ``image_size = (W, H)`` pixels.
- **explorer frame**: the whole original resized to ``frame_size = (fw, fh)`` (1920x1080 in the
  paper), aspect ratio NOT kept. The explorer (GSE) predicts its region here.
- **crop window**: a rectangle ``[x1, y1, x2, y2]`` of the original, integer original pixels, built
  from a region by :func:`crop_window_from_region` (inference) or
  :func:`random_window_containing` (training).
- **refiner frame**: the crop window resized to ``frame_size = (rw, rh)`` (512x512 in the paper).
  The refiner (LPR) predicts its box and points here.
- **model coordinates**: the numbers a VLM writes for a frame, spanning
  ``[0, sx] x [0, sy]`` over it (``model_coord_size``): the processor-resized image's pixels for
  Qwen2.5-VL, ``(1000, 1000)`` for the relative convention of Qwen2-VL / Qwen3-VL. The adapter of
  each family says which (``BaseVLMAdapter.model_coord_size``); :func:`model_to_frame` and
  :func:`frame_to_model` are the maps.

Conventions, shared with :mod:`finers_mm.structures.masks`:

- x to the right, y down; sizes are ``(width, height)``.
- Coordinates are continuous: pixel ``(i, j)`` (column i, row j) covers ``[i, i + 1) x [j, j + 1)``,
  so its centre is ``(i + 0.5, j + 0.5)`` and the pixel holding a point ``(x, y)`` is
  ``(floor(x), floor(y))``.
- A box is ``[x1, y1, x2, y2]`` with ``x2 = xmax + 1`` (mmdet's continuous convention): its width is
  ``x2 - x1`` pixels. An all-zero box means "absent" (the authors' "No object found").
- Boxes are arrays of shape ``(..., 4)``, points of shape ``(..., 2)``; the maps below take either
  and tell them apart by the last axis.

With continuous coordinates every map between frames is an exact per-axis scale and offset, and it
matches ``cv2.resize`` (which samples destination pixel centres at source ``(i + 0.5) / scale``), so
a box mapped into a resized view covers the same pixels there.
"""
import math
from typing import Optional, Sequence, Tuple

import numpy as np

#: ``(width, height)`` of an image or frame, in pixels
Size = Tuple[int, int]


def _affine(coords, offset: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Return ``(coords - offset) * scale`` per axis for boxes ``(..., 4)`` or points ``(..., 2)``.

    Args:
        coords: boxes (..., 4) or points (..., 2).
        offset (np.ndarray): (2,) x and y offset, subtracted first.
        scale (np.ndarray): (2,) x and y scale, applied second.

    Returns:
        np.ndarray: same shape as ``coords``, float32.
    """
    coords = _coords_array(coords)
    repeat = coords.shape[-1] // 2
    offset = np.tile(offset, repeat)
    scale = np.tile(scale, repeat)
    return ((coords - offset) * scale).astype(np.float32)


def _window_offset_scale(window, frame_size: Size) -> Tuple[np.ndarray, np.ndarray]:
    """Offset (window's top-left) and scale (frame size / window size) of a window -> frame map."""
    x1, y1, x2, y2 = (float(v) for v in window)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f'window {list(window)} has no area')
    offset = np.array([x1, y1])
    scale = np.array([frame_size[0] / (x2 - x1), frame_size[1] / (y2 - y1)])
    return offset, scale


def full_window(image_size: Size) -> np.ndarray:
    """The window covering a whole image.

    Args:
        image_size (tuple[int, int]): ``(W, H)`` of the image.

    Returns:
        np.ndarray: (4,) int64 ``[0, 0, W, H]``.
    """
    return np.array([0, 0, image_size[0], image_size[1]], dtype=np.int64)


def window_to_frame(coords, window, frame_size: Size) -> np.ndarray:
    """Map original pixels to the frame of ``window`` resized to ``frame_size``.

    Args:
        coords: boxes (..., 4) or points (..., 2) in ORIGINAL pixels.
        window: (4,) ``[x1, y1, x2, y2]`` in original pixels, the part of the original that was
            resized into the frame.
        frame_size (tuple[int, int]): ``(fw, fh)`` of the frame.

    Returns:
        np.ndarray: float32, same shape as ``coords``, in FRAME pixels (not clipped to the frame).
    """
    offset, scale = _window_offset_scale(window, frame_size)
    return _affine(coords, offset, scale)


def frame_to_window(coords, window, frame_size: Size) -> np.ndarray:
    """Inverse of :func:`window_to_frame`: frame pixels back to original pixels.

    Args:
        coords: boxes (..., 4) or points (..., 2) in FRAME pixels.
        window: (4,) ``[x1, y1, x2, y2]`` in original pixels.
        frame_size (tuple[int, int]): ``(fw, fh)`` of the frame.

    Returns:
        np.ndarray: float32, same shape as ``coords``, in ORIGINAL pixels.
    """
    offset, scale = _window_offset_scale(window, frame_size)
    return _affine(coords, -offset * scale, 1.0 / scale)


def original_to_explorer(coords, image_size: Size, frame_size: Size) -> np.ndarray:
    """Original pixels -> explorer frame (the whole image resized to ``frame_size``).

    Args:
        coords: boxes (..., 4) or points (..., 2) in ORIGINAL pixels.
        image_size (tuple[int, int]): ``(W, H)`` of the original.
        frame_size (tuple[int, int]): ``(fw, fh)`` of the explorer frame.

    Returns:
        np.ndarray: float32, same shape, in EXPLORER pixels.
    """
    return window_to_frame(coords, full_window(image_size), frame_size)


def explorer_to_original(coords, image_size: Size, frame_size: Size) -> np.ndarray:
    """Explorer frame -> original pixels (inverse of :func:`original_to_explorer`).

    Args:
        coords: boxes (..., 4) or points (..., 2) in EXPLORER pixels.
        image_size (tuple[int, int]): ``(W, H)`` of the original.
        frame_size (tuple[int, int]): ``(fw, fh)`` of the explorer frame.

    Returns:
        np.ndarray: float32, same shape, in ORIGINAL pixels.
    """
    return frame_to_window(coords, full_window(image_size), frame_size)


def _model_scale(frame_size: Size, model_coord_size: Sequence[float], repeat: int) -> np.ndarray:
    """Per-coordinate ``frame / model`` scale of a model -> frame map, checked."""
    frame = np.asarray(frame_size, dtype=np.float64)
    model = np.asarray(model_coord_size, dtype=np.float64)
    if (frame.shape != (2,) or model.shape != (2,) or not np.isfinite(model).all()
            or not (model > 0).all() or not (frame > 0).all()):
        raise ValueError(f'frame_size {frame_size!r} and model_coord_size {model_coord_size!r} '
                         'must each be two numbers > 0')
    return np.tile(frame / model, repeat)


def _coords_array(coords) -> np.ndarray:
    """``coords`` as float64 boxes (..., 4) or points (..., 2); ValueError for another shape."""
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim == 0 or coords.shape[-1] not in (2, 4):
        raise ValueError(f'expected boxes (..., 4) or points (..., 2), got shape {coords.shape}')
    return coords


def model_to_frame(coords, frame_size: Size, model_coord_size: Sequence[float]) -> np.ndarray:
    """Coordinates as a model writes them -> pixels of the frame it was fed.

    Args:
        coords: boxes (..., 4) or points (..., 2) in MODEL coordinates.
        frame_size (tuple[int, int]): ``(fw, fh)`` of the image fed to the model.
        model_coord_size (tuple[float, float]): ``(sx, sy)``: the frame's right / bottom edge in
            model coordinates.

    Returns:
        np.ndarray: float64, same shape, in FRAME pixels (not clipped; a coordinate too large for
        float64 after scaling becomes inf).
    """
    coords = _coords_array(coords)
    scale = _model_scale(frame_size, model_coord_size, coords.shape[-1] // 2)
    with np.errstate(over='ignore'):
        return coords * scale


def frame_to_model(coords, frame_size: Size, model_coord_size: Sequence[float]) -> np.ndarray:
    """Inverse of :func:`model_to_frame`: frame pixels -> the model's coordinates (targets).

    Args:
        coords: boxes (..., 4) or points (..., 2) in FRAME pixels.
        frame_size (tuple[int, int]): ``(fw, fh)`` of the image fed to the model.
        model_coord_size (tuple[float, float]): ``(sx, sy)``, as :func:`model_to_frame`.

    Returns:
        np.ndarray: float64, same shape, in MODEL coordinates.
    """
    coords = _coords_array(coords)
    scale = _model_scale(frame_size, model_coord_size, coords.shape[-1] // 2)
    with np.errstate(over='ignore'):
        return coords / scale


def is_absent(coords: Optional[Sequence[float]]) -> bool:
    """Whether ``coords`` (a box or a flat list of numbers) are all zero: the "absent" answer.

    None is not absent: it is no box at all.
    """
    return coords is not None and not np.any(np.asarray(coords, dtype=np.float64))


def clip_boxes(boxes, frame_size: Size) -> np.ndarray:
    """Clip boxes to a frame; a box left without area becomes all zeros ("absent").

    Args:
        boxes: (..., 4) ``[x1, y1, x2, y2]`` in the frame's pixels.
        frame_size (tuple[int, int]): ``(fw, fh)`` of the frame.

    Returns:
        np.ndarray: float32, same shape, inside ``[0, fw] x [0, fh]``.
    """
    boxes = np.asarray(boxes, dtype=np.float32).copy()
    boxes[..., 0::2] = boxes[..., 0::2].clip(0, frame_size[0])
    boxes[..., 1::2] = boxes[..., 1::2].clip(0, frame_size[1])
    empty = (boxes[..., 2] <= boxes[..., 0]) | (boxes[..., 3] <= boxes[..., 1])
    boxes[empty] = 0
    return boxes


def _integer_extent(low: float, high: float) -> Tuple[int, int]:
    """The smallest integer interval ``[floor(low), ceil(high)]`` covering ``[low, high]``."""
    return math.floor(low), math.ceil(high)


def _window_sides(box, image_size: Size, min_side: int) -> Tuple[int, int]:
    """Sides of the crop window for ``box``: square ``max(min_side, box's integer extent)``, each
    side shrunk to the image's where the image is smaller along that axis."""
    if not np.isfinite(np.asarray(box, dtype=np.float64)).all():  # math.floor(inf) would raise
        raise ValueError(f'box {[float(v) for v in box]} must be 4 finite numbers to place a '
                         'window around it (model outputs are bounded by '
                         'finers_mm.structures.parsing; check the component that gave it)')
    (ax, bx), (ay, by) = _integer_extent(box[0], box[2]), _integer_extent(box[1], box[3])
    side = max(int(min_side), bx - ax, by - ay)
    return min(side, int(image_size[0])), min(side, int(image_size[1]))


def crop_window_from_region(region, image_size: Size, min_side: int) -> np.ndarray:
    """The refiner's crop window around a region (inference; also ``best_region`` at training).

    Rule: a square of side ``max(min_side, integer extent of the region's longer side)``, centred on
    the region (to half a pixel), then SHIFTED (not clipped corner by corner) to lie inside the
    image, so a region near a border keeps its full window. Only when the image is smaller than the
    side along an axis does the window shrink there, to the whole image along that axis.

    When the region lies inside the image, the window contains it.

    Args:
        region: (4,) ``[x1, y1, x2, y2]`` in ORIGINAL pixels (e.g. the explorer's region mapped back
            with :func:`explorer_to_original`); it may reach outside the image.
        image_size (tuple[int, int]): ``(W, H)`` of the original.
        min_side (int): the smallest window side in original pixels (512 in the paper).

    Returns:
        np.ndarray: (4,) int64 window ``[x1, y1, x2, y2]`` in ORIGINAL pixels, inside the image.
    """
    side_x, side_y = _window_sides(region, image_size, min_side)
    starts = []
    for low, high, side, size in ((region[0], region[2], side_x, image_size[0]),
                                  (region[1], region[3], side_y, image_size[1])):
        a, b = _integer_extent(low, high)
        start = a + (b - a - side) // 2  # floor: the window covers [a, b] when side >= b - a
        starts.append(min(max(start, 0), int(size) - side))
    x1, y1 = starts
    return np.array([x1, y1, x1 + side_x, y1 + side_y], dtype=np.int64)


def random_window_containing(box, image_size: Size, min_side: int,
                             rng: np.random.Generator) -> np.ndarray:
    """A random crop window that contains ``box`` (training the refiner).

    The window has the sides of :func:`crop_window_from_region` (square
    ``max(min_side, box extent)``, shrunk only where the image is smaller); its position is uniform
    over the integer positions that keep it inside the image and the box inside it. A box reaching
    outside the image is contained as far as the image allows.

    Args:
        box: (4,) ``[x1, y1, x2, y2]`` in ORIGINAL pixels (the GT box).
        image_size (tuple[int, int]): ``(W, H)`` of the original.
        min_side (int): the smallest window side in original pixels.
        rng (np.random.Generator): the only source of randomness.

    Returns:
        np.ndarray: (4,) int64 window ``[x1, y1, x2, y2]`` in ORIGINAL pixels, inside the image.
    """
    side_x, side_y = _window_sides(box, image_size, min_side)
    starts = []
    for low, high, side, size in ((box[0], box[2], side_x, image_size[0]),
                                  (box[1], box[3], side_y, image_size[1])):
        a, b = _integer_extent(low, high)
        lowest = min(max(b - side, 0), int(size) - side)
        highest = max(min(a, int(size) - side), lowest)
        starts.append(int(rng.integers(lowest, highest + 1)))
    x1, y1 = starts
    return np.array([x1, y1, x1 + side_x, y1 + side_y], dtype=np.int64)


def region_around_box(box, frame_size: Size, region_size: int) -> np.ndarray:
    """The explorer's fixed-size region centred on a box, shifted to lie inside the frame.

    This is the region an explorer should answer for a target when no searched ``best_region``
    exists. Each side is ``region_size``, or the frame's side where the frame is smaller. The region
    contains the box whenever the box is inside the frame and no larger than ``region_size``.

    Args:
        box: (4,) ``[x1, y1, x2, y2]`` in EXPLORER pixels (e.g. the GT box mapped with
            :func:`original_to_explorer`).
        frame_size (tuple[int, int]): ``(fw, fh)`` of the explorer frame.
        region_size (int): side of the region in explorer pixels (256 in the paper).

    Returns:
        np.ndarray: (4,) float32 region ``[x1, y1, x2, y2]`` in EXPLORER pixels.
    """
    region = np.empty(4, dtype=np.float64)
    for axis in (0, 1):
        side = min(float(region_size), float(frame_size[axis]))
        centre = (float(box[axis]) + float(box[axis + 2])) / 2
        start = min(max(centre - side / 2, 0.0), float(frame_size[axis]) - side)
        region[axis], region[axis + 2] = start, start + side
    return region.astype(np.float32)


def box_contains(outer: Sequence[float], inner: Sequence[float], tol: float = 0.0) -> bool:
    """Whether box ``outer`` contains box ``inner`` (same frame), up to ``tol`` pixels."""
    return bool(outer[0] <= inner[0] + tol and outer[1] <= inner[1] + tol
                and outer[2] >= inner[2] - tol and outer[3] >= inner[3] - tol)
