# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRS-4k dataset, its transforms and the one image reader of every tool."""
from . import transforms  # noqa: F401  (registers the FineRS transforms)
from .finers4k import FineRS4kDataset, FineRSAnnotationError
from . import benchmarks  # noqa: F401,E402  (registers the public benchmarks' datasets)
from .image_files import ImageFileError, ImageHeader, decode_image, read_image_header

__all__ = [
    'FineRS4kDataset', 'FineRSAnnotationError', 'ImageFileError', 'ImageHeader', 'decode_image',
    'read_image_header'
]
