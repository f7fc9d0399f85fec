# Copyright (c) finers_mm contributors. All rights reserved.
"""The pixels of a synthetic scene: textured ground, roads, roofs, painted objects, encoding."""
from typing import Tuple

import cv2
import numpy as np

from finers_mm.structures.masks import rasterize_polygon
from .vocab import (BACKGROUND_NOISE_STD, BACKGROUND_RANGE, COLORS, GROUND_COLORS,
                    ROOFS_PER_MEGAPIXEL)


def _value_noise(rng: np.random.Generator, image_size: Tuple[int, int], cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a random ``cells``-wide grid, bicubically upsampled to (H, W)."""
    width, height = image_size
    rows = max(2, int(round(cells * height / width)))
    grid = rng.random((rows, cells)).astype(np.float32)
    return np.clip(cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def render_background(rng: np.random.Generator, image_size: Tuple[int, int],
                      clutter: bool = True) -> np.ndarray:
    """A UAV-like ground: blended low-saturation terrain, roads and roofs, with pixel noise.

    All values stay in :data:`BACKGROUND_RANGE`, so no background pixel equals an object colour.

    Args:
        rng (np.random.Generator): random source.
        image_size (tuple[int, int]): (W, H).
        clutter (bool): False draws a plain ground instead: the first ground colour with pixel
            noise, no terrain, roads or roofs (a curriculum's first, easiest scenes).

    Returns:
        np.ndarray: (H, W, 3) uint8 RGB.
    """
    ground = np.asarray(GROUND_COLORS, dtype=np.float32)
    if not clutter:
        width, height = image_size
        image = np.broadcast_to(ground[0], (height, width, 3)).copy()
        image += rng.standard_normal(image.shape, dtype=np.float32) * BACKGROUND_NOISE_STD
        return np.clip(np.rint(image), *BACKGROUND_RANGE).astype(np.uint8)
    mix = _value_noise(rng, image_size, 6)[..., None]
    detail = _value_noise(rng, image_size, 40)[..., None]
    image = (ground[0] * mix + ground[1] * (1 - mix)) * (0.7 + 0.3 * detail)
    image = np.ascontiguousarray(image + ground[2] * 0.3 * (1 - detail))
    _draw_roads(rng, image)
    _draw_roofs(rng, image, ground)
    image += rng.standard_normal(image.shape, dtype=np.float32) * BACKGROUND_NOISE_STD
    return np.clip(np.rint(image), *BACKGROUND_RANGE).astype(np.uint8)


def _draw_roads(rng: np.random.Generator, image: np.ndarray) -> None:
    """Draw 2-4 grey roads across a float32 (H, W, 3) image, from one border to the opposite."""
    height, width = image.shape[:2]
    unit = max(1, width // 400)
    for _ in range(int(rng.integers(2, 5))):
        if rng.random() < 0.5:
            start, end = (int(rng.integers(width)), 0), (int(rng.integers(width)), height - 1)
        else:
            start, end = (0, int(rng.integers(height))), (width - 1, int(rng.integers(height)))
        grey = float(rng.uniform(120, 150))
        cv2.line(image, start, end, (grey, grey, grey), int(rng.integers(3, 7)) * unit)


def _draw_roofs(rng: np.random.Generator, image: np.ndarray, ground: np.ndarray) -> None:
    """Draw :data:`ROOFS_PER_MEGAPIXEL` muted rectangles (tones near ``ground``) on a float32
    image."""
    height, width = image.shape[:2]
    unit = max(1, width // 400)
    for _ in range(int(ROOFS_PER_MEGAPIXEL * width * height / 1e6)):
        x, y = int(rng.integers(width)), int(rng.integers(height))
        w, h = (int(v) * unit for v in rng.integers(6, 30, size=2))
        tone = ground[rng.integers(len(ground))] + rng.uniform(-25, 25)
        cv2.rectangle(image, (x, y), (x + w, y + h), tuple(float(v) for v in tone), -1)


def paint_object(image: np.ndarray, obj: 'SceneObject') -> None:  # noqa: F821
    """Fill the pixels of ``obj``'s :func:`rasterize_polygon` mask with its colour, in place.

    The raster is computed in the object's box only; its vertices are shifted by whole pixels, which
    leaves the int32-truncated raster unchanged.

    Args:
        image (np.ndarray): (H, W, 3) uint8 RGB.
        obj (SceneObject): the object to paint.
    """
    x1, y1, x2, y2 = (int(v) for v in obj.bbox)
    mask = rasterize_polygon(obj.points - [x1, y1], y2 - y1, x2 - x1)
    image[y1:y2, x1:x2][mask] = COLORS[obj.color]


def encode_image(image: np.ndarray, image_format: str = 'jpg', jpeg_quality: int = 90) -> bytes:
    """Encode an RGB image as JPEG or (lossless) PNG.

    Args:
        image (np.ndarray): (H, W, 3) uint8 RGB.
        image_format (str): ``'jpg'`` or ``'png'``.
        jpeg_quality (int): JPEG quality 0-100.

    Returns:
        bytes: the encoded file.
    """
    if image_format not in ('jpg', 'png'):
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if image_format == 'jpg' else []
    ok, buffer = cv2.imencode(f'.{image_format}', cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise RuntimeError(f'OpenCV could not encode a {image_format} image')
    return buffer.tobytes()
