# Copyright (c) finers_mm contributors. All rights reserved.
"""Reinforcement learning: reward terms, rollout, the GRPO hook and its reference policy, the
retrospective region search."""
from .data_checks import check_reward_data
from .grpo_hook import GRPOHook
from .reference import REFERENCE_META_KEY, ReferencePolicy
from .rewards import *  # noqa: F401,F403
from .rollout import Rollout

__all__ = ['GRPOHook', 'ReferencePolicy', 'REFERENCE_META_KEY', 'Rollout', 'check_reward_data']
