# Copyright (c) finers_mm contributors. All rights reserved.
"""Losses of the FineRS stages: the GRPO loss (pure tensor functions and its registered module)."""
from .grpo_loss import (LOSS_TYPES, PER_SEQUENCE_LOSS_TYPES, GRPOLoss, GRPOLossOutput,
                        group_advantages, grpo_loss, kl_k3)

__all__ = [
    'LOSS_TYPES', 'PER_SEQUENCE_LOSS_TYPES', 'GRPOLoss', 'GRPOLossOutput', 'group_advantages',
    'grpo_loss', 'kl_k3'
]
