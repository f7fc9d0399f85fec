# Copyright (c) finers_mm contributors. All rights reserved.
"""Apply a config's ``frames`` to every component that takes one of the chain's sizes.

``frames`` (``configs/_base_/datasets/finers4k.py``) is the one place the sizes of the
coarse-to-fine chain are set: ``explorer_size`` (w, h), ``region_size``, ``refiner_size`` (w, h)
and ``crop_min_side``. A child config, or ``--cfg-options frames.region_size=128``, may change
them, and the pipelines (``ExplorerView``, ``RefinerCrop``) and the models (``GlobalExplorer``,
``LocalRefiner``, ``FineRSDetector``) must follow.

mmengine cannot do this by itself: a base file is evaluated when it is read, so
``frame_size=frames['explorer_size']`` (or ``{{_base_.frames.explorer_size}}``) copies the base's
value, and a child that sets ``frames = dict(...)`` changes that key alone, silently (mmengine
0.10.7 has no reference resolved after merging). mmdet's answer,
:func:`mmdet.utils.replace_cfg_vals`, resolves ``'${frames.region_size}'`` strings after loading;
it would leave a config read with plain ``Config.fromfile`` (stock mmdet tools, a notebook, this
repository's tests and benchmarks) holding strings where the components expect numbers. So the
configs keep ordinary values and finers_mm's loader
(:func:`~finers_mm.utils.run_config.load_config`, used by ``tools/train.py``, ``tools/test.py``
and ``tools/search_best_region.py``) calls
:func:`apply_frames` once the config and its ``--cfg-options`` are merged: every argument of
:data:`FRAME_ARGUMENTS` is set from the final ``cfg.frames`` on every component config of that
type, wherever it sits (pipelines, datasets, the model and its sub-models), so ``frames`` wins.

Read with plain ``Config.fromfile``, a config gets the sizes it was written with: the dataset base
writes its ``frames`` into its pipelines and the model bases leave the sizes to the components'
defaults, which are the authors' frames, the dataset base's values. Every config of this
repository therefore builds the same sizes both ways; only a config that CHANGES ``frames`` must
be read through the loader.
"""
import numbers
from typing import Any, Dict, List, Sequence

#: component type -> {argument: key of ``frames``}: every argument a config's ``frames`` sets
FRAME_ARGUMENTS: Dict[str, Dict[str, str]] = {
    'ExplorerView': dict(frame_size='explorer_size', region_size='region_size'),
    'RefinerCrop': dict(frame_size='refiner_size', min_side='crop_min_side'),
    'GlobalExplorer': dict(region_size='region_size'),
    'LocalRefiner': dict(frame_size='refiner_size'),
    'FineRSDetector': dict(crop_min_side='crop_min_side'),
}
#: the keys of ``frames``: (width, height) pairs and single sides, in pixels
FRAME_PAIRS = ('explorer_size', 'refiner_size')
FRAME_SIDES = ('region_size', 'crop_min_side')


def register_frame_arguments(type_name: str, **arguments: str) -> None:
    """Declare the frame arguments of a component type defined outside finers_mm (a project).

    Args:
        type_name (str): the registered type name, e.g. ``'ReasoningProposerDetector'``.
        **arguments (str): argument name -> key of ``frames``, e.g.
            ``crop_min_side='crop_min_side'``.

    Raises:
        ValueError: a value that is not a key of ``frames``.
    """
    unknown = sorted(set(arguments.values()) - set(FRAME_PAIRS + FRAME_SIDES))
    if unknown:
        raise ValueError(f'register_frame_arguments({type_name!r}): {unknown} are not keys of '
                         f'`frames`; known: {FRAME_PAIRS + FRAME_SIDES}')
    FRAME_ARGUMENTS[type_name] = dict(FRAME_ARGUMENTS.get(type_name, {}), **arguments)


def checked_frames(frames: Any, source: str = 'config') -> Dict[str, Any]:
    """Validate a ``frames`` dict: the four keys, positive whole pixel sizes.

    Args:
        frames (dict): the config's ``frames``.
        source (str): what to name in an error (the config file).

    Returns:
        dict: ``explorer_size`` and ``refiner_size`` as ``(w, h)`` tuples of int,
        ``region_size`` and ``crop_min_side`` as int.

    Raises:
        ValueError: not a dict, a missing key, or a size that is not positive.
    """
    fix = ('set frames = dict(explorer_size=(w, h), region_size=n, refiner_size=(w, h), '
           'crop_min_side=n) (configs/_base_/datasets/finers4k.py)')
    if not isinstance(frames, dict):
        raise ValueError(f'{source}: `frames` must be a dict, got {frames!r}; {fix}')
    missing = [key for key in FRAME_PAIRS + FRAME_SIDES if key not in frames]
    if missing:
        raise ValueError(f'{source}: `frames` has no {missing}; {fix}')
    checked = {}
    for key in FRAME_PAIRS + FRAME_SIDES:
        value = frames[key]
        sizes = value if key in FRAME_PAIRS else (value, )
        valid = (isinstance(sizes, Sequence) and not isinstance(sizes, str)
                 and len(sizes) == (2 if key in FRAME_PAIRS else 1)
                 and all(_positive_int(size) for size in sizes))
        if not valid:
            shape = '(width, height) of positive ints' if key in FRAME_PAIRS else 'a positive int'
            raise ValueError(f'{source}: frames.{key} must be {shape}, got {value!r}')
        checked[key] = tuple(int(size) for size in sizes) if key in FRAME_PAIRS else int(value)
    return checked


def apply_frames(cfg) -> List[str]:
    """Set every frame argument of ``cfg`` (:data:`FRAME_ARGUMENTS`) from ``cfg.frames``, in place.

    A config without ``frames`` (a stock mmdet config) is left as it is.

    Args:
        cfg (mmengine.Config): the merged config (``--cfg-options`` included).

    Returns:
        list[str]: the dotted paths of the arguments whose value changed (or was added), e.g.
        ``['train_dataloader.dataset.pipeline.3.region_size', 'model.explorer.region_size']``.

    Raises:
        ValueError: a malformed ``frames`` (:func:`checked_frames`).
    """
    if cfg.get('frames', None) is None:
        return []
    frames = checked_frames(cfg.frames, getattr(cfg, 'filename', None) or 'config')
    changed: List[str] = []
    for key, value in cfg.items():
        if key != 'frames':
            _apply(value, frames, key, changed)
    return changed


def _positive_int(value: Any) -> bool:
    """A whole number of pixels above 0 (``512`` or ``512.0``; not ``True``, ``'512'``)."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool) and value > 0
            and float(value).is_integer())


def same_size(value: Any, size: Any) -> bool:
    """Whether a written size equals a frames size (a list and a tuple of the same pair do)."""
    if isinstance(size, tuple):
        return isinstance(value, (list, tuple)) and tuple(value) == size
    return value == size


def type_name(component: dict) -> str:
    """``'ExplorerView'`` for ``type='ExplorerView'``, ``'finers_mm.ExplorerView'`` or the class."""
    type_ = component.get('type')
    name = getattr(type_, '__name__', type_)
    return name.rpartition('.')[2] if isinstance(name, str) else ''


def _apply(node: Any, frames: Dict[str, Any], path: str, changed: List[str]) -> None:
    """Walk ``node`` (dicts, lists, tuples) and set the frame arguments of typed dicts."""
    if isinstance(node, dict):
        for argument, key in FRAME_ARGUMENTS.get(type_name(node), {}).items():
            if argument not in node or not same_size(node[argument], frames[key]):
                changed.append(f'{path}.{argument}')
            node[argument] = frames[key]
        for key, value in node.items():
            _apply(value, frames, f'{path}.{key}', changed)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            _apply(value, frames, f'{path}.{index}', changed)
