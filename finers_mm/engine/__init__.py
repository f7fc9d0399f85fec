# Copyright (c) finers_mm contributors. All rights reserved.
"""Training-loop components: hooks, loops, optimiser constructors."""
from .hooks import FineRSVisualizationHook, FramesCheckHook

__all__ = ['FineRSVisualizationHook', 'FramesCheckHook']
