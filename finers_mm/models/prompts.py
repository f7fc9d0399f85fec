# Copyright (c) finers_mm contributors. All rights reserved.
"""Prompt templates of the two FineRS stages, one per stage x question type.

Stages: ``'explorer'`` is GSE (global semantic exploration: the resized full image, answers a
fixed-size region) and ``'refiner'`` is LPR (localized perceptual refinement: a crop, answers a box
and two points). Question types are those of :mod:`finers_mm.structures.vocabulary`.

The defaults follow the authors' wording (METHOD.md, "Answer formats") and spell out, for every
combination, the task, the question, the ``<think>``/``<answer>`` tags, the JSON keys with an
example answer and what ``response`` must hold. Any template can be replaced from config::

    prompt = dict(region_size=256, templates=dict(explorer=dict(open='... {question} ...')))

Templates are ``str.format`` strings (literal braces doubled: ``{{`` and ``}}``). Placeholders:

- ``{question}``: the question or instruction (every template);
- ``{region_width}``, ``{region_height}``: width and height of the explorer's region in the
  MODEL's coordinates, as the model must write the box: ``256`` and ``256`` for Qwen2.5-VL
  (absolute pixels; fewer under a pixel budget that shrinks the frame), ``133`` and ``237`` for Qwen2-VL / Qwen3-VL (0..1000 on each axis) in a
  1920 x 1080 frame; see :meth:`~finers_mm.models.vlm.BaseVLMAdapter.region_size_in_model`. The
  caller passes them to :meth:`PromptBuilder.build` (``region=(w, h)``);
- ``{region_sides}``: the same as an equation on the box: ``'x2 - x1 = y2 - y1 = 256'`` for a
  square, ``'x2 - x1 = 133 and y2 - y1 = 237'`` otherwise (optional, explorer templates only);
- ``{region_size}``: side of the region in explorer-FRAME pixels
  (:attr:`PromptBuilder.region_size`), kept for templates written before the two above. It is what
  the model must write only for Qwen2.5-VL; a template for a relative-coordinate family should use
  the two above.

Under ``protocol='authors'`` the defaults are the authors' strings
(:mod:`finers_mm.structures.authors_prompts`): their evaluation prompts at test, their training
prompts in training (``phase``), the question inserted as they insert it and the options as
``str()`` of the annotation's value (pass the annotation's ``options`` as written).

Every explorer template must state the region size: both ``{region_width}`` and
``{region_height}``, or ``{region_size}``. None of the three is allowed in refiner templates.
Further placeholders:

- ``{coordinates}``: what the numbers of a box are, for the model's convention (any template;
  :func:`coordinates_phrase`): ``'in pixels of this image'`` for absolute-pixel models
  (Qwen2.5-VL), ``'in coordinates relative to this image, from 0 to 1000 along each side'`` for
  Qwen2-VL / Qwen3-VL. The caller passes the model's scale to :meth:`PromptBuilder.build`
  (``coordinate_scale``);

- ``{options}``: the options, one per line as ``A. text`` (every multiple-choice template; only
  there);
- ``{option_letters}``: ``'A, B, C or D'`` (optional, multiple-choice templates only);
- ``{max_answer_words}``: most words of an open answer (optional, open templates only).
"""
import string
from typing import Dict, Mapping, Optional, Tuple, Union

import numpy as np

from finers_mm.structures.answers import ABSENT_RESPONSE, FOUND_RESPONSE
from finers_mm.structures.authors_prompts import (AUTHORS_TEMPLATES, PHASES, TEST, authors_options,
                                                  authors_question, check_phase)
from finers_mm.structures.protocols import AUTHORS, DEFAULT_PROTOCOL, protocol_setting
from finers_mm.structures.vocabulary import (EXPLORER, MULTIPLE_CHOICE, OPEN, REFINER, SEGMENTATION,
                                             check_question_type, check_stage, normalize_options)

#: side of the explorer's region in its frame (METHOD.md: 256 in a 1920x1080 frame)
DEFAULT_REGION_SIZE = 256
#: most words of an open answer asked for in the open templates (the authors' LPR reward rule)
DEFAULT_MAX_ANSWER_WORDS = 3

_TAGS = ('Output the thinking process in <think> </think> tags and the final answer in '
         '<answer> </answer> tags.\n')

_EXPLORER_TASK = (
    "Based on '{question}', identify a {region_width}*{region_height} bounding box that best "
    'localizes the region most relevant to the query. The relevant object may be extremely small '
    'in this high-resolution image; the box must contain all of it.\n')
_EXPLORER_KEYS = (
    'The final answer is one JSON object with the keys "bbox" and "response". "bbox" is '
    '[x1, y1, x2, y2] {coordinates} with {region_sides}.\n')

_REFINER_KEYS = (
    'Output the one bbox and points of two largest inscribed circles inside the interested object '
    'in JSON format, with the keys "bbox" ([x1, y1, x2, y2]), "points_1" ([x, y]), "points_2" '
    '([x, y]) and "response", all {coordinates}.\n')
_REFINER_ABSENT = ('If the object is not in the image, "bbox" must be [0, 0, 0, 0] and both points '
                   '[0, 0]')

_OPTIONS = 'Options:\n{options}\n'
_LETTER_RESPONSE = ('"response" must be exactly one option letter ({option_letters}) and '
                    'nothing else.\n')
_OPEN_RESPONSE = ('"response" must be the answer to the question as a single word or a short '
                  'phrase of at most {max_answer_words} words.\n')

_EXPLORER_EXAMPLE = ('i.e., <think> thinking process here </think>'
                     '<answer>{{"bbox": [x1, y1, x2, y2], "response": "{response}"}}</answer>')
_REFINER_EXAMPLE = ('i.e., <think> thinking process here </think>'
                    '<answer>{{"bbox": [x1, y1, x2, y2], "points_1": [x, y], "points_2": [x, y], '
                    '"response": "{response}"}}</answer>')


def _example(example: str, response: str) -> str:
    """The example answer line with ``response`` written in (braces kept doubled)."""
    return example.replace('{response}', response)


#: the default template of every (stage, question type)
DEFAULT_TEMPLATES: Dict[str, Dict[str, str]] = {
    EXPLORER: {
        SEGMENTATION: (_EXPLORER_TASK + _TAGS + _EXPLORER_KEYS
                       + f'"response" must be "{FOUND_RESPONSE}"\n'
                       + _example(_EXPLORER_EXAMPLE, FOUND_RESPONSE)),
        MULTIPLE_CHOICE: (_EXPLORER_TASK + _OPTIONS
                          + 'Also answer the question with one of the options.\n' + _TAGS
                          + _EXPLORER_KEYS + _LETTER_RESPONSE
                          + _example(_EXPLORER_EXAMPLE, 'B')),
        OPEN: (_EXPLORER_TASK + 'Also answer the question.\n' + _TAGS + _EXPLORER_KEYS
               + _OPEN_RESPONSE + _example(_EXPLORER_EXAMPLE, 'red')),
    },
    REFINER: {
        SEGMENTATION: ("Please find '{question}' with bbox and points. Compare the difference "
                       'between objects and find the most closely matched one.\n' + _TAGS
                       + _REFINER_KEYS + f'"response" must be "{FOUND_RESPONSE}" '
                       + _REFINER_ABSENT + f', and "response" "{ABSENT_RESPONSE}".\n'
                       + _example(_REFINER_EXAMPLE, FOUND_RESPONSE)),
        MULTIPLE_CHOICE: ("Please find the object that the question '{question}' is about with "
                          'bbox and points, and answer the question with one of the options. '
                          'Compare the difference between objects and find the most closely '
                          'matched one.\n' + _OPTIONS + _TAGS + _REFINER_KEYS + _REFINER_ABSENT
                          + '; still answer the question.\n' + _LETTER_RESPONSE
                          + _example(_REFINER_EXAMPLE, 'B')),
        OPEN: ("Please find the object that the question '{question}' is about with bbox and "
               'points, and answer the question. Compare the difference between objects and find '
               'the most closely matched one.\n' + _TAGS + _REFINER_KEYS + _REFINER_ABSENT
               + '; still answer the question.\n' + _OPEN_RESPONSE
               + _example(_REFINER_EXAMPLE, 'red')),
    },
}

#: placeholders each template must use / may use (see the module docstring)
_ALWAYS_REQUIRED = {EXPLORER: {'question'}, REFINER: {'question'}}
#: the region size in model units (both) or in frame pixels: an explorer template states one
_REGION_MODEL = ('region_width', 'region_height')
_REGION_FRAME = 'region_size'
_STAGE_OPTIONAL = {EXPLORER: {_REGION_FRAME, *_REGION_MODEL, 'region_sides'}, REFINER: set()}
#: placeholders any template may use
_COMMON_OPTIONAL = {'coordinates'}
_REQUIRED_BY_TYPE = {SEGMENTATION: set(), MULTIPLE_CHOICE: {'options'}, OPEN: set()}
_OPTIONAL_BY_TYPE = {SEGMENTATION: set(), MULTIPLE_CHOICE: {'option_letters'},
                     OPEN: {'max_answer_words'}}


def render_options(options: Mapping[str, str]) -> str:
    """Options one per line as ``'A. text'``.

    Args:
        options (Mapping[str, str]): ``{letter: text}`` as from ``normalize_options``.

    Returns:
        str: the lines joined with ``'\\n'``.
    """
    return '\n'.join(f'{letter}. {text}' for letter, text in options.items())


def _letters_phrase(letters) -> str:
    """``['A', 'B', 'C']`` -> ``'A, B or C'``."""
    letters = list(letters)
    if len(letters) == 1:
        return letters[0]
    return ', '.join(letters[:-1]) + ' or ' + letters[-1]


def _placeholders(template: str, name: str) -> set:
    """Field names of a ``str.format`` template; ValueError naming the template when malformed."""
    try:
        fields = {field for _, field, _, _ in string.Formatter().parse(template)
                  if field is not None}
    except ValueError as error:
        raise ValueError(f'prompt template {name} is not a valid str.format string ({error}); '
                         'write literal braces as {{ and }}') from error
    return fields


def _validate_template(template, stage: str, question_type: str) -> str:
    """Check one template's type and placeholders; return it."""
    name = f'templates[{stage!r}][{question_type!r}]'
    if not isinstance(template, str):
        raise ValueError(f'prompt template {name} must be a str, got {type(template).__name__}')
    required = _ALWAYS_REQUIRED[stage] | _REQUIRED_BY_TYPE[question_type]
    allowed = (required | _COMMON_OPTIONAL | _STAGE_OPTIONAL[stage]
               | _OPTIONAL_BY_TYPE[question_type])
    fields = _placeholders(template, name)
    missing = sorted(required - fields)
    if missing:
        raise ValueError(f'prompt template {name} lacks the placeholder(s) '
                         + ', '.join('{' + field + '}' for field in missing))
    if stage == EXPLORER:
        model_units = [field for field in _REGION_MODEL if field in fields]
        if len(model_units) == 1:
            other, = set(_REGION_MODEL) - set(model_units)
            raise ValueError(f'prompt template {name} uses {{{model_units[0]}}} but lacks '
                             f'{{{other}}}: state both sides of the region')
        if not model_units and _REGION_FRAME not in fields:
            raise ValueError(
                f'prompt template {name} lacks the region size: the placeholders {{region_width}} '
                'and {region_height} (in model coordinates) or {region_size} (in frame pixels)')
    unknown = sorted(fields - allowed)
    if unknown:
        raise ValueError(f'prompt template {name} uses unknown placeholder(s) {unknown}; '
                         f'allowed here: {sorted(allowed)} (write literal braces as {{{{ and }}}})')
    try:
        template.format(question='q', region_size=1, region_width=1, region_height=1,
                        region_sides='s', coordinates='c', options='A. a', option_letters='A',
                        max_answer_words=1)
    except (ValueError, IndexError, KeyError) as error:
        raise ValueError(f'prompt template {name} cannot be formatted: {error}') from error
    return template


def _merged_templates(defaults: Mapping[str, Mapping[str, str]],
                      overrides: Optional[Mapping[str, Mapping[str, str]]]
                      ) -> Dict[str, Dict[str, str]]:
    """``defaults`` (stage -> question type -> template) with ``overrides`` merged in, each checked."""
    merged = {stage: dict(by_type) for stage, by_type in defaults.items()}
    for stage, by_type in (overrides or {}).items():
        check_stage(stage)
        if not isinstance(by_type, Mapping):
            raise ValueError(f'templates[{stage!r}] must be a dict question type -> template, '
                             f'got {type(by_type).__name__}')
        for question_type, template in by_type.items():
            check_question_type(question_type)
            merged[stage][question_type] = template
    return {stage: {qtype: _validate_template(template, stage, qtype)
                    for qtype, template in by_type.items()}
            for stage, by_type in merged.items()}


def _region_sides(width: int, height: int) -> str:
    """``{region_sides}``: the region's size as an equation on the box."""
    if width == height:
        return f'x2 - x1 = y2 - y1 = {width}'
    return f'x2 - x1 = {width} and y2 - y1 = {height}'


def coordinates_phrase(coordinate_scale: Optional[int] = None) -> str:
    """What the numbers of a box are, as the prompts say it (``{coordinates}``).

    Args:
        coordinate_scale (int, optional): the model's relative coordinate scale
            (``BaseVLMAdapter.relative_scale``: 1000 for Qwen2-VL / Qwen3-VL), or None for
            absolute pixels of the image the model sees (Qwen2.5-VL).

    Returns:
        str: e.g. ``'in pixels of this image'``.
    """
    if coordinate_scale is None:
        return 'in pixels of this image'
    if isinstance(coordinate_scale, bool) or int(coordinate_scale) <= 0:
        raise ValueError(f'coordinate_scale must be a positive int or None, got '
                         f'{coordinate_scale!r}')
    return (f'in coordinates relative to this image, from 0 to {int(coordinate_scale)} along '
            'each side')


class PromptBuilder:
    """Builds the user prompt of a stage for one question.

    Args:
        templates (dict, optional): overrides ``{stage: {question_type: template}}`` merged onto
            :data:`DEFAULT_TEMPLATES`; each is validated here (see the module docstring).
        region_size (int): side of the explorer's region in explorer-frame pixels: the default
            ``region`` of :meth:`build` and the value of ``{region_size}``. Defaults to
            :data:`DEFAULT_REGION_SIZE`.
        max_answer_words (int): most words of an open answer, written into the open templates.
            Defaults to :data:`DEFAULT_MAX_ANSWER_WORDS`.
        protocol (str): ``'finers_mm'`` (default): :data:`DEFAULT_TEMPLATES` in every phase;
            ``'authors'``: the authors' evaluation and training templates
            (:data:`~finers_mm.structures.authors_prompts.AUTHORS_TEMPLATES`), their question and
            options rendering. ``templates`` overrides apply in both phases.

    Raises:
        ValueError: an unknown stage or question type in ``templates``, a template that is not a
            string, lacks a required placeholder or uses an unknown one, or a size that is not a
            positive integer.
    """

    def __init__(self,
                 templates: Optional[Mapping[str, Mapping[str, str]]] = None,
                 region_size: int = DEFAULT_REGION_SIZE,
                 max_answer_words: int = DEFAULT_MAX_ANSWER_WORDS,
                 protocol: str = DEFAULT_PROTOCOL) -> None:
        for name, value in (('region_size', region_size), ('max_answer_words', max_answer_words)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f'{name} must be a positive int, got {value!r}')
        self.region_size = region_size
        self.max_answer_words = max_answer_words
        self.style = protocol_setting(protocol, 'prompts')
        defaults = (AUTHORS_TEMPLATES if self.style == AUTHORS
                    else {phase: DEFAULT_TEMPLATES for phase in PHASES})
        #: phase -> stage -> question type -> template
        self.phase_templates: Dict[str, Dict[str, Dict[str, str]]] = {
            phase: _merged_templates(by_stage, templates) for phase, by_stage in defaults.items()}

    @property
    def templates(self) -> Dict[str, Dict[str, str]]:
        """The evaluation templates, stage -> question type -> template."""
        return self.phase_templates[TEST]

    def build(self,
              stage: str,
              question: str,
              question_type: str,
              options: Union[list, dict, str, None] = None,
              region: Optional[Tuple[int, int]] = None,
              coordinate_scale: Optional[int] = None,
              phase: str = TEST) -> str:
        """Prompt text of ``stage`` for one question.

        Args:
            stage (str): ``'explorer'`` or ``'refiner'``.
            question (str): the question or instruction (surrounding whitespace is stripped).
            question_type (str): ``'segmentation'``, ``'multiple_choice'`` or ``'open'``.
            options (list | dict | str, optional): the options of a multiple-choice question, in
                any form ``normalize_options`` accepts, ideally as the annotation wrote them (the
                authors' prompts insert ``str()`` of the value); ignored for the other types.
            region (tuple[int, int], optional): ``(width, height)`` of the explorer's region in the
                model's coordinates for this image (``{region_width}``, ``{region_height}``), from
                ``vlm.region_size_in_model(region_size, frame_size)``. Defaults to
                ``(region_size, region_size)``, right for absolute-pixel models (Qwen2.5-VL) only.
                Ignored by the refiner.
            coordinate_scale (int, optional): the model's relative coordinate scale
                (``vlm.relative_scale``), or None (default) for absolute pixels; says what the
                box's numbers are (``{coordinates}``, :func:`coordinates_phrase`).
            phase (str): ``'test'`` (default: inference) or ``'train'`` (SFT targets, GRPO
                rollouts); only the authors' protocol has different prompts for the two.

        Returns:
            str: the prompt.

        Raises:
            ValueError: unknown stage or question type, an empty question, a multiple-choice
                question without options, or a ``region`` that is not two positive ints.
        """
        template = self.phase_templates[check_phase(phase)][check_stage(stage)][
            check_question_type(question_type)]
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f'question must be a non-empty str, got {question!r}')
        if region is None:
            region = (self.region_size, self.region_size)
        if (not isinstance(region, (tuple, list)) or len(region) != 2
                or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0
                       for v in region)):
            raise ValueError(f'region must be (width, height), two positive ints, got {region!r}')
        authors = self.style == AUTHORS
        values = dict(question=authors_question(question, phase) if authors else question.strip(),
                      region_size=self.region_size,
                      region_width=int(region[0]), region_height=int(region[1]),
                      region_sides=_region_sides(int(region[0]), int(region[1])),
                      coordinates=coordinates_phrase(coordinate_scale),
                      max_answer_words=self.max_answer_words)
        if question_type == MULTIPLE_CHOICE:
            normalized = normalize_options(options)
            if not normalized:
                raise ValueError(f'multiple-choice question {question!r} has no options')
            values.update(options=authors_options(options) if authors
                          else render_options(normalized),
                          option_letters=_letters_phrase(normalized))
        return template.format(**values)
