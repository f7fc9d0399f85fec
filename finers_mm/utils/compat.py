# Copyright (c) finers_mm contributors. All rights reserved.
"""Compatibility fixes for the pinned stack, applied once at ``import finers_mm``.

torch >= 2.6 defaults ``torch.load(weights_only=True)``. mmengine 0.10.7 checkpoints hold more than
tensors (the message hub's ``HistoryBuffer``, numpy scalars, the config text), so resuming or
``load_from`` fails with ``Unsupported global: mmengine.logging.history_buffer.HistoryBuffer``.

The fix is scoped: it replaces only mmengine's local-file checkpoint scheme (the loader mmengine uses
for paths without a URL prefix) with one that passes ``weights_only=False``. ``torch.load`` itself, and
every other caller of it, keep torch's safe default. Only load checkpoints you trust, exactly as with
mmengine on older torch.
"""
import os.path as osp
from typing import Any, Optional

import torch
from mmengine.runner.checkpoint import CheckpointLoader


def load_local_mmengine_checkpoint(filename: str, map_location: Optional[Any] = None) -> Any:
    """mmengine's local-file checkpoint loader, with the pre-2.6 ``torch.load`` behaviour.

    Args:
        filename (str): path of a local checkpoint file (``~`` is expanded).
        map_location: passed to :func:`torch.load`.

    Returns:
        The unpickled checkpoint (usually a dict with ``state_dict``, ``meta``, ``message_hub``...).

    Raises:
        FileNotFoundError: the file does not exist.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=False)


def register_checkpoint_loader() -> None:
    """Install :func:`load_local_mmengine_checkpoint` as mmengine's scheme for local paths."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_local_mmengine_checkpoint, force=True)
