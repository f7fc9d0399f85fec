# Copyright (c) finers_mm contributors. All rights reserved.
"""Inference APIs in mmdet's style."""
from .inferencer import FineRSInferencer

__all__ = ['FineRSInferencer']
