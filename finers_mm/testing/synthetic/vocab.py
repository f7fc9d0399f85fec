# Copyright (c) finers_mm contributors. All rights reserved.
"""The words, colours, shapes, templates and size ranges of the synthetic scenes."""
from typing import Dict, Tuple

from finers_mm.structures.vocabulary import QTYPE_FROM_ANNOTATION, SIZE_THRESHOLDS

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
