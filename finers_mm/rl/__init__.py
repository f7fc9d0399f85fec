# Copyright (c) finers_mm contributors. All rights reserved.
"""Reinforcement learning: reward terms, GRPO math, rollout, GRPO hook, region search."""
