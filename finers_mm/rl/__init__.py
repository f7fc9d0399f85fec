# Copyright (c) finers_mm contributors. All rights reserved.
"""Reinforcement learning: reward terms, GRPO math, rollout, GRPO hook, region search."""
from .grpo_hook import GRPOHook
from .rewards import *  # noqa: F401,F403
from .rollout import Rollout

__all__ = ['GRPOHook', 'Rollout']
