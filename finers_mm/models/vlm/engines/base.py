# Copyright (c) finers_mm contributors. All rights reserved.
"""The rollout-engine interface: what samples a GRPO rollout, and its lifecycle in training."""
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

if TYPE_CHECKING:
    from ..base import BaseVLMAdapter
    from ..generation import GenerationResult


class BaseRolloutEngine:
    """Samples completions for a batch of (image, prompt) pairs from a VLM adapter's policy.

    Every engine returns the same :class:`~finers_mm.models.vlm.GenerationResult` the adapter's
    own :meth:`~finers_mm.models.vlm.BaseVLMAdapter.generate` returns: the same texts for the
    rewards, completion ids tokenised as the adapter's tokenizer reads them, and the
    ``prompt_inputs`` built by the adapter's processor, so the policy and reference log-probs of
    the loss are computed by the adapter whatever engine sampled.

    The lifecycle, called by :class:`~finers_mm.rl.GRPOHook` (each a no-op here):

    - :meth:`setup` once before training (e.g. start an inference engine);
    - :meth:`before_rollout` / :meth:`after_rollout` around each rollout (wake an engine that
      sleeps between rollouts, push the current weights to it; put it back to sleep);
    - :meth:`after_optimizer_step` after each policy update (the engine's copy of the weights
      is stale from then on).

    Engines are built from config by type name from ``TASK_UTILS``, e.g.
    ``GRPOHook(rollout_engine=dict(type='HFRolloutEngine'))``.
    """

    def setup(self, adapter: 'BaseVLMAdapter', seed: int = 0, rank: int = 0) -> None:
        """Prepare the engine before training.

        Args:
            adapter (BaseVLMAdapter): the policy (the stage's ``vlm``).
            seed (int): the run's seed.
            rank (int): this process's rank.
        """

    def before_rollout(self, adapter: 'BaseVLMAdapter') -> None:
        """Make the engine ready to sample the current policy."""

    def after_rollout(self, adapter: 'BaseVLMAdapter') -> None:
        """Release what the engine does not need until the next rollout."""

    def after_optimizer_step(self, adapter: 'BaseVLMAdapter') -> None:
        """Note that the policy's weights changed."""

    def generate(self, adapter: 'BaseVLMAdapter', images: Sequence[np.ndarray],
                 prompts: Sequence[str], seed: Optional[int] = None,
                 **sampling) -> 'GenerationResult':
        """Sample completions for B (image, prompt) pairs.

        Args:
            adapter (BaseVLMAdapter): the policy.
            images (Sequence[np.ndarray]): B images (H, W, 3) uint8 RGB.
            prompts (Sequence[str]): B user texts.
            seed (int, optional): the rollout's seed (a function of the run's seed, the
                iteration and the rank). None: unseeded.
            **sampling: generation settings over the adapter's ``generation``
                (``do_sample``, ``temperature``, ``top_p``, ``top_k``, ``max_new_tokens``,
                ``num_return_sequences``).

        Returns:
            GenerationResult: B*n completions, prompt-major.
        """
        raise NotImplementedError(f'{type(self).__name__} must implement generate')
