# Copyright (c) finers_mm contributors. All rights reserved.
"""A GRPO rollout: what GRPOHook hands the model's loss for one batch of prompts."""
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np
import torch


@dataclass
class Rollout:
    """n sampled completions per prompt, scored, with everything the GRPO loss needs.

    Rows are prompt-major: row ``i * n + j`` is sample ``j`` of prompt ``i``.

    Attributes:
        prompt_inputs (transformers.BatchFeature): the B prompts as fed to the policy.
        completion_ids (torch.LongTensor): (B*n, T) completion tokens, right-padded.
        completion_mask (torch.LongTensor): (B*n, T) 1 on completion tokens (up to the first
            end-of-sequence token, included).
        advantages (torch.Tensor): (B*n,) group-normalised rewards, one per completion.
        ref_logps (torch.Tensor, optional): (B*n, T) reference-policy log-probs (None without KL).
        old_logps (torch.Tensor, optional): (B*n, T) sampling-policy log-probs; None when the
            policy is updated once per rollout (then the old policy is the current one, detached).
        rewards (np.ndarray): (B*n,) total rewards.
        reward_terms (dict[str, np.ndarray]): (B*n,) unweighted value of each reward term.
        invalid (np.ndarray): (B*n,) bool, completions the parser rejected.
        num_generations (int): n.
        temperature (float): the sampling temperature (log-probs are taken at the same one).
        max_completion_length (int): the generation limit (``max_new_tokens``).
    """
    prompt_inputs: 'BatchFeature'  # noqa: F821
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    advantages: torch.Tensor
    ref_logps: Optional[torch.Tensor]
    old_logps: Optional[torch.Tensor]
    rewards: np.ndarray
    reward_terms: Dict[str, np.ndarray]
    invalid: np.ndarray
    num_generations: int
    temperature: float
    max_completion_length: int
