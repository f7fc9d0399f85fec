# Copyright (c) finers_mm contributors. All rights reserved.
"""Ground-truth points for the refiner (LPR): ``points_1`` and ``points_2`` of its answer.

Three rules (METHOD.md, "Rewards"):

- ``inscribed_circle_points`` (default, what the paper's prompt asks for): the centres of the two
  largest inscribed circles of the mask.
- ``authors_jitter_points`` (what the authors' data converters wrote, exactly): the box centre, and
  the box centre moved by a random integer of up to a tenth of the box per axis.
- ``box_center_jitter_points``: both points at the box centre plus a continuous jitter of a
  chosen fraction of the half-size (a smoother variant of the authors' rule, not theirs).

Frames: everything here is in ORIGINAL pixels with the continuous convention of
:mod:`finers_mm.structures.frames` (pixel ``(i, j)``'s centre is ``(i + 0.5, j + 0.5)``), so the
points map to the explorer and refiner frames with the same functions as boxes.
"""
import cv2
import numpy as np

from .masks import mask_bbox


def _distance_maximum(mask: np.ndarray):
    """Row-major first maximum of the Euclidean distance transform of a (h, w) uint8 mask.

    Pixels outside ``mask``'s array count as background (the mask is padded with zeros first).
    The exact distance to the nearest background pixel is the square root of an integer, but
    ``cv2.distanceTransform`` returns it in float32 whose last bits differ between runs (its SIMD
    path depends on memory alignment), so two tied maxima would swap from run to run. The
    squared distances are therefore rounded back to their integers and compared exactly.

    Returns:
        tuple: ``(row, col, squared distance)`` (an int; 0 when the mask is empty).
    """
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    squared = np.rint(distance.astype(np.float64)**2).astype(np.int64)
    row, col = np.unravel_index(int(np.argmax(squared)), squared.shape)
    return int(row), int(col), int(squared[row, col])


def inscribed_circle_points(mask: np.ndarray) -> np.ndarray:
    """Centres of the two largest inscribed circles of a mask.

    Rule (``cv2.distanceTransform``, exact Euclidean, outside the image counts as background):

    1. the first centre is the pixel of largest distance to the background (the first such pixel in
       row-major order on ties); that distance ``r`` is the circle's radius;
    2. the pixels closer than ``r`` to the first centre (the first circle's disk) are removed from
       the mask, and the second centre is the largest-distance pixel of what remains, by the same
       rule;
    3. when nothing remains (the mask is no bigger than one disk, e.g. a pixel or two), the second
       point repeats the first, so two points inside the mask always come back.

    On a mask of two disjoint disks the points are the two disks' centres, larger disk first.

    Args:
        mask (np.ndarray): (H, W) bool or 0/1 mask in ORIGINAL pixels, not empty.

    Returns:
        np.ndarray: (2, 2) float32 ``[[x1, y1], [x2, y2]]``, pixel centres in ORIGINAL pixels (each
        point's pixel ``(floor(x), floor(y))`` is in the mask).

    Raises:
        ValueError: the mask is empty.
    """
    x1, y1, x2, y2 = (int(v) for v in mask_bbox(mask))
    if x2 == 0:
        raise ValueError('inscribed_circle_points needs a non-empty mask')
    crop = np.ascontiguousarray(mask[y1:y2, x1:x2], dtype=np.uint8)
    row, col, squared_radius = _distance_maximum(crop)
    centres = [(col, row)]
    rows, cols = np.ogrid[:crop.shape[0], :crop.shape[1]]
    crop[(rows - row)**2 + (cols - col)**2 < squared_radius] = 0
    if crop.any():
        row, col, _ = _distance_maximum(crop)
    centres.append((col, row))
    return np.array(centres, dtype=np.float32) + np.array([x1 + 0.5, y1 + 0.5], dtype=np.float32)


def authors_jitter_points(box, rng: np.random.Generator) -> np.ndarray:
    """The GT points of the authors' data converters, integer arithmetic and all.

    Their ``get_solution_from_box_ref_seg`` (``data_process/data_converter_fixed_512_gt_crop_
    random_region.py``, the LPR's training data; the same function in ``data_converter_fixed_1920_
    qa_with_best_region.py``) on the inclusive integer box ``[xmin, ymin, xmax, ymax]`` (the extent
    of the GT raster):

    - point 1: ``(cx, cy) = ((xmin + xmax) // 2, (ymin + ymax) // 2)``, the centre rounded down;
    - point 2: ``(clip(cx + randint(-dx, dx), xmin, xmax), clip(cy + randint(-dy, dy), ymin,
      ymax))`` with ``dx = (xmax - xmin) // 10``, ``dy = (ymax - ymin) // 10``; both ends of
      ``randint`` included, x drawn before y. The clip never acts (``dx`` is under half the box).

    Frame: for the LPR they compute this in the 512 x 512 crop cut at ORIGINAL scale (never
    resized), whose corner is an integer; floor division commutes with an integer shift, so the
    points computed here in ORIGINAL pixels are theirs exactly, shifted by the crop's corner.
    (The 1920 converter computes them on the explorer-frame box truncated with ``int()``, but the
    GSE reward never reads points.)

    Their points are pixel indices; here each becomes that pixel's centre, ``(px + 0.5, py +
    0.5)``, in this module's continuous convention (the same pixels; as for boxes, fix (b) of
    ``finers_mm.structures.protocols.AUTHORS_FIXES``). Their draws come from Python's unseeded
    ``random``; here from ``rng``, so a sample gets the same points in every run.

    Args:
        box: (4,) ``[x1, y1, x2, y2]`` in ORIGINAL pixels (continuous, ``x2 = xmax + 1``); the
            inclusive pixel extent ``[floor(x1), floor(y1), ceil(x2) - 1, ceil(y2) - 1]`` is used.
        rng (np.random.Generator): the only source of randomness (two draws).

    Returns:
        np.ndarray: (2, 2) float32 ``[[cx + 0.5, cy + 0.5], [px + 0.5, py + 0.5]]`` in ORIGINAL
        pixels.

    Raises:
        ValueError: a box without a pixel (e.g. the all-zero box of a target outside the image).
    """
    values = np.asarray(box, dtype=np.float64)
    if values.shape != (4,) or not np.isfinite(values).all():
        raise ValueError(f'authors_jitter_points needs 4 finite numbers, got {box!r}')
    low = np.floor(values[:2]).astype(np.int64)
    high = np.ceil(values[2:]).astype(np.int64) - 1  # inclusive last pixel
    if (high < low).any():
        raise ValueError(f'authors_jitter_points needs a box with a pixel, got {values.tolist()}')
    centre = (low + high) // 2
    reach = (high - low) // 10
    # one draw per axis, x first: random.randint(-dx, dx) then random.randint(-dy, dy)
    offsets = np.array([rng.integers(-r, r + 1) for r in reach], dtype=np.int64)
    moved = np.clip(centre + offsets, low, high)
    return np.stack([centre, moved]).astype(np.float32) + np.float32(0.5)


def box_center_jitter_points(box, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """Two points at the box centre, each moved by an independent uniform jitter.

    A continuous variant of the authors' rule (:func:`authors_jitter_points` is theirs exactly).

    Each point is ``centre + u * jitter * (w / 2, h / 2)`` with ``u`` uniform in ``[-1, 1]`` per
    axis, so the jitter is a fraction of the box's half-size (tiny objects keep their points on the
    object) and the points stay inside the box for ``jitter <= 1``.

    Args:
        box: (4,) ``[x1, y1, x2, y2]`` in ORIGINAL pixels (continuous, ``x2 = xmax + 1``).
        jitter (float): largest offset as a fraction of the box's half-size, >= 0.
        rng (np.random.Generator): the only source of randomness.

    Returns:
        np.ndarray: (2, 2) float32 ``[[x1, y1], [x2, y2]]`` in ORIGINAL pixels.
    """
    if jitter < 0:
        raise ValueError(f'jitter must be >= 0, got {jitter}')
    x1, y1, x2, y2 = (float(v) for v in box)
    centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
    half = np.array([(x2 - x1) / 2, (y2 - y1) / 2])
    offsets = rng.uniform(-1.0, 1.0, size=(2, 2)) * jitter * half
    return (centre + offsets).astype(np.float32)
