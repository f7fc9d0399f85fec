# Copyright (c) finers_mm contributors. All rights reserved.
"""Format terms: the ``<think>``/``<answer>`` layout and the answer's JSON (both stages).

Both read the one parser's verdicts (:mod:`finers_mm.structures.parsing`), so a format rule lives
there only.
"""
from finers_mm.registry import REWARDS
from finers_mm.structures.parsing import ParsedCompletion
from finers_mm.structures.reward_sample import RewardSample
from .base import BaseReward


@REWARDS.register_module()
class ThinkFormatReward(BaseReward):
    """1 when the whole completion is ``<think>...</think><answer>...</answer>`` (authors' term).

    The value is ``parsed.think_format_ok``: only whitespace may surround the two blocks
    (``'finers_mm'``); nothing may (``'authors'``: their ``re.fullmatch`` has no ``\\s*`` at the
    ends, so a leading space or a trailing newline scores 0).

    Args:
        weight (float): weight in the total. Defaults to 1.0.
        name (str, optional): log key. Defaults to ``'think_format'``.
        protocol (str): ``'finers_mm'`` (default) or ``'authors'``.
    """

    default_name = 'think_format'

    def __call__(self, parsed: ParsedCompletion, sample: RewardSample) -> float:
        """Score one completion (see :meth:`BaseReward.__call__`)."""
        self.check_parsed(parsed)
        return float(parsed.think_format_ok)


@REWARDS.register_module()
class JsonFormatReward(BaseReward):
    """1 when the answer's JSON has every key of the stage well-formed (authors' term).

    The value is ``parsed.json_format_ok`` for the stage the completion was parsed for:
    ``'finers_mm'``: explorer ``bbox`` (4 numbers, a box with area) and a non-empty
    ``response``; refiner also ``points_1`` and ``points_2`` (2 numbers each), and the all-zero
    "absent" box is well-formed. ``'authors'``: the first ``{...}`` of the whole text is strict
    JSON with the stage's keys, ``bbox`` a list of 4 items, the points lists of 2 items (of any
    type), ``response`` a non-blank string
    (:func:`~finers_mm.structures.authors_parsing.authors_json_format_ok`).

    Args:
        weight (float): weight in the total. Defaults to 1.0.
        name (str, optional): log key. Defaults to ``'json_format'``.
        protocol (str): ``'finers_mm'`` (default) or ``'authors'``.
    """

    default_name = 'json_format'

    def __call__(self, parsed: ParsedCompletion, sample: RewardSample) -> float:
        """Score one completion (see :meth:`BaseReward.__call__`)."""
        self.check_parsed(parsed)
        return float(parsed.json_format_ok)
