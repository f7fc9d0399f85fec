# Copyright (c) finers_mm contributors. All rights reserved.
"""The authors' prompts, byte for byte: the templates of the ``'authors'`` protocol.

Facts of the protocol, read from JiazuoYu/Fines (their code is not copied; these are its strings):

- ``'test'``: the evaluation prompts, ``reform_messgae_HR`` (explorer) / ``reform_messgae_LR``
  (refiner) with ``is_final_answer=True`` in ``inference_scripts/eval_hd_reasoning_seg_zero_cascade_
  qa_add_dist_for_region_prompt_cross_stage.py``. The question goes in as the annotation wrote it.
- ``'train'``: the training prompts of ``verl/utils/rl_dataset.py`` (explorer) and
  ``rl_dataset_lr.py`` (refiner), ``unified_qa_model: True``. The question goes in lower-cased and
  stripped of ``'.'`` at both ends (:func:`authors_question`); the refiner's prompt adds the
  "not found" sentence. They begin with an ``<image>`` placeholder, which is where finers_mm's chat
  puts the image anyway (the image part first, then the text), so the templates here start after it.

Sentences are joined with no space, the example answer is a single-quoted Python dict (the
refiner's evaluation example even leaves ``response`` unquoted), the GSE open-question evaluation
example says ``'The object is found.'``: all kept. Both run in one user turn after the chat
template's default system prompt ("You are a helpful assistant."; their training sets the same one).

The templates are ``str.format`` strings in finers_mm's placeholders (literal braces doubled):
``{question}``, ``{options}`` (``str()`` of the annotation's ``options``, whatever its type, as
their ``str.format`` renders it) and, in the explorer's, ``{region_size}`` (256 in the authors'
frames: the string is then theirs exactly; another ``frames.region_size`` is stated as set).
"""
from typing import Dict

from .vocabulary import EXPLORER, MULTIPLE_CHOICE, OPEN, REFINER, SEGMENTATION

#: the phases with their own prompts: training (SFT targets, GRPO rollouts) and evaluation
TRAIN = 'train'
TEST = 'test'
PHASES = (TRAIN, TEST)

_TAGS = ('Output the thinking process in <think> </think> and final answer in <answer> </answer> '
         'tags.')
_THINK = 'i.e., <think> thinking process here </think>'

_GSE_ASK = ("Based on the '{question}', identify a {region_size}*{region_size} bounding box that "
            'best localizes the region most relevant to the query.')
_GSE_COMPARE = 'Compare the difference between regions and find the most closely matched one.'
_GSE_OUTPUT = ('Output the {region_size}*{region_size} region bbox and the final response inside '
               'the interested object in JSON format.')
_GSE_BOX = "'bbox': [x_min,y_min,x_min+{region_size},y_min+{region_size}]"

_LPR_ASK = "Please find '{question}' with bbox and points."
_LPR_COMPARE = 'Compare the difference between objects and find the most closely matched one.'
_LPR_OUTPUT = ('Output the one bbox and points of two largest inscribed circles inside the '
               'interested object in JSON format.')
_LPR_ABSENT = ("If the object is not found, output bbox as [0, 0, 0, 0], points_1 and points_2 as "
               "[0, 0], and response as 'No object founded'.")
_LPR_BOX = "'bbox': [10,100,200,210], 'points_1': [30,110], 'points_2': [35,180]"

#: what each question type asks for after the task sentence
_ASK_ANSWER = {
    SEGMENTATION: ' And respond with whether the object is found.',
    OPEN: ' And give me a final response with a word or phrase.',
    MULTIPLE_CHOICE: ' And give me a correct option from {options}.',
}


def _answer(example: str) -> str:
    """``<answer>{example}</answer>`` with the example's dict braces doubled for str.format."""
    return '<answer>{{' + example + '}}</answer>'


def _gse(question_type: str, response: str) -> str:
    return (_GSE_ASK + _ASK_ANSWER[question_type] + _GSE_COMPARE + _TAGS + _GSE_OUTPUT
            + _THINK + _answer(f"{_GSE_BOX}, 'response': {response}"))


def _lpr(question_type: str, example_tail: str, absent: bool) -> str:
    return (_LPR_ASK + _ASK_ANSWER[question_type] + _LPR_COMPARE + _TAGS + _LPR_OUTPUT
            + (_LPR_ABSENT if absent else '') + _THINK + _answer(_LPR_BOX + example_tail))


#: phase -> stage -> question type -> template (module docstring)
AUTHORS_TEMPLATES: Dict[str, Dict[str, Dict[str, str]]] = {
    TEST: {
        EXPLORER: {
            SEGMENTATION: _gse(SEGMENTATION, "'The object is found.'"),
            # their evaluation's open-question example answer is the segmentation one
            OPEN: _gse(OPEN, "'The object is found.'"),
            MULTIPLE_CHOICE: _gse(MULTIPLE_CHOICE, "'A'"),
        },
        REFINER: {
            SEGMENTATION: _lpr(SEGMENTATION, ", response: 'The object is found.'", False),
            OPEN: _lpr(OPEN, ", response: 'The object is white.' ", False),
            MULTIPLE_CHOICE: _lpr(MULTIPLE_CHOICE, ", response: 'A'", False),
        },
    },
    TRAIN: {
        EXPLORER: {
            SEGMENTATION: _gse(SEGMENTATION, "'The object is found.'"),
            OPEN: _gse(OPEN, "'The object is white.' "),
            MULTIPLE_CHOICE: _gse(MULTIPLE_CHOICE, "'A'"),
        },
        REFINER: {
            SEGMENTATION: _lpr(SEGMENTATION, ", 'response': 'The object is found.'", True),
            OPEN: _lpr(OPEN, ", 'response': 'The object is white.'", True),
            MULTIPLE_CHOICE: _lpr(MULTIPLE_CHOICE, ", 'response': 'A'", True),
        },
    },
}


def check_phase(phase: str) -> str:
    """Return ``phase`` if it is ``'train'`` or ``'test'``; ValueError otherwise."""
    if phase not in PHASES:
        raise ValueError(f'unknown prompt phase {phase!r}; expected one of {PHASES}')
    return phase


def authors_question(question: str, phase: str) -> str:
    """The question as the authors' code inserts it.

    Args:
        question (str): the annotation's ``Q``.
        phase (str): ``'test'``: unchanged (their evaluation); ``'train'``: lower-cased and
            stripped of ``'.'`` at both ends (their training datasets), nothing else.

    Returns:
        str: the question to insert.
    """
    return question if check_phase(phase) == TEST else question.lower().strip('.')


def authors_options(options_raw) -> str:
    """``options`` as the authors' ``str.format`` renders it: ``str()`` of the annotation's value.

    Args:
        options_raw (list | dict | str): the annotation's ``options``.

    Returns:
        str: e.g. ``"['A. red', 'B. white']"`` for a list, the string itself for a string.
    """
    return str(options_raw)
