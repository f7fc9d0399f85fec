# Copyright (c) finers_mm contributors. All rights reserved.
"""The answer term: whether the text response answers the question (both stages)."""
from typing import Optional

from finers_mm.registry import REWARDS
from finers_mm.structures.answers import (ABSENT_RESPONSE, OPEN_MIN_RATIO, REFINER_MAX_WORDS,
                                          answer_is_correct)
from finers_mm.structures.frames import is_absent
from finers_mm.structures.parsing import ParsedCompletion
from finers_mm.structures.reward_sample import RewardSample
from finers_mm.structures.vocabulary import REFINER, SEGMENTATION
from .base import BaseReward


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

    Args:
        min_ratio (float): open answers: least difflib ratio of a correct one. Defaults to 0.8
            (the authors' value).
        refiner_max_words (int): open answers at the refiner: most words of a correct one.
            Defaults to 3 (the authors' LPR reward).
        weight (float): weight in the total. Defaults to 1.0.
        name (str, optional): log key. Defaults to ``'answer'``.
    """

    default_name = 'answer'

    def __init__(self,
                 min_ratio: float = OPEN_MIN_RATIO,
                 refiner_max_words: int = REFINER_MAX_WORDS,
                 weight: float = 1.0,
                 name: Optional[str] = None) -> None:
        super().__init__(weight=weight, name=name)
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
                data, from :func:`answer_is_correct`).
        """
        gt_answer = sample.answer
        if (sample.stage == REFINER and sample.question_type == SEGMENTATION
                and is_absent(sample.gt_box)):
            gt_answer = ABSENT_RESPONSE
        return float(
            answer_is_correct(parsed.response, gt_answer, sample.question_type, sample.options,
                              stage=sample.stage, min_ratio=self.min_ratio,
                              refiner_max_words=self.refiner_max_words))
