# Copyright (c) finers_mm contributors. All rights reserved.
"""Training- and test-loop hooks."""
from .visualization_hook import FineRSVisualizationHook

__all__ = ['FineRSVisualizationHook']
