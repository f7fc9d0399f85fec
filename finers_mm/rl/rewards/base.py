# Copyright (c) finers_mm contributors. All rights reserved.
"""The interface of a reward term."""
import math
from abc import ABCMeta, abstractmethod
from typing import Any, Optional, Tuple

from finers_mm.structures.parsing import ParsedCompletion
from finers_mm.structures.protocols import DEFAULT_PROTOCOL, check_protocol, protocol_setting
from finers_mm.structures.reward_sample import RewardSample


class BaseReward(metaclass=ABCMeta):
    """One reward term: a pure function of a parsed completion and its :class:`RewardSample`.

    A term's value lies in ``[0, 1]``; a completion that lacks what the term scores (unparsable,
    no box, no response) gets 0, and no completion text makes a term raise. A sample lacking a
    field the term ``requires`` raises ValueError (a data bug, not a model output).

    The protocol's ``answer_rule`` (``self.rule``) says how the completion was read and how the
    term judges it: ``'finers_mm'``, or ``'authors'`` (their reward functions term by term, with
    the fixes (a) and (b) of :data:`~finers_mm.structures.protocols.AUTHORS_FIXES`). A term with
    an authors' rule refuses a completion parsed by the other reading (:meth:`check_parsed`).

    Args:
        weight (float): factor of the term in :class:`CompositeReward`'s total. Defaults to 1.0.
        name (str, optional): the log key; defaults to the class's ``default_name``.
        protocol (str): ``'finers_mm'`` (default) or ``'authors'``
            (:mod:`finers_mm.structures.protocols`); :class:`CompositeReward` hands its own to
            terms built from configs that do not give one.

    Attributes:
        requires (tuple[str, ...]): the :class:`RewardSample` fields the term reads beyond the
            mandatory ones (``stage``, ``frame_size``, ``model_coord_size``, ``question_type``,
            ``answer``, ``options``).
    """

    default_name: str = ''
    requires: Tuple[str, ...] = ()

    def __init__(self,
                 weight: float = 1.0,
                 name: Optional[str] = None,
                 protocol: str = DEFAULT_PROTOCOL) -> None:
        self.protocol = check_protocol(protocol)
        self.rule = protocol_setting(protocol, 'answer_rule')
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

    def check_parsed(self, parsed: ParsedCompletion) -> None:
        """Raise ValueError unless ``parsed`` was read by this term's rule.

        Args:
            parsed (ParsedCompletion): the completion handed to the term.
        """
        if parsed.rule != self.rule:
            raise ValueError(
                f"reward term '{self.name}' judges by the {self.rule!r} rule but the completion "
                f"was parsed by the {parsed.rule!r} reading; parse it with "
                f"parse_completion(text, stage, protocol={self.protocol!r}) (CompositeReward "
                f'does)')

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(name={self.name!r}, weight={self.weight}, '
                f'protocol={self.protocol!r})')


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
