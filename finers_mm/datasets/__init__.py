# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRS-4k dataset, its transforms and the synthetic FineRS-format data generator."""
from . import transforms  # noqa: F401  (registers the FineRS transforms)
from .finers4k import FineRS4kDataset, FineRSAnnotationError

__all__ = ['FineRS4kDataset', 'FineRSAnnotationError']
