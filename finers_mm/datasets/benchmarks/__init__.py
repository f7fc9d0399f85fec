# Copyright (c) finers_mm contributors. All rights reserved.
"""Public benchmarks FineRS is compared on, read from their published files."""
from .hrbench import HRBenchDataset
from .lazy_images import LazyImageError
from .mme_realworld import MMERealWorldDataset
from .reasonseg import (LoadReasonSegMask, ReasonSegAnnotationError, ReasonSegDataset,
                        ReasonSegParquetDataset, lisa_label_map)
from .refcoco import RefCocoQuestions, RefExpressionToQuestion
from .vqa_base import BENCHMARK_KEY, VQABenchmarkDataset
from .vstar import VStarDataset

__all__ = [
    'BENCHMARK_KEY', 'HRBenchDataset', 'LazyImageError', 'MMERealWorldDataset',
    'VQABenchmarkDataset', 'VStarDataset', 'LoadReasonSegMask', 'ReasonSegAnnotationError',
    'ReasonSegDataset', 'ReasonSegParquetDataset', 'lisa_label_map', 'RefCocoQuestions',
    'RefExpressionToQuestion'
]
