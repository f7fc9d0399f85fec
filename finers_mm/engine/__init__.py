# Copyright (c) finers_mm contributors. All rights reserved.
"""Training-loop components: hooks, loops, optimisers."""
from .hooks import CheckpointCheckHook, FineRSVisualizationHook, FramesCheckHook
from .optimizers import KahanAdamW
from .strategies import FullyShardStrategy

__all__ = ['CheckpointCheckHook', 'FineRSVisualizationHook', 'FramesCheckHook', 'FullyShardStrategy',
           'KahanAdamW']
