# Copyright (c) finers_mm contributors. All rights reserved.
"""Optimisers registered in finers_mm's ``OPTIMIZERS`` (built by name from ``optim_wrapper``)."""
from .kahan_adamw import KahanAdamW, kahan_adamw_step

__all__ = ['KahanAdamW', 'kahan_adamw_step']
