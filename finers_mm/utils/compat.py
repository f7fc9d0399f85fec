# Copyright (c) finers_mm contributors. All rights reserved.
"""Compatibility fixes for the pinned stack (torch 2.14, mmengine 0.10.7, mmdet 3.3,
transformers 5).

- Checkpoints, applied once at ``import finers_mm`` (:func:`register_checkpoint_loader`): torch
  >= 2.6 defaults ``torch.load(weights_only=True)``. mmengine 0.10.7 checkpoints hold more than
  tensors (the message hub's ``HistoryBuffer``, numpy scalars, the config text), so resuming or
  ``load_from`` fails with ``Unsupported global: mmengine.logging.history_buffer.HistoryBuffer``.
  The fix is scoped: it replaces only mmengine's local-file checkpoint scheme (the loader mmengine
  uses for paths without a URL prefix) with one that passes ``weights_only=False``. ``torch.load``
  itself, and every other caller of it, keep torch's safe default. Only load checkpoints you
  trust, exactly as with mmengine on older torch. Alongside, the loads are guarded
  (:mod:`finers_mm.utils.checkpoint_guard`): a file that is not a checkpoint is named as such, and
  a checkpoint given as a URL is refused unless ``FINERS_MM_ALLOW_DOWNLOAD=1``.
- mmdet's text encoders, applied per detector by whoever builds one
  (:func:`patch_mmdet_text_encoders`): mmdet 3.3's BERT wrapper (Grounding DINO, GLIP) predates
  transformers 5.
"""
import os.path as osp
from typing import Any, Callable, Optional

import torch
from mmengine.runner.checkpoint import CheckpointLoader

from .checkpoint_guard import guard_downloads, is_unreadable_error, unreadable_checkpoint


def load_local_mmengine_checkpoint(filename: str, map_location: Optional[Any] = None) -> Any:
    """mmengine's local-file checkpoint loader, with the pre-2.6 ``torch.load`` behaviour.

    Args:
        filename (str): path of a local checkpoint file (``~`` is expanded).
        map_location: passed to :func:`torch.load`.

    Returns:
        The unpickled checkpoint (usually a dict with ``state_dict``, ``meta``, ``message_hub``...).

    Raises:
        FileNotFoundError: the file does not exist.
        IsADirectoryError: ``filename`` is a folder.
        ValueError: the file is not a checkpoint (empty, truncated, text, an image, safetensors...);
            the message names it and what it seems to be.
    """
    filename = osp.expanduser(filename)
    if osp.isdir(filename):
        raise IsADirectoryError(
            f'checkpoint {filename} is a folder: give the .pth file tools/train.py wrote (a '
            "Hugging Face model folder goes in the config, e.g. model.refiner.vlm.pretrained)")
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found.')
    try:
        return torch.load(filename, map_location=map_location, weights_only=False)
    except Exception as error:  # noqa: BLE001  (re-raised unless it says "not a checkpoint")
        if is_unreadable_error(error):
            raise unreadable_checkpoint(filename, error) from error
        raise


def register_checkpoint_loader() -> None:
    """Install :func:`load_local_mmengine_checkpoint` as mmengine's scheme for local paths, and
    refuse the downloading schemes unless allowed
    (:func:`~finers_mm.utils.checkpoint_guard.guard_downloads`)."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_local_mmengine_checkpoint, force=True)
    guard_downloads()


def patch_mmdet_text_encoders(detector: torch.nn.Module) -> None:
    """Let mmdet 3.3's text encoders (``BertModel``: Grounding DINO, GLIP) inside ``detector`` run
    on transformers 5.

    Two calls changed, and only the instances inside ``detector`` are patched (no class, no other
    model of the process):

    - ``tokenizer.batch_encode_plus`` is gone; ``tokenizer.__call__`` takes the same arguments;
    - Hugging Face BERT no longer extends a 3D ``(B, L, L)`` attention mask (mmdet's sub-sentence
      mask) to 4D; it is given the 4D additive mask transformers 4 built from it.

    Args:
        detector (torch.nn.Module): a built mmdet detector (any module; one without a text encoder
            is left as it is).
    """
    for module in detector.modules():
        tokenizer = getattr(module, 'tokenizer', None)
        if tokenizer is not None and callable(tokenizer) and not hasattr(
                tokenizer, 'batch_encode_plus'):
            object.__setattr__(tokenizer, 'batch_encode_plus', tokenizer.__call__)
        hf_model = getattr(module, 'model', None)
        if type(module).__name__ == 'BertEncoder' and isinstance(hf_model, torch.nn.Module):
            hf_model.forward = _with_4d_mask(hf_model.forward, hf_model)


def _with_4d_mask(forward: Callable, hf_model: torch.nn.Module) -> Callable:
    """``forward`` with a 3D 0/1 ``attention_mask`` (B, L, L) turned into the 4D additive one
    (B, 1, L, L): 0 where attended, the dtype's minimum elsewhere."""

    def wrapped(*args, attention_mask=None, **kwargs):
        if attention_mask is not None and attention_mask.dim() == 3:
            dtype = next(hf_model.parameters()).dtype
            keep = attention_mask[:, None].to(dtype)
            attention_mask = (1.0 - keep) * torch.finfo(dtype).min
        return forward(*args, attention_mask=attention_mask, **kwargs)

    return wrapped
