# Copyright (c) finers_mm contributors. All rights reserved.
"""finers_mm: FineRS as an OpenMMLab plugin.

Importing the package (directly or with ``custom_imports=dict(imports=['finers_mm'])``) applies the
compatibility fixes in :mod:`finers_mm.utils.compat`; the components register lazily through the
``locations`` of :mod:`finers_mm.registry`.
"""
from .utils.compat import register_checkpoint_loader
from .version import __version__

register_checkpoint_loader()

__all__ = ['__version__']
