# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRS models: VLM adapters, prompts, explorer, refiner, mask heads, losses, detector."""
from .data_preprocessor import FineRSDataPreprocessor
from .detector import FineRSDetector
from .explorer import GlobalExplorer
from .hypotheses import adaptive_window, fuse_scores, select_hypothesis
from .losses import GRPOLoss
from .mask_heads import MaskPrediction, SAMMaskHead
from .refiner import LocalRefiner
from .stages import ExplorerOutput, Query, RefinerOutput
from .vlm import *  # noqa: F401,F403

__all__ = [
    'FineRSDataPreprocessor', 'FineRSDetector', 'GRPOLoss', 'GlobalExplorer', 'LocalRefiner', 'SAMMaskHead',
    'MaskPrediction', 'Query', 'ExplorerOutput', 'RefinerOutput', 'fuse_scores',
    'select_hypothesis', 'adaptive_window'
]
