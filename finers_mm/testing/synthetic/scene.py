# Copyright (c) finers_mm contributors. All rights reserved.
"""One synthetic scene: the objects, their placement, the questions naming the targets."""
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

import numpy as np

from finers_mm.structures.answers import FOUND_RESPONSE
from finers_mm.structures.masks import area_percent, polygon_bbox, rasterize_polygon
from finers_mm.structures.vocabulary import OPEN, QUESTION_TYPES, SEGMENTATION, SIZE_BUCKETS
from .render import paint_object, render_background
from .shapes import local_polygon, polygon_area, raster_window, target_polygon, unit_polygon
from .vocab import (ANNOTATION_QTYPES, ATTRIBUTES, CELL_MARGIN, COLORS, CORNERS,
                    DISTRACTOR_AREA_RANGE, DISTRACTORS_PER_MEGAPIXEL, MAX_PLACEMENT_TRIES,
                    MAX_ROTATION_DEG, MIN_DISTRACTORS, OBJECT_GAP, OPEN_HINTS, OPTION_LETTERS,
                    QUESTION_CUES, QUESTION_TEMPLATES, REFERRING_CUES, REFERRING_TEMPLATES, REGIONS,
                    SHAPES, VOCABULARY)


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
        local (np.ndarray): local polygon (see :func:`local_polygon`).
        area (tuple): continuous box ``[x1, y1, x2, y2]`` the object's box must lie in.
        occupied (list[np.ndarray]): boxes of the objects already placed.
        image_size (tuple[int, int]): (W, H).

    Returns:
        SceneObject | None: the placed object; None when it does not fit in ``area`` or touches
        another object.
    """
    width, height = raster_window(local)
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
                taken: List[Dict[str, str]], options_format: str,
                object_scale: float = 1.0) -> Tuple[SceneObject, Dict[str, str], dict]:
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
        object_scale (float): side factor of the target (see :func:`target_polygon`).

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
        local = target_polygon(rng, shape, bucket, image_size, object_scale)
        target = _place(rng, color, shape, local, area, occupied, image_size)
        if target is None:
            continue
        cues, fields = _question(rng, q_type, attribute, target, options_format)
        if not _is_ambiguous(target, cues, objects, taken):
            return target, cues, fields
    raise RuntimeError(
        f'could not place an unambiguous {bucket} target in {MAX_PLACEMENT_TRIES} tries')


def _add_distractors(rng: np.random.Generator, count: int, image_size: Tuple[int, int],
                     objects: List[SceneObject], taken: List[Dict[str, str]],
                     object_scale: float = 1.0) -> None:
    """Append up to ``count`` distractors to ``objects``, none fitting a description in ``taken``.

    Args:
        rng (np.random.Generator): random source.
        count (int): number of distractors wanted (fewer when the image is full).
        image_size (tuple[int, int]): (W, H).
        objects (list[SceneObject]): the scene's objects; extended in place.
        taken (list[dict]): cues naming the targets.
        object_scale (float): side factor of every distractor.
    """
    width, height = image_size
    log_lo, log_hi = np.log(DISTRACTOR_AREA_RANGE)
    for _ in range(count):
        for _ in range(MAX_PLACEMENT_TRIES):
            shape = SHAPES[rng.integers(len(SHAPES))]
            color = tuple(COLORS)[rng.integers(len(COLORS))]
            unit = unit_polygon(shape, rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))
            pixels = np.exp(rng.uniform(log_lo, log_hi)) / 100.0 * width * height * object_scale**2
            local = local_polygon(rng, unit, np.sqrt(pixels / polygon_area(unit)))
            occupied = [o.bbox for o in objects]
            obj = _place(rng, color, shape, local, (0, 0, width, height), occupied, image_size)
            if obj is not None and not _is_ambiguous(obj, None, objects, taken):
                objects.append(obj)
                break


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
                     options_format: str = 'list',
                     object_scale: float = 1.0,
                     region_cues: bool = True,
                     clutter: bool = True) -> SyntheticScene:
    """Draw one synthetic image and its questions, in memory.

    Args:
        rng (np.random.Generator): random source.
        image_size (tuple[int, int]): (W, H); 640x360 and up draws every size bucket.
        num_questions (int): questions (= targets) in this image.
        first_index (int): global index of the first question (see :func:`question_plan`).
        num_distractors (int, optional): distractors wanted; default
            :data:`DISTRACTORS_PER_MEGAPIXEL` per megapixel, at least :data:`MIN_DISTRACTORS`.
        options_format (str): ``'list'`` or ``'dict'`` (see :func:`_question`).
        object_scale (float): side factor of every object, targets and distractors (a size
            curriculum's easier scenes: 3 makes an XXS target of a 960 x 540 image ~27 px across;
            a scaled target's ``area_percent``, hence its size bucket, is that of its scaled
            mask). 1 draws the same scenes as before it existed.
        region_cues (bool): False words every question without naming a region of the image (a
            segmentation instruction asks for "the only {color} {shape}", a question where the
            {color} {shape} is): what the question says then never tells where the target is, so
            a model must find it in the pixels (a curriculum's first set: with region cues a tiny
            model learns to answer the named region's centre and never looks). True (default) plans
            the attributes by :func:`question_plan`.

    Returns:
        SyntheticScene: the image, the records and their ground truth.
    """
    if not object_scale > 0:
        raise ValueError(f'object_scale must be > 0, got {object_scale!r}')
    if options_format not in ('list', 'dict'):
        raise ValueError(f"options_format must be 'list' or 'dict', got {options_format!r}")
    image_size = (int(image_size[0]), int(image_size[1]))
    if num_distractors is None:
        megapixels = image_size[0] * image_size[1] / 1e6
        num_distractors = max(MIN_DISTRACTORS, round(DISTRACTORS_PER_MEGAPIXEL * megapixels))
    image = render_background(rng, image_size, clutter)
    objects: List[SceneObject] = []
    taken: List[Dict[str, str]] = []
    records = []
    for index in range(first_index, first_index + num_questions):
        q_type, bucket, attribute = question_plan(index)
        if not region_cues:  # the one attribute of each type whose wording names no region
            attribute = 'others' if q_type == SEGMENTATION else 'position'
        target, cues, fields = _add_target(rng, q_type, bucket, attribute, image_size, objects,
                                           taken, options_format, object_scale)
        objects.append(target)
        taken.append(cues)
        records.append(_record(fields, target, attribute, image_size))
    targets = list(objects)
    _add_distractors(rng, num_distractors, image_size, objects, taken, object_scale)
    for obj in objects:
        paint_object(image, obj)
    return SyntheticScene(image, records, targets, taken, objects)
