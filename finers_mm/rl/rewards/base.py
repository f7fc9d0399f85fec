# Copyright (c) finers_mm contributors. All rights reserved.
"""The interface of a reward term."""
import math
from abc import ABCMeta, abstractmethod
from typing import Any, Optional, Tuple

from finers_mm.structures.parsing import ParsedCompletion
from finers_mm.structures.reward_sample import RewardSample


class BaseReward(metaclass=ABCMeta):
    """One reward term: a pure function of a parsed completion and its :class:`RewardSample`.

    A term's value lies in ``[0, 1]``; a completion that lacks what the term scores (unparsable,
    no box, no response) gets 0, and no completion text makes a term raise. A sample lacking a
    field the term ``requires`` raises ValueError (a data bug, not a model output).

    Args:
        weight (float): factor of the term in :class:`CompositeReward`'s total. Defaults to 1.0.
        name (str, optional): the log key; defaults to the class's ``default_name``.

    Attributes:
        requires (tuple[str, ...]): the :class:`RewardSample` fields the term reads beyond the
            mandatory ones (``stage``, ``frame_size``, ``model_coord_size``, ``question_type``,
            ``answer``, ``options``).
    """

    default_name: str = ''
    requires: Tuple[str, ...] = ()

    def __init__(self, weight: float = 1.0, name: Optional[str] = None) -> None:
        self.weight = float(weight)
        if not math.isfinite(self.weight):
            raise ValueError(f'{type(self).__name__}: weight must be finite, got {weight!r}')
        self.name = self.default_name if name is None else name
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f'{type(self).__name__}: name must be a non-empty str, got '
                             f'{self.name!r}')

    @abstractmethod
    def __call__(self, parsed: ParsedCompletion, sample: RewardSample) -> float:
        """Score one completion.

        Args:
            parsed (ParsedCompletion): the completion parsed for ``sample.stage``.
            sample (RewardSample): the prompt's ground truth.

        Returns:
            float: the unweighted term value in ``[0, 1]``.
        """

    def __repr__(self) -> str:
        return f'{type(self).__name__}(name={self.name!r}, weight={self.weight})'


def required(sample: RewardSample, name: str, term: str) -> Any:
    """A field a term needs; ValueError naming the term when the sample lacks it.

    Args:
        sample (RewardSample): the sample.
        name (str): the field name (one of the term's ``requires``).
        term (str): the term's name, for the message.

    Returns:
        The field's value (not None).
    """
    value = getattr(sample, name)
    if value is None:
        raise ValueError(f"reward term '{term}' needs RewardSample.{name}, which is None; give it "
                         f'in the data or remove the term (see CompositeReward.requires)')
    return value
