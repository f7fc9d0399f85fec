# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRS models: VLM adapters, prompts and parsing, explorer, refiner, mask heads, detector."""
from .data_preprocessor import FineRSDataPreprocessor
from .detector import FineRSDetector
from .explorer import GlobalExplorer
from .hypotheses import adaptive_window, fuse_scores, select_hypothesis
from .mask_heads import MaskPrediction, SAMMaskHead
from .refiner import LocalRefiner
from .stages import ExplorerOutput, Query, RefinerOutput
from .vlm import *  # noqa: F401,F403

__all__ = [
    'FineRSDataPreprocessor', 'FineRSDetector', 'GlobalExplorer', 'LocalRefiner', 'SAMMaskHead',
    'MaskPrediction', 'Query', 'ExplorerOutput', 'RefinerOutput', 'fuse_scores',
    'select_hypothesis', 'adaptive_window'
]
