# Copyright (c) finers_mm contributors. All rights reserved.
"""The field checks of one FineRS-4k annotation record (rules: :mod:`finers_mm.datasets.finers4k`).

Each check returns the field in finers_mm's form or raises :class:`RecordProblem` with the reason,
the offending values and the fix; :class:`~finers_mm.datasets.FineRS4kDataset` turns it into a
``FineRSAnnotationError`` naming the file and the record.
"""
import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from mmengine.fileio import exists

from finers_mm.structures.masks import polygon_bbox
from finers_mm.structures.vocabulary import (MULTIPLE_CHOICE, QTYPE_FROM_ANNOTATION,
                                             normalize_options)
from .image_files import ImageFileError, read_image_header

#: a polygon whose vertices all lie within this distance (px) of one line is degenerate
_COLLINEAR_TOL = 1e-6
_POLYGON_HINT = 'give ONE polygon as [[x, y], [x, y], [x, y], ...] in original image pixels'


class RecordProblem(Exception):
    """Raised by the record checks; the dataset turns it into a :class:`FineRSAnnotationError`."""

    def __init__(self, reason: str, detail: str, fix: str) -> None:
        super().__init__(reason, detail, fix)
        self.reason, self.detail, self.fix = reason, detail, fix


def describe(record: dict) -> str:
    """``"image_path='x.jpg': "`` for a message, empty when unknown."""
    image_path = record.get('image_path') if isinstance(record, dict) else None
    return f'image_path={image_path!r}: ' if image_path is not None else ''


def check_required_keys(record: dict, keys: Sequence[str]) -> None:
    """Every required key present and not null."""
    missing = [key for key in keys if record.get(key) is None]
    if 'points' in missing:
        raise RecordProblem('missing polygon', 'the record has no "points"', _POLYGON_HINT)
    if missing:
        raise RecordProblem('missing key', f'keys {missing} are missing or null (the record has '
                            f'{sorted(record)})', f'add them; every record needs {list(keys)}')


def parse_image_path(image_path) -> str:
    """A non-empty string."""
    if not isinstance(image_path, str) or not image_path.strip():
        raise RecordProblem('malformed image_path', f'image_path is {image_path!r}',
                            'give the image file name relative to the images folder')
    return image_path


def parse_question(question) -> str:
    """``Q``: a non-empty string."""
    if not isinstance(question, str) or not question.strip():
        raise RecordProblem('empty question', f'Q is {question!r}',
                            'give the question text in "Q"')
    return question


def parse_answer(answer) -> str:
    """``A``: a string, or a number written as text (open questions may count things)."""
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        raise RecordProblem('malformed answer', f'A is a {type(answer).__name__}: {answer!r}',
                            'give the answer in "A" as a string')
    return str(answer)


def parse_attribute(attribute) -> str:
    """``attribute``: a string (colors / shape / position / others in the released data)."""
    if not isinstance(attribute, str):
        raise RecordProblem('malformed attribute', f'attribute is {attribute!r}',
                            'give the attribute as one string, e.g. "colors"')
    return attribute


def parse_question_type(qtype) -> str:
    """``Q-type`` -> finers_mm's question type."""
    if not isinstance(qtype, str) or qtype not in QTYPE_FROM_ANNOTATION:
        raise RecordProblem('unknown Q-type', f'Q-type is {qtype!r}',
                            f'use one of {sorted(QTYPE_FROM_ANNOTATION)}')
    return QTYPE_FROM_ANNOTATION[qtype]


def parse_options(options, question_type: str) -> Dict[str, str]:
    """``options`` -> ``{letter: text}``; a multiple-choice record must have some."""
    fix = ("give the choices as a list ['red', 'white'], a dict {'A': 'red', 'B': 'white'} or one "
           "string 'A. red B. white'")
    try:
        normalized = normalize_options(options)
    except ValueError as error:
        raise RecordProblem('malformed options', str(error), fix) from None
    if question_type == MULTIPLE_CHOICE and not normalized:
        raise RecordProblem('missing options', f'a multiple-choice record has options={options!r}',
                            fix)
    return normalized


def parse_area_percent(value) -> float:
    """``area_percent``: a finite number >= 0."""
    try:
        area = float(value)
    except (TypeError, ValueError):
        area = float('nan')
    if isinstance(value, bool) or not math.isfinite(area) or area < 0:
        raise RecordProblem('malformed area_percent', f'area_percent is {value!r}',
                            'give the mask area in percent of the image as a number >= 0')
    return area


def parse_best_region(region) -> Optional[np.ndarray]:
    """``best_region``: None when absent, else a (4,) float32 box with positive size."""
    if region is None:
        return None
    try:
        box = np.asarray(region, dtype=np.float64)
    except (TypeError, ValueError):
        box = np.empty(0)
    if box.shape != (4, ) or not np.isfinite(box).all() or box[2] <= box[0] or box[3] <= box[1]:
        raise RecordProblem('malformed best_region', f'best_region is {region!r}',
                            'give [x1, y1, x2, y2] in original pixels with x2 > x1 and y2 > y1, '
                            'or drop the key')
    return box.astype(np.float32)


def parse_polygon(points) -> np.ndarray:
    """``points`` -> (N, 2) float64 polygon with N >= 3 and non-collinear vertices."""
    if isinstance(points, (list, tuple)) and len(points) == 0:
        raise RecordProblem('missing polygon', f'points is {points!r}', _POLYGON_HINT)
    try:
        polygon = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        polygon = np.empty((0, 0))
    if polygon.ndim != 2 or polygon.shape[1] != 2 or not np.isfinite(polygon).all():
        raise RecordProblem('malformed polygon', f'points is {_shorten(points)}', _POLYGON_HINT)
    if len(polygon) < 3:
        raise RecordProblem('too few points', f'the polygon has {len(polygon)} vertices',
                            'give at least 3 vertices')
    if _collinear_width(polygon) < _COLLINEAR_TOL:
        raise RecordProblem('degenerate polygon',
                            f'all vertices lie on one line ({_shorten(points)}): zero area',
                            'redraw the object outline')
    return polygon


def _collinear_width(polygon: np.ndarray) -> float:
    """Largest distance of a vertex from the line through vertex 0 and the vertex farthest from it.

    Zero exactly when all vertices lie on one line (or coincide); robust to self-intersecting
    polygons, whose shoelace area can cancel to zero while they still cover pixels.
    """
    offsets = polygon - polygon[0]
    base = offsets[np.argmax((offsets**2).sum(axis=1))]
    length = math.hypot(base[0], base[1])
    if length == 0:
        return 0.0
    return float(np.abs(base[0] * offsets[:, 1] - base[1] * offsets[:, 0]).max() / length)


def check_inside_image(polygon: np.ndarray, height: int, width: int, tol: float) -> np.ndarray:
    """The box of the polygon's raster; raise when the polygon lies outside (see module doc)."""
    x, y = polygon[:, 0], polygon[:, 1]
    if x.min() < -tol or y.min() < -tol or x.max() > width + tol or y.max() > height + tol:
        raise RecordProblem(
            'polygon outside image',
            f'vertices span x [{x.min():.1f}, {x.max():.1f}], y [{y.min():.1f}, {y.max():.1f}] '
            f'but the image is {width}x{height} (tolerance {tol:g} px)',
            'check that image_path names the annotated image and that points are in its original '
            'pixels (not a resized frame)')
    bbox = polygon_bbox(polygon, height, width)
    if not bbox[2] > bbox[0]:
        raise RecordProblem(
            'polygon outside image', f'no pixel of the polygon\'s raster lies inside the {width}x'
            f'{height} image', 'check the points against the image')
    return bbox


def float32_keeping_raster(polygon: np.ndarray) -> np.ndarray:
    """float64 polygon -> float32 that truncates to the same integer vertices.

    Rounding to float32 can carry a coordinate just below an integer (e.g. 2047.99999) up to that
    integer, which moves the truncated raster vertex by 1 px; those coordinates are stepped back to
    the float32 just below, so ``rasterize_polygon(gt_polygon)`` is the authors' raster.
    """
    converted = polygon.astype(np.float32)
    crossed = np.trunc(converted) != np.trunc(polygon)
    converted[crossed] = np.nextafter(converted[crossed], np.float32(0))
    return converted


def read_image_size(img_path: str, backend_args: Optional[dict]) -> Tuple[int, int]:
    """(height, width) as displayed (EXIF orientation applied), from the header; no decode.

    The file must also be complete (see :mod:`finers_mm.datasets.image_files`): a truncated image
    would pass a header check and fail only when the pipeline reaches it.
    """
    if not exists(img_path, backend_args=backend_args):
        raise RecordProblem('missing image file', f'{img_path} does not exist',
                            "check data_root, data_prefix['img'] and the record's image_path")
    try:
        header = read_image_header(img_path, backend_args)
    except ImageFileError as error:
        raise RecordProblem(error.reason, f'{img_path}: {error.detail}', error.fix) from None
    return header.height, header.width


def _shorten(value, limit: int = 80) -> str:
    """repr cut to ``limit`` characters for messages."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + '...'
