# Copyright (c) finers_mm contributors. All rights reserved.
"""The weighted sum of reward terms that GRPO optimises.

The authors' two term lists are the rewards of ``configs/finers/lpr_qwen7b.py`` (``lpr_reward``) and
``configs/finers/gse_qwen7b.py`` (``gse_reward``).
"""
import inspect
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np

from finers_mm.registry import REWARDS
from finers_mm.structures.parsing import ParsedCompletion, parse_completion
from finers_mm.structures.protocols import DEFAULT_PROTOCOL, check_protocol
from finers_mm.structures.reward_sample import RewardSample
from .base import BaseReward


@dataclass
class RewardResult:
    """Rewards of N completions.

    Attributes:
        total (np.ndarray): (N,) float32, the sum of ``weight * term`` over the terms.
        terms (dict[str, np.ndarray]): term name -> (N,) float32 UNWEIGHTED values (to log).
        invalid (np.ndarray): (N,) bool, the completion did not parse as a well-formed answer
            (``ParsedCompletion.invalid`` is set).
    """

    total: np.ndarray
    terms: Dict[str, np.ndarray]
    invalid: np.ndarray


@REWARDS.register_module()
class CompositeReward:
    """Weighted sum of reward terms; each completion is parsed once and shared by all terms.

    Config::

        reward = dict(type='CompositeReward', protocol='authors', terms=[
            dict(type='ThinkFormatReward'), dict(type='BoxIoUReward', iou_thr=0.5, weight=2.0),
            ...])

    The protocol is set once, here: every term config that takes a ``protocol`` and does not
    give its own is built with this one (a term's own ``protocol``, and a term built already,
    are kept). A completion is parsed once per reading its terms use
    (:func:`~finers_mm.structures.parsing.parse_completion` with the term's protocol).

    Args:
        terms (list[dict | BaseReward]): term configs (built with ``REWARDS``) or built terms.
            Their names (log keys) must be unique.
        protocol (str): ``'finers_mm'`` (default) or ``'authors'``
            (:mod:`finers_mm.structures.protocols`); also the reading ``RewardResult.invalid``
            reports.
    """

    def __init__(self,
                 terms: Sequence[Union[dict, BaseReward]],
                 protocol: str = DEFAULT_PROTOCOL) -> None:
        if not terms:
            raise ValueError('CompositeReward: terms is empty; give at least one reward term')
        self.protocol = check_protocol(protocol)
        self.terms: List[BaseReward] = [
            REWARDS.build(self._with_protocol(term)) if isinstance(term, dict) else term
            for term in terms
        ]
        names = [term.name for term in self.terms]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f'CompositeReward: term names {duplicated} are used more than once; '
                             f'give the terms distinct names (the log keys)')
        self._weights = np.array([term.weight for term in self.terms], dtype=np.float64)

    def _with_protocol(self, term: dict) -> dict:
        """A copy of a term config with this reward's protocol where the term takes one."""
        if 'protocol' in term or not _takes_protocol(term.get('type')):
            return term
        return dict(term, protocol=self.protocol)

    @property
    def requires(self) -> Tuple[str, ...]:
        """The :class:`RewardSample` fields the terms need, in first-use order."""
        return tuple(dict.fromkeys(name for term in self.terms for name in term.requires))

    @property
    def max_total(self) -> float:
        """The largest total a completion can get (every term is in ``[0, 1]``)."""
        return float(np.clip(self._weights, 0, None).sum())

    def __call__(self, completions: Sequence[str],
                 samples: Sequence[RewardSample]) -> RewardResult:
        """Score completions, each against its sample.

        Args:
            completions (Sequence[str]): N decoded completions.
            samples (Sequence[RewardSample]): N samples, the i-th for completion i (the n rollouts
                of a prompt share one sample object).

        Returns:
            RewardResult: total, unweighted term values and the invalid flags.
        """
        if len(completions) != len(samples):
            raise ValueError(f'CompositeReward: {len(completions)} completions but '
                             f'{len(samples)} samples; give one sample per completion')
        values = np.zeros((len(self.terms), len(completions)), dtype=np.float64)
        invalid = np.zeros(len(completions), dtype=bool)
        protocols = [getattr(term, 'protocol', DEFAULT_PROTOCOL) for term in self.terms]
        for index, (text, sample) in enumerate(zip(completions, samples)):
            parsed = _Parses(text, sample.stage)
            invalid[index] = parsed[self.protocol].invalid is not None
            for row, (term, protocol) in enumerate(zip(self.terms, protocols)):
                values[row, index] = term(parsed[protocol], sample)
        total = (self._weights[:, None] * values).sum(axis=0)
        return RewardResult(
            total=total.astype(np.float32),
            terms={term.name: values[row].astype(np.float32)
                   for row, term in enumerate(self.terms)},
            invalid=invalid)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(terms={self.terms!r}, protocol={self.protocol!r})'


class _Parses:
    """One completion parsed once per protocol asked for (``parses[protocol]``)."""

    def __init__(self, text: str, stage: str) -> None:
        self.text, self.stage = text, stage
        self._parsed: Dict[str, ParsedCompletion] = {}

    def __getitem__(self, protocol: str) -> ParsedCompletion:
        if protocol not in self._parsed:
            self._parsed[protocol] = parse_completion(self.text, self.stage, protocol=protocol)
        return self._parsed[protocol]


def _takes_protocol(term_type) -> bool:
    """Whether a term type (a registered name or a class) has a ``protocol`` argument."""
    cls = REWARDS.get(term_type) if isinstance(term_type, str) else term_type
    if cls is None:
        return False  # REWARDS.build reports the unknown type
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):  # no signature to read: hand it nothing
        return False
    return any(p.name == 'protocol' or p.kind is inspect.Parameter.VAR_KEYWORD
               for p in parameters)
