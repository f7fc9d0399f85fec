# Copyright (c) finers_mm contributors. All rights reserved.
"""What a checkpoint may be before finers_mm loads it: nothing is downloaded unless allowed, a file
that is not a checkpoint is named as such, and a checkpoint that does not fit the model is refused.

- **Downloads** (:func:`guard_downloads`, installed at ``import finers_mm``): mmengine downloads a
  checkpoint given as a URL (``https://``, ``torchvision://``, ``open-mmlab://``, ...) and unpickles
  it with ``weights_only=False``, so a URL would run code from the network. finers_mm refuses such a
  checkpoint unless the environment variable ``FINERS_MM_ALLOW_DOWNLOAD=1`` is set. This covers
  every mmengine load: ``load_from``, ``resume``, ``init_cfg=dict(type='Pretrained', ...)``,
  ``tools/demo.py --weights``.
- **Not a checkpoint** (:func:`unreadable_checkpoint`): an empty, truncated, text, image or
  safetensors file gives an error that names it and says what it seems to be.
- **Does not fit** (:func:`check_checkpoint_fits`): mmengine's non-strict load of a checkpoint that
  matches no parameter of the model logs the missing keys and runs the untrained model. A
  checkpoint that supplies less than :data:`MIN_FRACTION` of the model's weights is refused, with
  what it seems to hold (e.g. a FineRS stage given to the chain) and the fix.
"""
import functools
import os
import pickle
import re
from collections import Counter
from typing import Callable, Dict, Mapping, Optional, Tuple

import torch
from mmengine.runner.checkpoint import (CheckpointLoader, load_from_http, load_from_mmcls,
                                        load_from_openmmlab, load_from_pavi,
                                        load_from_torchvision)

#: set it to 1 to let mmengine download checkpoints given as URLs
ALLOW_DOWNLOAD_ENV = 'FINERS_MM_ALLOW_DOWNLOAD'
#: mmengine's schemes that download, and their loaders
DOWNLOAD_SCHEMES: Tuple[Tuple[Tuple[str, ...], Callable], ...] = (
    (('http://', 'https://'), load_from_http),
    (('modelzoo://', 'torchvision://'), load_from_torchvision),
    (('open-mmlab://', 'openmmlab://'), load_from_openmmlab),
    (('mmcls://', ), load_from_mmcls),
    (('pavi://', ), load_from_pavi),
)
#: a checkpoint supplying less of the model's weights (by element count) is refused
MIN_FRACTION = 0.05
#: FineRS stages (a checkpoint's ``model.type``) -> the part of FineRSDetector they become
STAGE_PARTS = {'GlobalExplorer': 'explorer', 'LocalRefiner': 'refiner'}
EXPORT_TOOL = 'tools/misc/export_stage.py'
EXPECTED = 'expected an mmengine checkpoint (the .pth tools/train.py writes, or a torch.save file)'


def downloads_allowed() -> bool:
    """Whether ``FINERS_MM_ALLOW_DOWNLOAD`` allows downloading checkpoints."""
    return os.environ.get(ALLOW_DOWNLOAD_ENV, '').strip().lower() in ('1', 'true', 'yes')


def guard_downloads() -> None:
    """Replace mmengine's downloading checkpoint schemes with ones that refuse unless allowed."""
    for prefixes, loader in DOWNLOAD_SCHEMES:
        CheckpointLoader.register_scheme(prefixes=list(prefixes), loader=_refusing(loader),
                                         force=True)


def _refusing(loader: Callable) -> Callable:
    """``loader``, run only when downloads are allowed."""

    @functools.wraps(loader)  # keeps its name: mmengine logs "Loads checkpoint by http backend"
    def refusing(filename: str, map_location=None, *args, **kwargs):
        if not downloads_allowed():
            raise ValueError(
                f'checkpoint {filename}: finers_mm does not download checkpoints (mmengine would '
                'download it and unpickle it with weights_only=False, running code from the '
                'network). Download it yourself, check it, and pass the local file; or set '
                f'{ALLOW_DOWNLOAD_ENV}=1 to let mmengine download it.')
        return loader(filename, map_location, *args, **kwargs)

    return refusing


def unreadable_checkpoint(filename: str, error: BaseException) -> ValueError:
    """The error for a file ``torch.load`` cannot read: names it, what it seems to be, the fix.

    Args:
        filename (str): the file given as a checkpoint.
        error (BaseException): what ``torch.load`` raised.

    Returns:
        ValueError: to raise ``from error``.
    """
    return ValueError(f'{filename} is not a checkpoint: {_sniff(filename)}; {EXPECTED}. '
                      f'(torch.load: {type(error).__name__}: {error})')


def is_unreadable_error(error: BaseException) -> bool:
    """Whether ``torch.load`` raised ``error`` because the file is not a (complete) checkpoint,
    not for another reason (e.g. a CUDA checkpoint on a machine without a GPU)."""
    if isinstance(error, (pickle.UnpicklingError, EOFError, UnicodeDecodeError)):
        return True
    if type(error).__name__ == 'SafetensorError':  # torch.load hands safetensors files over
        return True
    return isinstance(error, RuntimeError) and (
        'PytorchStreamReader' in str(error) or 'zip archive' in str(error))


def _sniff(filename: str) -> str:
    """What the first bytes of ``filename`` say it is."""
    with open(filename, 'rb') as f:
        head = f.read(64)
    if not head:
        return 'the file is empty (an interrupted save or copy?)'
    if head.startswith(b'PK\x03\x04'):
        return ('a zip archive that torch cannot read: a truncated or damaged checkpoint (an '
                'interrupted save or copy?); save or copy it again')
    if len(head) > 9 and head[8:10] == b'{"':
        return ('a safetensors file (Hugging Face weights) that cannot be read; a Hugging Face '
                'model folder goes in the config (e.g. model.refiner.vlm.pretrained), not here')
    if head[:2] == b'\xff\xd8' or head.startswith((b'\x89PNG', b'GIF8')):
        return 'an image'
    if head.lstrip()[:1] in (b'{', b'['):
        return 'a JSON / text file'
    if all(32 <= byte < 127 or byte in (9, 10, 13) for byte in head):
        return 'a text file (a config?)'
    return 'its bytes are not a pickle or a torch zip archive'


def check_checkpoint_fits(model: torch.nn.Module, checkpoint: Mapping, filename: str,
                          min_fraction: float = MIN_FRACTION) -> float:
    """Refuse a checkpoint that supplies (almost) none of the model's weights.

    A weight counts as supplied when the checkpoint's ``state_dict`` (or the checkpoint itself, a
    bare state dict) has its name (after mmengine's ``module.`` prefix removal) with its shape.

    Args:
        model (torch.nn.Module): the model the checkpoint is about to be loaded into (unwrapped).
        checkpoint (Mapping): the loaded checkpoint.
        filename (str): where it came from, for the message.
        min_fraction (float): the least fraction of the model's weights (by element count) the
            checkpoint must supply.

    Returns:
        float: the fraction of the model's weights the checkpoint supplies.

    Raises:
        ValueError: it supplies less than ``min_fraction``; the message says what the checkpoint
            seems to hold and the fix.
    """
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping):
        raise ValueError(f'{filename} holds a {type(checkpoint).__name__}, not a checkpoint with a '
                         f'state dict; {EXPECTED}')
    shapes = {re.sub(r'^module\.', '', key): tuple(getattr(value, 'shape', ()))
              for key, value in state.items()}
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    total = sum(_numel(shape) for shape in expected.values())
    supplied = sum(_numel(shape) for key, shape in expected.items() if shapes.get(key) == shape)
    fraction = supplied / total if total else 1.0
    if fraction >= min_fraction:
        return fraction
    matched = sum(shapes.get(key) == shape for key, shape in expected.items())
    raise ValueError(
        f'{filename} does not fit {type(model).__name__}: it supplies {matched} of its '
        f'{len(expected)} weights ({100 * fraction:.1f}% of the values; loading it would leave the '
        f'model as it is). {_diagnosis(shapes, expected, checkpoint, filename)}')


def _numel(shape: Tuple[int, ...]) -> int:
    count = 1
    for side in shape:
        count *= side
    return count


def _diagnosis(shapes: Dict[str, tuple], expected: Dict[str, tuple], checkpoint: Mapping,
               filename: str) -> str:
    """What the checkpoint seems to hold and what to do instead."""
    parts = _parts_matching(shapes, expected)
    if parts and all(key.startswith('vlm.') for key in shapes):
        stage = _model_type(checkpoint)
        part = STAGE_PARTS.get(stage)
        parts = [f'{part}.'] if f'{part}.' in parts else parts
        what = f'{stage}, vlm.* keys' if stage else 'GSE or LPR, vlm.* keys'
        keys = ' or '.join(f'model.{prefix}vlm.pretrained' for prefix in parts)
        return (f'It is a checkpoint of a FineRS stage ({what}): the weights of the model\'s '
                f'{" / ".join(repr(p) for p in parts)} part. Export it as a Hugging Face folder '
                f'(python {EXPORT_TOOL} STAGE_CONFIG {filename} OUT_DIR) and set {keys}=OUT_DIR, '
                'with no checkpoint.')
    if parts:
        prefix = parts[0]
        return (f'It holds the weights of a part of the model: its keys are the model\'s under '
                f'{prefix!r}. Load it into that part (e.g. model.{prefix}init_cfg='
                f"dict(type='Pretrained', checkpoint='{filename}')) instead of as the checkpoint "
                'of the whole model.')
    return (f'Its keys start with {_prefixes(shapes)}; the model\'s with {_prefixes(expected)}. '
            'Give a checkpoint written for this config (tools/train.py with it).')


def _parts_matching(shapes: Dict[str, tuple], expected: Dict[str, tuple]) -> list:
    """The prefixes ``p`` (e.g. ``'refiner.'``) under which the model holds most of the
    checkpoint's keys with their shapes, most matches first."""
    counts: Counter = Counter()
    for key, shape in expected.items():
        for index, char in enumerate(key):
            if char == '.' and shapes.get(key[index + 1:]) == shape:
                counts[key[:index + 1]] += 1
    return [prefix for prefix, count in counts.most_common() if count >= 0.5 * len(shapes)]


def _prefixes(keys: Dict[str, tuple], limit: int = 4) -> str:
    """``'vlm.* (57 keys), ...'``: the first components of ``keys``, most frequent first."""
    counts = Counter(key.split('.')[0] for key in keys)
    named = [f'{name}.* ({count} keys)' for name, count in counts.most_common(limit)]
    return ', '.join(named) + (', ...' if len(counts) > limit else '') if named else 'nothing'


def _model_type(checkpoint: Mapping) -> Optional[str]:
    """``model.type`` of the config mmengine saved in the checkpoint's ``meta``, if any."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, Mapping) else None
    text = meta.get('cfg') if isinstance(meta, Mapping) else None
    if not isinstance(text, str):
        return None
    # mmengine's pretty text: `model = dict(`, the model's own keys indented by 4 spaces, up to
    # the next line that starts at column 0
    block = re.search(r'^model = dict\(\n(.*?)\n(?=\S)', text, re.M | re.S)
    found = block and re.search(r"^    type='([\w.]+)'", block.group(1), re.M)
    return found.group(1) if found else None
