# Copyright (c) finers_mm contributors. All rights reserved.
"""The words FineRS data, prompts, parsing, rewards and metrics share (pure, no models).

- the two stages: ``'explorer'`` (GSE, global semantic exploration) and ``'refiner'`` (LPR,
  localized perceptual refinement);
- question types, and the annotation JSON's names for them (the authors' ``Q-type`` values;
  finers_mm uses descriptive ones everywhere else and this module is the only place that maps
  between them);
- multiple-choice options in any form the released data holds;
- size buckets by ``area_percent``;
- the one object category of the detection view (mmdet metainfo, COCO export).
"""
import re
import string
from typing import Dict, Union

EXPLORER = 'explorer'
REFINER = 'refiner'
STAGES = (EXPLORER, REFINER)

#: the single category of FineRS's detection view (``classes`` of the dataset, COCO category)
CATEGORY_NAME = 'object'

SEGMENTATION = 'segmentation'
MULTIPLE_CHOICE = 'multiple_choice'
OPEN = 'open'
QUESTION_TYPES = (SEGMENTATION, MULTIPLE_CHOICE, OPEN)

#: the annotation's ``Q-type`` value -> finers_mm's question type
QTYPE_FROM_ANNOTATION: Dict[str, str] = {
    'referring': SEGMENTATION,
    'option': MULTIPLE_CHOICE,
    'reasoning': OPEN,
}

#: default size-bucket thresholds on ``area_percent`` (METHOD.md): S > 0.055, XXS < 0.017, XS otherwise
SIZE_THRESHOLDS = dict(s_min=0.055, xxs_max=0.017)
SIZE_BUCKETS = ('S', 'XS', 'XXS')


def check_stage(stage: str) -> str:
    """Return ``stage`` if it names a FineRS stage.

    Args:
        stage (str): ``'explorer'`` (GSE) or ``'refiner'`` (LPR).

    Returns:
        str: ``stage``.

    Raises:
        ValueError: any other value.
    """
    if stage not in STAGES:
        raise ValueError(f'unknown stage {stage!r}; expected one of {STAGES}')
    return stage


def check_question_type(question_type: str) -> str:
    """Return ``question_type`` if it is one of finers_mm's question types.

    Args:
        question_type (str): ``'segmentation'``, ``'multiple_choice'`` or ``'open'``.

    Returns:
        str: ``question_type``.

    Raises:
        ValueError: any other value (the annotation's names ``'referring'``, ``'option'``,
            ``'reasoning'`` map through :data:`QTYPE_FROM_ANNOTATION` first).
    """
    if question_type not in QUESTION_TYPES:
        raise ValueError(f'unknown question type {question_type!r}; expected one of '
                         f'{QUESTION_TYPES} (map annotation names with QTYPE_FROM_ANNOTATION)')
    return question_type


def size_bucket(area_percent: float, s_min: float = SIZE_THRESHOLDS['s_min'],
                xxs_max: float = SIZE_THRESHOLDS['xxs_max']) -> str:
    """Size bucket of an object from its mask area in percent of the image.

    Args:
        area_percent (float): mask area / image area * 100.
        s_min (float): strictly above this is ``'S'``.
        xxs_max (float): strictly below this is ``'XXS'``.

    Returns:
        str: ``'S'``, ``'XS'`` or ``'XXS'``.
    """
    if area_percent > s_min:
        return 'S'
    if area_percent < xxs_max:
        return 'XXS'
    return 'XS'


def normalize_options(options: Union[list, dict, str, None]) -> Dict[str, str]:
    """Bring the untyped ``options`` field of a multiple-choice record to ``{letter: text}``.

    The released data has no documented type for ``options``; accepted forms:

    - a list of strings, either bare texts (``['red', 'blue']`` -> A, B, ...) or already lettered
      (``['A. red', 'B: blue', '(C) green']``);
    - a dict letter -> text (``{'A': 'red', ...}``);
    - one string holding all options (``'A. red B. blue'`` or one option per line).

    Args:
        options: the record's ``options`` value.

    Returns:
        dict: ordered ``{'A': 'red', 'B': 'blue', ...}``; empty when ``options`` is None or empty.

    Raises:
        ValueError: the value has another type or a letter repeats.
    """
    if options is None or options == '' or options == [] or options == {}:
        return {}
    if isinstance(options, dict):
        return {str(k).strip().upper(): str(v).strip() for k, v in options.items()}
    if isinstance(options, str):
        options = _split_option_string(options)
    if not isinstance(options, (list, tuple)):
        raise ValueError(f'options must be a list, a dict or a string, got {type(options).__name__}')
    result: Dict[str, str] = {}
    for index, item in enumerate(options):
        letter, text = _split_lettered(str(item))
        letter = letter or string.ascii_uppercase[index]
        if letter in result:
            raise ValueError(f'option letter {letter!r} appears twice in {options!r}')
        result[letter] = text
    return result


_LETTERED = re.compile(r'^\(?([A-Z])[.:)]\)?\s*')


def _split_lettered(item: str):
    """``'A. red'`` / ``'A: red'`` / ``'(A) red'`` / ``'A) red'`` -> ('A', 'red'); ``'red'`` -> ('', 'red')."""
    text = item.strip()
    match = _LETTERED.match(text)
    if match:
        return match.group(1), text[match.end():].strip()
    return '', text


def _split_option_string(text: str) -> list:
    """Split one string of options into items at line breaks or before ``B.``-style markers."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        return lines
    parts = re.split(r'\s+(?=\(?[A-Z][.:)]\s)', text.strip())
    return [p for p in parts if p.strip()]
