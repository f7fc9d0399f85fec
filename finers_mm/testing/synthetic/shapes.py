# Copyright (c) finers_mm contributors. All rights reserved.
"""Object polygons of the synthetic scenes: unit shapes, scaled to a wanted raster area."""
from typing import Tuple

import numpy as np

from finers_mm.structures.masks import rasterize_polygon
from finers_mm.structures.vocabulary import size_bucket
from .vocab import (BUCKET_AREA_RANGES, DIAMOND_ASPECT, MAX_ROTATION_DEG, MAX_SIZING_STEPS,
                    STAR_INNER_RATIO, VERTEX_COUNTS)


def unit_polygon(shape: str, angle_deg: float = 0.0) -> np.ndarray:
    """Vertices of ``shape`` with circumradius 1 around the origin, rotated by ``angle_deg``.

    Args:
        shape (str): one of :data:`SHAPES`.
        angle_deg (float): rotation, degrees, clockwise in image coordinates.

    Returns:
        np.ndarray: (N, 2) float64 vertices, x then y (y down).
    """
    sides = VERTEX_COUNTS[shape]
    # pointy-top polygons; the square is turned by half a side so it stands on an edge
    start = -90.0 + (45.0 if shape == 'square' else 0.0)
    theta = np.deg2rad(start + np.arange(sides) * 360.0 / sides)
    radius = np.ones(sides)
    if shape == 'star':
        radius[1::2] = STAR_INNER_RATIO
    vertices = np.stack([radius * np.cos(theta), radius * np.sin(theta)], axis=1)
    if shape == 'diamond':
        vertices = vertices * [DIAMOND_ASPECT, 1.0]
    c, s = np.cos(np.deg2rad(angle_deg)), np.sin(np.deg2rad(angle_deg))
    return vertices @ np.array([[c, s], [-s, c]])


def polygon_area(vertices: np.ndarray) -> float:
    """Shoelace area of a simple polygon.

    Args:
        vertices (np.ndarray): (N, 2) vertices.

    Returns:
        float: the enclosed area (pixels squared when the vertices are in pixels).
    """
    x, y = vertices[:, 0], vertices[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def local_polygon(rng: np.random.Generator, unit: np.ndarray, scale: float) -> np.ndarray:
    """Scale a unit polygon and move it to a local frame: its minimum lies in the pixel (0, 0), at a
    random sub-pixel phase; vertices rounded to 2 decimals."""
    vertices = unit * scale
    vertices = vertices - vertices.min(axis=0) + rng.random(2)
    return np.round(vertices, 2)


def raster_window(local: np.ndarray) -> Tuple[int, int]:
    """Width and height of the smallest window at the origin holding a local polygon's raster."""
    extent = np.floor(local.max(axis=0)).astype(int) + 1
    return int(extent[0]), int(extent[1])


def raster_pixels(local: np.ndarray) -> int:
    """Number of pixels of a local polygon's :func:`rasterize_polygon` mask (placement-invariant for
    integer shifts of a polygon with non-negative vertices)."""
    width, height = raster_window(local)
    return int(rasterize_polygon(local, height, width).sum())


def target_polygon(rng: np.random.Generator, shape: str, bucket: str, image_size: Tuple[int, int],
                   object_scale: float = 1.0) -> np.ndarray:
    """A target polygon whose :func:`rasterize_polygon` area falls in ``bucket`` at ``image_size``,
    then scaled by ``object_scale``.

    The polygon is local (see :func:`local_polygon`); its raster area does not change when it is
    moved by whole pixels.

    Args:
        rng (np.random.Generator): random source.
        shape (str): one of :data:`SHAPES`.
        bucket (str): ``'S'``, ``'XS'`` or ``'XXS'``.
        image_size (tuple[int, int]): (W, H).
        object_scale (float): side factor applied after sizing (a curriculum's larger objects; its
            area then leaves ``bucket``). 1 draws the same polygons as before it existed.

    Returns:
        np.ndarray: (N, 2) local polygon (see :func:`local_polygon`).

    Raises:
        ValueError: the image is too small to draw a target of that bucket.
    """
    image_pixels = image_size[0] * image_size[1]
    wanted = rng.uniform(*BUCKET_AREA_RANGES[bucket])
    unit = unit_polygon(shape, rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))
    scale = np.sqrt(wanted / 100.0 * image_pixels / polygon_area(unit))
    for _ in range(MAX_SIZING_STEPS):
        local = local_polygon(rng, unit, scale)
        percent = raster_pixels(local) * 100.0 / image_pixels
        if size_bucket(percent) == bucket:
            return local if object_scale == 1.0 else np.round(local * object_scale, 2)
        scale *= np.sqrt(wanted / percent)
    raise ValueError(f'cannot draw a {bucket} {shape} in a {image_size[0]}x{image_size[1]} image; '
                     'use a larger image')
