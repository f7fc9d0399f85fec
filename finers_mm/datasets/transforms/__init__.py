# Copyright (c) finers_mm contributors. All rights reserved.
"""Data transforms: high-res load, GT mask and points, explorer view, refiner crop, packing.

Importing this package registers every transform in ``finers_mm.registry.TRANSFORMS``.
"""
from .formatting import PackFineRSInputs
from .loading import LoadFineRSImage, LoadFineRSMask
from .targets import SampleGTPoints
from .views import ExplorerView, RefinerCrop

__all__ = [
    'LoadFineRSImage', 'LoadFineRSMask', 'SampleGTPoints', 'ExplorerView', 'RefinerCrop',
    'PackFineRSInputs'
]
