# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRS with an mmdet detector as the refiner (loaded by ``custom_imports``)."""
from .mmdet_refiner import SELECTIONS, MMDetRefiner, box_points, log_score

__all__ = ['MMDetRefiner', 'SELECTIONS', 'box_points', 'log_score']
