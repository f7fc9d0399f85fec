# Copyright (c) finers_mm contributors. All rights reserved.
"""The answer term: whether the text response answers the question (both stages).

Two rules, by the protocol's ``answer_rule``:

- ``'finers_mm'``: :func:`~finers_mm.structures.answers.answer_is_correct`, THE rule of this
  project (rewards, inference and metrics);
- ``'authors'``: the answer rule of the authors' REWARDS (``compute_text_reward`` of
  ``verl/utils/reward_score/seg_restrict_qa.py`` and ``seg_restrict8_regions_and_qa.py``), which
  differs from their evaluation's (``answer_is_correct(..., rule='authors')``) and lives here,
  with the one fix (a) of :data:`~finers_mm.structures.protocols.AUTHORS_FIXES`
  (:func:`authors_reward_answer_is_correct`).
"""
import difflib
import re
from typing import Any, Mapping, Optional, Union

from finers_mm.registry import REWARDS
from finers_mm.structures.answers import (ABSENT_RESPONSE, AUTHORS_FOUND_PHRASES,
                                          DEFAULT_OPTION_LETTERS, FOUND_RESPONSE,
                                          OPEN_MIN_RATIO, REFINER_MAX_WORDS, answer_is_correct,
                                          authors_options_named)
from finers_mm.structures.frames import is_absent
from finers_mm.structures.parsing import ParsedCompletion
from finers_mm.structures.protocols import AUTHORS, DEFAULT_PROTOCOL
from finers_mm.structures.reward_sample import RewardSample
from finers_mm.structures.vocabulary import REFINER, SEGMENTATION, check_stage, normalize_options
from .base import BaseReward

#: how their reward reads the ground truth's response back from their solution string (no
#: DOTALL: a line break in the answer leaves it empty, and their ``assert`` then scores 0)
_AUTHORS_SOLUTION_RESPONSE = re.compile(r'<response>(.*?)</response>')
#: their ground truths of the three kinds (the kind is read from the ground truth's text)
AUTHORS_FOUND_GT = FOUND_RESPONSE.lower()
AUTHORS_OPTION_GTS = ('a', 'b', 'c', 'd')


def authors_gt_response(answer: Any, question_type: str) -> str:
    """The ground truth the authors' answer reward compares with, lower-cased.

    Their converters write ``"The object is found."`` for every segmentation record and the
    record's answer (``"{}".format(ann["A"])``) otherwise, between ``<response>`` tags of the
    solution string; the reward reads it back with ``<response>(.*?)</response>``, strips and
    lower-cases it.

    Args:
        answer: the record's answer (:attr:`RewardSample.answer`).
        question_type (str): ``'segmentation'``, ``'multiple_choice'`` or ``'open'``.

    Returns:
        str: the lower-cased ground truth; ``''`` when their reading finds none (every response
        then scores 0, their ``assert gt_response``).
    """
    text = FOUND_RESPONSE if question_type == SEGMENTATION else '{}'.format(answer)
    match = _AUTHORS_SOLUTION_RESPONSE.search(f'<response>{text}</response>')
    return match.group(1).strip().lower() if match else ''


def authors_reward_answer_is_correct(response: Any,
                                     gt_answer: Any,
                                     question_type: str,
                                     options: Union[list, dict, str, None] = None,
                                     stage: str = REFINER,
                                     min_ratio: float = OPEN_MIN_RATIO,
                                     refiner_max_words: int = REFINER_MAX_WORDS) -> bool:
    """The authors' answer REWARD with fix (a).

    The rule is picked by the ground truth's TEXT (:func:`authors_gt_response`), not by the
    question type: ``"the object is found."`` (every segmentation record) -> found; one letter
    ``a``-``d`` -> option; anything else -> open (a multiple-choice answer written as its option
    text is judged as an open answer, an open answer ``"A"`` as an option). Then:

    - the response must be a ``str`` (any other JSON value scores 0, their ``.lower()`` /
      ``.split()`` raising);
    - found: the lower-cased response contains ``is found`` or ``is detected`` (``"No object is
      found"`` included);
    - option: their pattern ``(?:\\b|[([{'" ])<letter>(?:\\b|[)\\]}'" ,.!?])`` finds the ground
      truth's letter in the lower-cased response, and, **fix (a)**, the response names exactly
      that option of the question's (A-D without options): its capital letter between their
      delimiters, or the letter alone (:func:`~finers_mm.structures.answers.authors_options_named`,
      the evaluation's fix too; neither "A B C D" nor the article of "It is a red car" counts);
    - open: some whitespace-separated word of the response AS WRITTEN (not lower-cased, unlike
      their evaluation) has ``difflib`` ratio ``>= min_ratio`` with the whole lower-cased ground
      truth; at the refiner a response of more than ``refiner_max_words`` words scores 0 (their
      LPR reward; not their GSE reward).

    Args:
        response: ``data['response']`` of the authors' object (any JSON value); None when the
            completion has no object or no ``response`` key.
        gt_answer: the record's answer.
        question_type (str): the record's question type (only segmentation's ground truth is
            fixed by it).
        options (list | dict | str, optional): the question's options (fix (a)'s letters).
        stage (str): ``'explorer'`` or ``'refiner'``.
        min_ratio (float): open answers: least ``difflib`` ratio of one word.
        refiner_max_words (int): open answers at the refiner: most words of a correct one.

    Returns:
        bool: True when their reward (with fix (a)) scores the response 1.
    """
    check_stage(stage)
    gt = authors_gt_response(gt_answer, question_type)
    if not gt or not isinstance(response, str):
        return False
    if gt == AUTHORS_FOUND_GT:
        text = response.lower()
        return any(phrase in text for phrase in AUTHORS_FOUND_PHRASES)
    if gt in AUTHORS_OPTION_GTS:
        return authors_options_named(response, _option_letters(options) | {gt}) == {gt}
    words = response.split()
    if stage == REFINER and len(words) > refiner_max_words:
        return False
    return any(difflib.SequenceMatcher(None, word, gt).ratio() >= min_ratio for word in words)


def _option_letters(options: Union[list, dict, str, None]) -> set:
    """The question's option letters, lower-case (A-D without options)."""
    letters: Mapping = normalize_options(options) or dict.fromkeys(DEFAULT_OPTION_LETTERS)
    return {letter.lower() for letter in letters}


@REWARDS.register_module()
class AnswerReward(BaseReward):
    """1 when ``parsed.response`` answers the question, by :func:`answer_is_correct` (THE rule).

    The rule is applied with the sample's stage, so a refiner's open answer of more than
    ``refiner_max_words`` words scores 0, and a multiple-choice response must name exactly one
    option (``"A B C D"``, ``"A or B"`` or all option texts score 0).

    Absent target: for a refiner segmentation sample whose ``gt_box`` is all zeros the ground
    truth is :data:`~finers_mm.structures.answers.ABSENT_RESPONSE` whatever ``sample.answer``
    says, so only a response saying the object is absent (and not that it is found) scores 1. Multiple-choice and open questions are
    still scored against ``sample.answer`` (the refiner prompt asks to still answer them).

    ``'authors'`` rule: :func:`authors_reward_answer_is_correct` of ``data['response']`` of the
    authors' object (no absent rule: their segmentation ground truth is always "found").

    Args:
        min_ratio (float): open answers: least difflib ratio of a correct one. Defaults to 0.8
            (the authors' value).
        refiner_max_words (int): open answers at the refiner: most words of a correct one.
            Defaults to 3 (the authors' LPR reward).
        weight (float): weight in the total. Defaults to 1.0.
        name (str, optional): log key. Defaults to ``'answer'``.
        protocol (str): ``'finers_mm'`` (default) or ``'authors'``.
    """

    default_name = 'answer'

    def __init__(self,
                 min_ratio: float = OPEN_MIN_RATIO,
                 refiner_max_words: int = REFINER_MAX_WORDS,
                 weight: float = 1.0,
                 name: Optional[str] = None,
                 protocol: str = DEFAULT_PROTOCOL) -> None:
        super().__init__(weight=weight, name=name, protocol=protocol)
        if not 0 < min_ratio <= 1:
            raise ValueError(f'AnswerReward: min_ratio must be in (0, 1], got {min_ratio!r}')
        if int(refiner_max_words) < 1:
            raise ValueError(f'AnswerReward: refiner_max_words must be >= 1, got '
                             f'{refiner_max_words!r}')
        self.min_ratio = float(min_ratio)
        self.refiner_max_words = int(refiner_max_words)

    def __call__(self, parsed: ParsedCompletion, sample: RewardSample) -> float:
        """Score one completion (see :meth:`BaseReward.__call__`).

        Raises:
            ValueError: a multiple-choice ``sample.answer`` that names no single option (bad
                data, from :func:`answer_is_correct`; ``'finers_mm'`` rule).
        """
        self.check_parsed(parsed)
        if self.rule == AUTHORS:
            response = parsed.data.get('response') if isinstance(parsed.data, dict) else None
            return float(
                authors_reward_answer_is_correct(
                    response, sample.answer, sample.question_type, sample.options,
                    stage=sample.stage, min_ratio=self.min_ratio,
                    refiner_max_words=self.refiner_max_words))
        gt_answer = sample.answer
        if (sample.stage == REFINER and sample.question_type == SEGMENTATION
                and is_absent(sample.gt_box)):
            gt_answer = ABSENT_RESPONSE
        return float(
            answer_is_correct(parsed.response, gt_answer, sample.question_type, sample.options,
                              stage=sample.stage, min_ratio=self.min_ratio,
                              refiner_max_words=self.refiner_max_words))
