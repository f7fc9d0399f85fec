# Copyright (c) finers_mm contributors. All rights reserved.
"""Training- and test-loop hooks."""
from .checkpoint_check_hook import CheckpointCheckHook
from .frames_check_hook import FramesCheckHook
from .protocol_check_hook import ProtocolCheckHook
from .visualization_hook import FineRSVisualizationHook

__all__ = ['CheckpointCheckHook', 'FineRSVisualizationHook', 'FramesCheckHook',
           'ProtocolCheckHook']
