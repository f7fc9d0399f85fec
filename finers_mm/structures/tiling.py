# Copyright (c) finers_mm contributors. All rights reserved.
"""Sliced-inference windows (SAHI-style tiling, written once here: sahi is not in our package index).

Used by the sliced baseline of ``projects/reasoning_proposer`` and by the tiled fallback of
:class:`~finers_mm.models.FineRSDetector` / ``ReasoningProposerDetector`` (the tiles a sample is
refined on when its explorer gave no usable region)."""
import math
from typing import Tuple

import numpy as np


def _starts(length: int, tile: int, stride: int) -> list:
    """Tile starts along one axis: every ``stride``, the last one flush with the far border."""
    if length <= tile:
        return [0]
    count = math.ceil((length - tile) / stride) + 1
    starts = [min(i * stride, length - tile) for i in range(count)]
    return sorted(set(starts))


def slice_windows(image_size: Tuple[int, int], tile_size: int, overlap_ratio: float) -> np.ndarray:
    """Tiles covering a whole image, with overlap, as windows in ORIGINAL pixels.

    The tiles are squares of side ``tile_size`` (shrunk to the image along an axis where the image
    is smaller), stride ``tile_size * (1 - overlap_ratio)`` (rounded down, at least 1), the last
    tile of each row / column shifted back to end at the border (as SAHI's ``get_slice_bboxes``), so
    every pixel is covered and no tile leaves the image.

    Args:
        image_size (tuple[int, int]): ``(W, H)``.
        tile_size (int): tile side in pixels.
        overlap_ratio (float): fraction of a tile shared with its neighbour, in ``[0, 1)``.

    Returns:
        np.ndarray: (T, 4) int64 ``[x1, y1, x2, y2]``, row-major.
    """
    if not 0.0 <= overlap_ratio < 1.0:
        raise ValueError(f'overlap_ratio must be in [0, 1), got {overlap_ratio}')
    if int(tile_size) < 1:
        raise ValueError(f'tile_size must be >= 1, got {tile_size}')
    width, height = (int(v) for v in image_size)
    tile_w, tile_h = min(int(tile_size), width), min(int(tile_size), height)
    stride = max(1, int(int(tile_size) * (1.0 - overlap_ratio)))
    windows = [[x, y, x + tile_w, y + tile_h]
               for y in _starts(height, tile_h, stride) for x in _starts(width, tile_w, stride)]
    return np.asarray(windows, dtype=np.int64).reshape(-1, 4)
