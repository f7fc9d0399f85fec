# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRS visualisation: the visualiser and the record of what a drawing holds."""
from .layout import DrawingLayout, DrawnItem, Panel, TextLine
from .local_visualizer import FineRSVisualizer

__all__ = ['FineRSVisualizer', 'DrawingLayout', 'DrawnItem', 'Panel', 'TextLine']
