# Copyright (c) finers_mm contributors. All rights reserved.
"""The FineRS ground-truth raster: the one place that turns an annotation polygon into pixels.

Convention (METHOD.md, "Conventions that move the numbers"): the vertices are truncated to int32, the
polygon is filled with ``cv2.fillPoly`` and its closed 1-px outline is drawn with
``cv2.polylines(..., isClosed=True, color=1, thickness=1)``. Another rasteriser (pycocotools, PIL) costs
up to ~8 gIoU points on XXS objects, so everything that needs the GT mask, its box or its area calls
this module.

Frames: all coordinates are ORIGINAL image pixels, x to the right, y down; a box is mmdet's continuous
``[x1, y1, x2, y2]`` with ``x2 = xmax + 1`` (the authors use the inclusive ``[xmin, ..., xmax]``).
"""
import cv2
import numpy as np


def polygon_vertices(polygon) -> np.ndarray:
    """Return the polygon's raster vertices: shape (N, 2), int32, truncated as the authors do.

    Args:
        polygon: ``[[x, y], ...]`` in original pixels (list or array, any real dtype).

    Returns:
        np.ndarray: (N, 2) int32 vertices, x then y.
    """
    return np.asarray(polygon, dtype=np.float64).reshape(-1, 2).astype(np.int32)


def rasterize_polygon(polygon, height: int, width: int) -> np.ndarray:
    """Rasterise one polygon with the authors' convention.

    Args:
        polygon: ``[[x, y], ...]`` in original pixels.
        height (int): image height H.
        width (int): image width W.

    Returns:
        np.ndarray: (H, W) bool mask.
    """
    mask = np.zeros((int(height), int(width)), dtype=np.uint8)
    vertices = polygon_vertices(polygon)[None]
    cv2.fillPoly(mask, vertices, 1)
    cv2.polylines(mask, vertices, True, 1, 1)
    return mask.astype(bool)


def polygon_bbox(polygon, height: int, width: int) -> np.ndarray:
    """The box of :func:`rasterize_polygon`'s pixels, computed without rasterising.

    The raster's extent is exactly the truncated vertices' extent (the outline passes through every
    vertex and the fill never leaves the hull), clipped to the image.

    Args:
        polygon: ``[[x, y], ...]`` in original pixels.
        height (int): image height H.
        width (int): image width W.

    Returns:
        np.ndarray: (4,) float32 ``[x1, y1, x2, y2]`` continuous (``x2 = xmax + 1``); all zeros when the
        polygon lies entirely outside the image.
    """
    v = polygon_vertices(polygon)
    x_min, y_min = max(int(v[:, 0].min()), 0), max(int(v[:, 1].min()), 0)
    x_max, y_max = min(int(v[:, 0].max()), width - 1), min(int(v[:, 1].max()), height - 1)
    if x_max < x_min or y_max < y_min:
        return np.zeros(4, dtype=np.float32)
    return np.array([x_min, y_min, x_max + 1, y_max + 1], dtype=np.float32)


def mask_bbox(mask: np.ndarray) -> np.ndarray:
    """The continuous box ``[x1, y1, x2, y2]`` of a (H, W) mask's true pixels; zeros if empty."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return np.zeros(4, dtype=np.float32)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)


def area_percent(mask: np.ndarray) -> float:
    """Mask area as a percentage of the image, as the annotation field ``area_percent``."""
    return float(mask.sum()) * 100.0 / float(mask.size)



def paste_crop_mask(crop_mask: np.ndarray, window, image_size) -> np.ndarray:
    """Paste a crop's mask back into a full-size (original image) mask.

    Args:
        crop_mask (np.ndarray): (h, w) mask of the crop, any dtype (non-zero is foreground), with
            ``h = y2 - y1`` and ``w = x2 - x1``.
        window: (4,) integer ``[x1, y1, x2, y2]`` in ORIGINAL pixels, the part of the original the
            crop was cut from (e.g. from
            :func:`~finers_mm.structures.frames.crop_window_from_region`); it must lie inside the
            image.
        image_size (tuple[int, int]): ``(W, H)`` of the original image.

    Returns:
        np.ndarray: (H, W) bool mask, ``crop_mask`` inside the window and False elsewhere.

    Raises:
        ValueError: if the window is not integer, has no area, leaves the image, or its size differs
            from the crop mask's.
    """
    crop_mask = np.asarray(crop_mask)
    coords = np.asarray(window, dtype=np.float64).reshape(-1)
    width, height = int(image_size[0]), int(image_size[1])
    if coords.size != 4 or not np.all(np.isfinite(coords)) or np.any(coords != np.round(coords)):
        raise ValueError(f'paste_crop_mask: window {list(np.asarray(window).reshape(-1))} must be '
                         f'4 integers [x1, y1, x2, y2] in original pixels.')
    x1, y1, x2, y2 = (int(v) for v in coords)
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise ValueError(f'paste_crop_mask: window [{x1}, {y1}, {x2}, {y2}] must have area and lie '
                         f'inside the image [0, 0, {width}, {height}] (W, H = {width}, {height}).')
    if crop_mask.shape != (y2 - y1, x2 - x1):
        raise ValueError(f'paste_crop_mask: crop mask of shape {crop_mask.shape} does not match '
                         f'the window [{x1}, {y1}, {x2}, {y2}], whose (h, w) is '
                         f'{(y2 - y1, x2 - x1)}.')
    full = np.zeros((height, width), dtype=bool)
    full[y1:y2, x1:x2] = crop_mask.astype(bool)
    return full
