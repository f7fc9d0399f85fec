# Copyright (c) finers_mm contributors. All rights reserved.
"""Training-loop components: hooks, loops, optimiser constructors."""
from .hooks import CheckpointCheckHook, FineRSVisualizationHook, FramesCheckHook

__all__ = ['CheckpointCheckHook', 'FineRSVisualizationHook', 'FramesCheckHook']
