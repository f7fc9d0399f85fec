# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRS visualisation."""
from .local_visualizer import FineRSVisualizer

__all__ = ['FineRSVisualizer']
