# Copyright (c) finers_mm contributors. All rights reserved.
"""The weighted sum of reward terms that GRPO optimises.

The authors' two term lists are the rewards of ``configs/finers/lpr_qwen7b.py`` (``lpr_reward``) and
``configs/finers/gse_qwen7b.py`` (``gse_reward``).
"""
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np

from finers_mm.registry import REWARDS
from finers_mm.structures.parsing import parse_completion
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

        reward = dict(type='CompositeReward', terms=[
            dict(type='ThinkFormatReward'), dict(type='BoxIoUReward', iou_thr=0.5, weight=2.0),
            ...])

    Args:
        terms (list[dict | BaseReward]): term configs (built with ``REWARDS``) or built terms.
            Their names (log keys) must be unique.
    """

    def __init__(self, terms: Sequence[Union[dict, BaseReward]]) -> None:
        if not terms:
            raise ValueError('CompositeReward: terms is empty; give at least one reward term')
        self.terms: List[BaseReward] = [
            REWARDS.build(term) if isinstance(term, dict) else term for term in terms
        ]
        names = [term.name for term in self.terms]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f'CompositeReward: term names {duplicated} are used more than once; '
                             f'give the terms distinct names (the log keys)')
        self._weights = np.array([term.weight for term in self.terms], dtype=np.float64)

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
        for index, (text, sample) in enumerate(zip(completions, samples)):
            parsed = parse_completion(text, sample.stage)
            invalid[index] = parsed.invalid is not None
            for row, term in enumerate(self.terms):
                values[row, index] = term(parsed, sample)
        total = (self._weights[:, None] * values).sum(axis=0)
        return RewardResult(
            total=total.astype(np.float32),
            terms={term.name: values[row].astype(np.float32)
                   for row, term in enumerate(self.terms)},
            invalid=invalid)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(terms={self.terms!r})'
