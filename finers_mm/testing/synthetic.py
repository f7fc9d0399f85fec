# Copyright (c) finers_mm contributors. All rights reserved.
"""Synthetic data in exactly the FineRS-4k annotation format.

Each image is a cluttered high-resolution scene: a textured, noisy, low-saturation "ground" with
roads and roofs, many saturated distractor shapes of various colours and sizes, and a few tiny
targets. Every target answers one question that names it by two or three cues among its colour, its
shape and its region (one cell of a 3x3 grid, e.g. ``top-left``); no other object in the image
matches those cues, so the question is unambiguous. A distractor matches a region cue whenever its
box touches that cell, and a target lies well inside its cell, so position answers are unambiguous.

Records (one per question, several per image) have the authors' keys and nothing else:
``image_path``, ``Q``, ``A``, ``Q-type`` (``referring`` / ``option`` / ``reasoning``), ``options``
(multiple choice only), ``points`` (the target polygon, float vertices in original pixels),
``attribute`` (``colors``, ``shape``, ``position``, ``others``) and ``area_percent`` (of the
:func:`rasterize_polygon` mask). The target pixels in the image ARE that mask: every object is
painted through :func:`rasterize_polygon`.

What ``attribute`` means here: for a multiple-choice or open question the property asked for
(``others`` = the number of corners); for a segmentation instruction the template family
(``colors``: colour and region, ``shape``: shape and region, ``position``: colour, shape and
region, ``others``: colour and shape only, the target being the only such object in the image).

Question type, size bucket and attribute cycle over the global question index (see
:func:`question_plan`): 9 consecutive questions from a multiple of 9 hold every (type, bucket)
pair, 12 from a multiple of 12 every (type, attribute) pair. Each type and bucket is a third of the
data (FineRS-4k: 39 / 30.5 / 30.5 % types), each attribute a quarter.

Output layout of :func:`generate_synthetic_finers`::

    out_dir/
        images/<split>_000000.jpg ...
        annotations/<split>.json      {"annotations": [record, ...]}

Everything is a function of ``(seed, image index)``: the same seed gives byte-identical JSON and
identical images.
"""
import json
import os.path as osp
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.utils import ProgressBar, mkdir_or_exist

from finers_mm.structures.answers import FOUND_RESPONSE
from finers_mm.structures.masks import area_percent, polygon_bbox, rasterize_polygon
from finers_mm.structures.vocabulary import (OPEN, QTYPE_FROM_ANNOTATION, QUESTION_TYPES,
                                             SEGMENTATION, SIZE_BUCKETS, SIZE_THRESHOLDS,
                                             size_bucket)
from finers_mm.utils.fileio import write_atomic

#: object colour name -> RGB. Saturated and far apart in hue so JPEG keeps them apart; each has a
#: channel outside the background's value range, so no background pixel equals an object colour.
COLORS: Dict[str, Tuple[int, int, int]] = {
    'red': (235, 30, 30),
    'orange': (255, 140, 0),
    'yellow': (255, 225, 0),
    'green': (20, 190, 40),
    'cyan': (0, 215, 230),
    'blue': (25, 60, 240),
    'purple': (140, 30, 230),
    'magenta': (240, 0, 200),
}
SHAPES = ('triangle', 'square', 'diamond', 'pentagon', 'hexagon', 'circle', 'star')
#: shapes with a well-defined number of corners (asked by ``others`` questions)
CORNERS = {'triangle': 3, 'square': 4, 'diamond': 4, 'pentagon': 5, 'hexagon': 6}
#: 3x3 grid of regions, row-major from the top-left
REGIONS = ('top-left', 'top-center', 'top-right', 'middle-left', 'center', 'middle-right',
           'bottom-left', 'bottom-center', 'bottom-right')
ATTRIBUTES = ('colors', 'shape', 'position', 'others')
ANNOTATION_QTYPES = {ours: theirs for theirs, ours in QTYPE_FROM_ANNOTATION.items()}

#: cues naming the target of a segmentation instruction, and its wording, per attribute
REFERRING_CUES = {
    'colors': ('color', 'region'),
    'shape': ('shape', 'region'),
    'position': ('color', 'shape', 'region'),
    'others': ('color', 'shape'),
}
REFERRING_TEMPLATES = {
    'colors': 'Please segment the {color} object in the {region} part of the image.',
    'shape': 'Please segment the {shape} in the {region} part of the image.',
    'position': 'Please segment the {color} {shape} in the {region} part of the image.',
    'others': 'Please segment the only {color} {shape} in the image.',
}
#: cues naming the target of a question asking for ``attribute``, and its wording
QUESTION_CUES = {
    'colors': ('shape', 'region'),
    'shape': ('color', 'region'),
    'position': ('color', 'shape'),
    'others': ('color', 'region'),
}
QUESTION_TEMPLATES = {
    'colors': 'What color is the {shape} in the {region} part of the image?',
    'shape': 'What shape is the {color} object in the {region} part of the image?',
    'position': 'In which part of the image is the {color} {shape}?',
    'others': 'How many corners does the {color} object in the {region} part of the image have?',
}
#: what an open question adds so that its short answer has a known vocabulary
OPEN_HINTS = {
    'colors': ' Answer with one color.',
    'shape': ' Answer with one shape.',
    'position': ' Answer with one of: ' + ', '.join(REGIONS) + '.',
    'others': ' Answer with a number.',
}
#: every possible answer per asked attribute (multiple-choice options are drawn from it)
VOCABULARY = {
    'colors': tuple(COLORS),
    'shape': SHAPES,
    'position': REGIONS,
    'others': tuple(str(n) for n in sorted(set(CORNERS.values()))),
}
OPTION_LETTERS = 'ABCD'

#: target area range per size bucket (percent of the image), kept clear of the bucket thresholds
BUCKET_AREA_RANGES = {
    'XXS': (0.45 * SIZE_THRESHOLDS['xxs_max'], 0.85 * SIZE_THRESHOLDS['xxs_max']),
    'XS': (1.15 * SIZE_THRESHOLDS['xxs_max'], 0.85 * SIZE_THRESHOLDS['s_min']),
    'S': (1.2 * SIZE_THRESHOLDS['s_min'], 2.5 * SIZE_THRESHOLDS['s_min']),
}
#: distractor area range in percent of the image (log-uniform): from XXS to large S
DISTRACTOR_AREA_RANGE = (0.4 * SIZE_THRESHOLDS['xxs_max'], 4.0 * SIZE_THRESHOLDS['s_min'])
DISTRACTORS_PER_MEGAPIXEL = 30
ROOFS_PER_MEGAPIXEL = 40
MIN_DISTRACTORS = 20
MAX_ROTATION_DEG = 10.0
#: a target's box stays this fraction of its cell away from the cell's borders
CELL_MARGIN = 0.15
#: empty pixels kept around every object's box (no two objects touch, even after JPEG)
OBJECT_GAP = 3
#: polygon vertices per shape (a circle is a 32-gon; a star has 5 outer and 5 inner vertices)
VERTEX_COUNTS = {
    'triangle': 3, 'square': 4, 'diamond': 4, 'pentagon': 5, 'hexagon': 6, 'circle': 32, 'star': 10
}
STAR_INNER_RATIO = 0.45
DIAMOND_ASPECT = 0.7
BACKGROUND_RANGE = (40, 215)
BACKGROUND_NOISE_STD = 5.0
GROUND_COLORS = ((92, 104, 76), (128, 116, 98), (112, 112, 108), (74, 84, 70))
MAX_SIZING_STEPS = 12
MAX_PLACEMENT_TRIES = 200


@dataclass(eq=False)
class SceneObject:
    """One painted object: the cues it can be named by (colour, shape, regions) and its polygon.

    Attributes:
        color (str): key of :data:`COLORS`.
        shape (str): one of :data:`SHAPES`.
        points (np.ndarray): (N, 2) float64 polygon in original pixels, rounded to 2 decimals.
        bbox (np.ndarray): box of the polygon's raster, mmdet continuous ``[x1, y1, x2, y2]``.
        regions (frozenset): the 3x3 regions the box touches (one for a target).
    """
    color: str
    shape: str
    points: np.ndarray
    bbox: np.ndarray
    regions: FrozenSet[str]

    def matches(self, cues: Dict[str, str]) -> bool:
        """Whether a description by ``cues`` (``color`` / ``shape`` / ``region`` -> value) fits."""
        return all(
            value in self.regions if key == 'region' else getattr(self, key) == value
            for key, value in cues.items())

    def value(self, attribute: str) -> str:
        """The answer to a question asking for ``attribute`` about this object (a target)."""
        if attribute == 'colors':
            return self.color
        if attribute == 'shape':
            return self.shape
        if attribute == 'position':
            (region, ) = self.regions
            return region
        return str(CORNERS[self.shape])


@dataclass(eq=False)
class SyntheticScene:
    """One synthetic image with its records and the ground truth behind them.

    Attributes:
        image (np.ndarray): (H, W, 3) uint8 RGB.
        records (list[dict]): FineRS-4k records, ``image_path`` still empty.
        targets (list[SceneObject]): the target of each record.
        cues (list[dict]): the cues naming each record's target.
        objects (list[SceneObject]): every painted object, targets included.
    """
    image: np.ndarray
    records: List[dict]
    targets: List[SceneObject]
    cues: List[Dict[str, str]]
    objects: List[SceneObject]


def question_plan(index: int) -> Tuple[str, str, str]:
    """Question type, size bucket and attribute of the global question ``index``.

    Type ``i % 3``, bucket ``(i + i // 3) % 3`` (a Latin square over 9 questions), attribute
    ``i // 3 % 4``.

    Args:
        index (int): question index over the whole generated set.

    Returns:
        tuple[str, str, str]: finers_mm question type, size bucket and attribute.
    """
    return (QUESTION_TYPES[index % 3], SIZE_BUCKETS[(index + index // 3) % 3],
            ATTRIBUTES[index // 3 % len(ATTRIBUTES)])


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


def _local_polygon(rng: np.random.Generator, unit: np.ndarray, scale: float) -> np.ndarray:
    """Scale a unit polygon and move it to a local frame: its minimum lies in the pixel (0, 0), at a
    random sub-pixel phase; vertices rounded to 2 decimals."""
    vertices = unit * scale
    vertices = vertices - vertices.min(axis=0) + rng.random(2)
    return np.round(vertices, 2)


def _window(local: np.ndarray) -> Tuple[int, int]:
    """Width and height of the smallest window at the origin holding a local polygon's raster."""
    extent = np.floor(local.max(axis=0)).astype(int) + 1
    return int(extent[0]), int(extent[1])


def _raster_pixels(local: np.ndarray) -> int:
    """Number of pixels of a local polygon's :func:`rasterize_polygon` mask (placement-invariant for
    integer shifts of a polygon with non-negative vertices)."""
    width, height = _window(local)
    return int(rasterize_polygon(local, height, width).sum())


def target_polygon(rng: np.random.Generator, shape: str, bucket: str, image_size: Tuple[int, int]
                  ) -> np.ndarray:
    """A target polygon whose :func:`rasterize_polygon` area falls in ``bucket`` at ``image_size``.

    The polygon is local (see :func:`_local_polygon`); its raster area does not change when it is
    moved by whole pixels.

    Args:
        rng (np.random.Generator): random source.
        shape (str): one of :data:`SHAPES`.
        bucket (str): ``'S'``, ``'XS'`` or ``'XXS'``.
        image_size (tuple[int, int]): (W, H).

    Returns:
        np.ndarray: (N, 2) local polygon (see :func:`_local_polygon`).

    Raises:
        ValueError: the image is too small to draw a target of that bucket.
    """
    image_pixels = image_size[0] * image_size[1]
    wanted = rng.uniform(*BUCKET_AREA_RANGES[bucket])
    unit = unit_polygon(shape, rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))
    scale = np.sqrt(wanted / 100.0 * image_pixels / polygon_area(unit))
    for _ in range(MAX_SIZING_STEPS):
        local = _local_polygon(rng, unit, scale)
        percent = _raster_pixels(local) * 100.0 / image_pixels
        if size_bucket(percent) == bucket:
            return local
        scale *= np.sqrt(wanted / percent)
    raise ValueError(f'cannot draw a {bucket} {shape} in a {image_size[0]}x{image_size[1]} image; '
                     'use a larger image')


def region_boxes(image_size: Tuple[int, int]) -> Dict[str, Tuple[float, float, float, float]]:
    """The continuous boxes ``[x1, y1, x2, y2]`` of the 3x3 regions.

    Args:
        image_size (tuple[int, int]): (W, H).

    Returns:
        dict: region name -> box.
    """
    width, height = image_size
    boxes = {}
    for index, name in enumerate(REGIONS):
        row, col = divmod(index, 3)
        boxes[name] = (col * width / 3, row * height / 3, (col + 1) * width / 3,
                       (row + 1) * height / 3)
    return boxes


def _touched_regions(bbox: np.ndarray, image_size: Tuple[int, int]) -> FrozenSet[str]:
    """The regions whose box overlaps ``bbox`` (a distractor may be described by any of them)."""
    return frozenset(
        name for name, (x1, y1, x2, y2) in region_boxes(image_size).items()
        if bbox[0] < x2 and bbox[2] > x1 and bbox[1] < y2 and bbox[3] > y1)


def _place(rng: np.random.Generator, color: str, shape: str, local: np.ndarray,
           area: Tuple[float, float, float, float], occupied: List[np.ndarray],
           image_size: Tuple[int, int]) -> Optional[SceneObject]:
    """Shift a local polygon by a random whole-pixel offset so that its raster lies in ``area``.

    Args:
        rng (np.random.Generator): random source.
        color (str): the object's colour name.
        shape (str): the object's shape name.
        local (np.ndarray): local polygon (see :func:`_local_polygon`).
        area (tuple): continuous box ``[x1, y1, x2, y2]`` the object's box must lie in.
        occupied (list[np.ndarray]): boxes of the objects already placed.
        image_size (tuple[int, int]): (W, H).

    Returns:
        SceneObject | None: the placed object; None when it does not fit in ``area`` or touches
        another object.
    """
    width, height = _window(local)
    x_lo, y_lo = int(np.ceil(area[0])), int(np.ceil(area[1]))
    x_hi, y_hi = int(np.floor(area[2])) - width, int(np.floor(area[3])) - height
    if x_hi < x_lo or y_hi < y_lo:
        return None
    offset = np.array([rng.integers(x_lo, x_hi + 1), rng.integers(y_lo, y_hi + 1)])
    points = np.round(local + offset, 2)
    bbox = polygon_bbox(points, image_size[1], image_size[0])
    if any(_boxes_touch(bbox, other) for other in occupied):
        return None
    return SceneObject(color, shape, points, bbox, _touched_regions(bbox, image_size))


def _boxes_touch(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two boxes come closer than :data:`OBJECT_GAP` pixels."""
    return bool(a[0] < b[2] + OBJECT_GAP and b[0] < a[2] + OBJECT_GAP
                and a[1] < b[3] + OBJECT_GAP and b[1] < a[3] + OBJECT_GAP)


def _inner_box(box: Tuple[float, float, float, float]) -> Tuple[float, float, float, float]:
    """``box`` shrunk by :data:`CELL_MARGIN` of its size on every side."""
    dx, dy = CELL_MARGIN * (box[2] - box[0]), CELL_MARGIN * (box[3] - box[1])
    return box[0] + dx, box[1] + dy, box[2] - dx, box[3] - dy


def _cues(obj: SceneObject, names: Sequence[str]) -> Dict[str, str]:
    """The values of the cue ``names`` for a target (its one region for ``region``)."""
    return {
        name: obj.value('position') if name == 'region' else getattr(obj, name)
        for name in names
    }


def _is_ambiguous(obj: SceneObject, cues: Optional[Dict[str, str]], objects: List[SceneObject],
                  taken: List[Dict[str, str]]) -> bool:
    """Whether adding ``obj`` (named by ``cues``, None for a distractor) breaks uniqueness.

    Args:
        obj (SceneObject): candidate object.
        cues (dict | None): the cues that will name ``obj``; None for a distractor.
        objects (list[SceneObject]): objects already in the scene.
        taken (list[dict]): cues naming the targets already in the scene.

    Returns:
        bool: True when ``obj`` fits a description already in use, or another object fits ``cues``.
    """
    if any(obj.matches(other) for other in taken):
        return True
    return cues is not None and any(other.matches(cues) for other in objects)


def _question(rng: np.random.Generator, q_type: str, attribute: str, target: SceneObject,
              options_format: str) -> Tuple[Dict[str, str], dict]:
    """Cues and text fields (``Q``, ``A``, ``Q-type``, ``options``) of a question on ``target``.

    Args:
        rng (np.random.Generator): random source.
        q_type (str): finers_mm question type.
        attribute (str): one of :data:`ATTRIBUTES`.
        target (SceneObject): the placed target.
        options_format (str): ``'list'`` (``['A. red', ...]``) or ``'dict'``
            (``{'A': 'red', ...}``).

    Returns:
        tuple[dict, dict]: the cues and the text fields.
    """
    if q_type == SEGMENTATION:
        cues = _cues(target, REFERRING_CUES[attribute])
        return cues, {'Q': REFERRING_TEMPLATES[attribute].format(**cues), 'A': FOUND_RESPONSE,
                      'Q-type': ANNOTATION_QTYPES[q_type]}
    cues = _cues(target, QUESTION_CUES[attribute])
    question = QUESTION_TEMPLATES[attribute].format(**cues)
    answer = target.value(attribute)
    if q_type == OPEN:
        return cues, {'Q': question + OPEN_HINTS[attribute], 'A': answer,
                      'Q-type': ANNOTATION_QTYPES[q_type]}
    wrong = [v for v in VOCABULARY[attribute] if v != answer]
    picked = rng.choice(len(wrong), len(OPTION_LETTERS) - 1, replace=False)
    texts = [answer] + [wrong[i] for i in picked]
    texts = [texts[i] for i in rng.permutation(len(texts))]
    letter = OPTION_LETTERS[texts.index(answer)]
    if options_format == 'dict':
        options = dict(zip(OPTION_LETTERS, texts))
    else:
        options = [f'{k}. {t}' for k, t in zip(OPTION_LETTERS, texts)]
    return cues, {
        'Q': question, 'A': letter, 'Q-type': ANNOTATION_QTYPES[q_type], 'options': options
    }


def _add_target(rng: np.random.Generator, q_type: str, bucket: str, attribute: str,
                image_size: Tuple[int, int], objects: List[SceneObject],
                taken: List[Dict[str, str]],
                options_format: str) -> Tuple[SceneObject, Dict[str, str], dict]:
    """Draw a target and its question such that the question names it and nothing else.

    Args:
        rng (np.random.Generator): random source.
        q_type (str): finers_mm question type.
        bucket (str): size bucket of the target.
        attribute (str): one of :data:`ATTRIBUTES`.
        image_size (tuple[int, int]): (W, H).
        objects (list[SceneObject]): objects already in the scene.
        taken (list[dict]): cues naming the targets already in the scene.
        options_format (str): see :func:`_question`.

    Returns:
        tuple: the target, its cues and its text fields.

    Raises:
        RuntimeError: no unambiguous target could be placed.
    """
    regions = region_boxes(image_size)
    occupied = [o.bbox for o in objects]
    shapes = tuple(CORNERS) if q_type != SEGMENTATION and attribute == 'others' else SHAPES
    for _ in range(MAX_PLACEMENT_TRIES):
        color = tuple(COLORS)[rng.integers(len(COLORS))]
        shape = shapes[rng.integers(len(shapes))]
        area = _inner_box(regions[REGIONS[rng.integers(len(REGIONS))]])
        local = target_polygon(rng, shape, bucket, image_size)
        target = _place(rng, color, shape, local, area, occupied, image_size)
        if target is None:
            continue
        cues, fields = _question(rng, q_type, attribute, target, options_format)
        if not _is_ambiguous(target, cues, objects, taken):
            return target, cues, fields
    raise RuntimeError(
        f'could not place an unambiguous {bucket} target in {MAX_PLACEMENT_TRIES} tries')


def _add_distractors(rng: np.random.Generator, count: int, image_size: Tuple[int, int],
                     objects: List[SceneObject], taken: List[Dict[str, str]]) -> None:
    """Append up to ``count`` distractors to ``objects``, none fitting a description in ``taken``.

    Args:
        rng (np.random.Generator): random source.
        count (int): number of distractors wanted (fewer when the image is full).
        image_size (tuple[int, int]): (W, H).
        objects (list[SceneObject]): the scene's objects; extended in place.
        taken (list[dict]): cues naming the targets.
    """
    width, height = image_size
    log_lo, log_hi = np.log(DISTRACTOR_AREA_RANGE)
    for _ in range(count):
        for _ in range(MAX_PLACEMENT_TRIES):
            shape = SHAPES[rng.integers(len(SHAPES))]
            color = tuple(COLORS)[rng.integers(len(COLORS))]
            unit = unit_polygon(shape, rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))
            pixels = np.exp(rng.uniform(log_lo, log_hi)) / 100.0 * width * height
            local = _local_polygon(rng, unit, np.sqrt(pixels / polygon_area(unit)))
            occupied = [o.bbox for o in objects]
            obj = _place(rng, color, shape, local, (0, 0, width, height), occupied, image_size)
            if obj is not None and not _is_ambiguous(obj, None, objects, taken):
                objects.append(obj)
                break


def _value_noise(rng: np.random.Generator, image_size: Tuple[int, int], cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a random ``cells``-wide grid, bicubically upsampled to (H, W)."""
    width, height = image_size
    rows = max(2, int(round(cells * height / width)))
    grid = rng.random((rows, cells)).astype(np.float32)
    return np.clip(cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def render_background(rng: np.random.Generator, image_size: Tuple[int, int]) -> np.ndarray:
    """A UAV-like ground: blended low-saturation terrain, roads and roofs, with pixel noise.

    All values stay in :data:`BACKGROUND_RANGE`, so no background pixel equals an object colour.

    Args:
        rng (np.random.Generator): random source.
        image_size (tuple[int, int]): (W, H).

    Returns:
        np.ndarray: (H, W, 3) uint8 RGB.
    """
    ground = np.asarray(GROUND_COLORS, dtype=np.float32)
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


def paint_object(image: np.ndarray, obj: SceneObject) -> None:
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


def _record(fields: dict, target: SceneObject, attribute: str,
            image_size: Tuple[int, int]) -> dict:
    """A FineRS-4k record (``image_path`` empty) in the authors' key order."""
    mask = rasterize_polygon(target.points, image_size[1], image_size[0])
    record = {'image_path': '', 'Q': fields['Q'], 'A': fields['A'], 'Q-type': fields['Q-type']}
    if 'options' in fields:
        record['options'] = fields['options']
    record['points'] = [[float(x), float(y)] for x, y in target.points]
    record['attribute'] = attribute
    record['area_percent'] = area_percent(mask)
    return record


def synthesize_scene(rng: np.random.Generator,
                     image_size: Tuple[int, int] = (1920, 1080),
                     num_questions: int = 3,
                     first_index: int = 0,
                     num_distractors: Optional[int] = None,
                     options_format: str = 'list') -> SyntheticScene:
    """Draw one synthetic image and its questions, in memory.

    Args:
        rng (np.random.Generator): random source.
        image_size (tuple[int, int]): (W, H); 640x360 and up draws every size bucket.
        num_questions (int): questions (= targets) in this image.
        first_index (int): global index of the first question (see :func:`question_plan`).
        num_distractors (int, optional): distractors wanted; default
            :data:`DISTRACTORS_PER_MEGAPIXEL` per megapixel, at least :data:`MIN_DISTRACTORS`.
        options_format (str): ``'list'`` or ``'dict'`` (see :func:`_question`).

    Returns:
        SyntheticScene: the image, the records and their ground truth.
    """
    if options_format not in ('list', 'dict'):
        raise ValueError(f"options_format must be 'list' or 'dict', got {options_format!r}")
    image_size = (int(image_size[0]), int(image_size[1]))
    if num_distractors is None:
        megapixels = image_size[0] * image_size[1] / 1e6
        num_distractors = max(MIN_DISTRACTORS, round(DISTRACTORS_PER_MEGAPIXEL * megapixels))
    image = render_background(rng, image_size)
    objects: List[SceneObject] = []
    taken: List[Dict[str, str]] = []
    records = []
    for index in range(first_index, first_index + num_questions):
        q_type, bucket, attribute = question_plan(index)
        target, cues, fields = _add_target(rng, q_type, bucket, attribute, image_size, objects,
                                           taken, options_format)
        objects.append(target)
        taken.append(cues)
        records.append(_record(fields, target, attribute, image_size))
    targets = list(objects)
    _add_distractors(rng, num_distractors, image_size, objects, taken)
    for obj in objects:
        paint_object(image, obj)
    return SyntheticScene(image, records, targets, taken, objects)


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


def generate_synthetic_finers(out_dir: str,
                              num_images: int,
                              image_size: Tuple[int, int] = (1920, 1080),
                              questions_per_image: int = 3,
                              seed: int = 0,
                              split: str = 'train',
                              image_format: str = 'jpg',
                              jpeg_quality: int = 90,
                              options_format: str = 'list',
                              num_distractors: Optional[int] = None,
                              show_progress: bool = True) -> str:
    """Write a synthetic data set in the FineRS-4k layout and annotation format.

    Image ``i`` depends only on ``(seed, i)``; files are written atomically (temporary file, then
    ``os.replace``), the annotation JSON last.

    Args:
        out_dir (str): output folder; ``images/`` and ``annotations/`` are created in it.
        num_images (int): number of images.
        image_size (tuple[int, int]): (W, H) of every image, e.g. (3840, 2160).
        questions_per_image (int): records (= targets) per image.
        seed (int): random seed.
        split (str): name of the annotation file and prefix of the image names.
        image_format (str): ``'jpg'`` or ``'png'`` (lossless: image pixels equal the masks exactly).
        jpeg_quality (int): JPEG quality.
        options_format (str): ``'list'`` (``['A. red', ...]``) or ``'dict'``
            (``{'A': 'red', ...}``).
        num_distractors (int, optional): distractors per image (see :func:`synthesize_scene`).
        show_progress (bool): show an mmengine progress bar.

    Returns:
        str: path of the annotation JSON (``out_dir/annotations/<split>.json``).
    """
    image_dir, ann_dir = osp.join(out_dir, 'images'), osp.join(out_dir, 'annotations')
    mkdir_or_exist(image_dir)
    mkdir_or_exist(ann_dir)
    progress = ProgressBar(num_images) if show_progress else None
    records = []
    for index in range(num_images):
        scene = synthesize_scene(
            np.random.default_rng([seed, index]), image_size, questions_per_image,
            index * questions_per_image, num_distractors, options_format)
        name = f'{split}_{index:06d}.{image_format}'
        data = encode_image(scene.image, image_format, jpeg_quality)
        write_atomic(osp.join(image_dir, name), data)
        for record in scene.records:
            record['image_path'] = name
            records.append(record)
        if progress is not None:
            progress.update()
    ann_file = osp.join(ann_dir, f'{split}.json')
    text = json.dumps({'annotations': records}, indent=2, ensure_ascii=False) + '\n'
    write_atomic(ann_file, text.encode('utf-8'))
    return ann_file
