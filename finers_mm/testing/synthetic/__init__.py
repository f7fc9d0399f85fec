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
from typing import Optional, Tuple

import numpy as np
from mmengine.utils import ProgressBar, mkdir_or_exist

from finers_mm.utils.fileio import write_atomic
from .render import encode_image, paint_object, render_background
from .scene import SceneObject, SyntheticScene, question_plan, region_boxes, synthesize_scene
from .shapes import polygon_area, target_polygon, unit_polygon
from .vocab import (ANNOTATION_QTYPES, ATTRIBUTES, BUCKET_AREA_RANGES, COLORS, CORNERS,
                    DISTRACTOR_AREA_RANGE, DISTRACTORS_PER_MEGAPIXEL, MIN_DISTRACTORS, OBJECT_GAP,
                    OPEN_HINTS, OPTION_LETTERS, QUESTION_CUES, QUESTION_TEMPLATES, REFERRING_CUES,
                    REFERRING_TEMPLATES, REGIONS, SHAPES, VOCABULARY)

__all__ = [
    'generate_synthetic_finers', 'synthesize_scene', 'SceneObject', 'SyntheticScene',
    'question_plan', 'region_boxes', 'target_polygon', 'unit_polygon', 'polygon_area',
    'render_background', 'paint_object', 'encode_image', 'ANNOTATION_QTYPES', 'ATTRIBUTES',
    'BUCKET_AREA_RANGES', 'COLORS', 'CORNERS', 'DISTRACTOR_AREA_RANGE',
    'DISTRACTORS_PER_MEGAPIXEL', 'MIN_DISTRACTORS', 'OBJECT_GAP', 'OPEN_HINTS', 'OPTION_LETTERS',
    'QUESTION_CUES', 'QUESTION_TEMPLATES', 'REFERRING_CUES', 'REFERRING_TEMPLATES', 'REGIONS',
    'SHAPES', 'VOCABULARY'
]


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
                              show_progress: bool = True,
                              object_scale: float = 1.0,
                              region_cues: bool = True,
                              clutter: bool = True) -> str:
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
        object_scale (float): side factor of every object (see :func:`synthesize_scene`).
        region_cues (bool): False: no question names a region (see :func:`synthesize_scene`).
        clutter (bool): False: a plain ground without roads or roofs (see
            :func:`synthesize_scene`).

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
            index * questions_per_image, num_distractors, options_format, object_scale,
            region_cues, clutter)
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
