# Copyright (c) finers_mm contributors. All rights reserved.
"""Reading a merged config by dotted path, and the defaults of the classes it names.

The config checks (:class:`FramesCheckHook`, :class:`ProtocolCheckHook`) compare what a config writes, or what its
components default to, with what ``frames`` / ``protocol`` say.
"""
import copy
import inspect
from typing import Any, Callable, List, Optional, Tuple

from finers_mm.registry import HOOKS, METRICS, MODELS, REWARDS, TRANSFORMS

#: what :func:`value_at` and :func:`class_default` return when there is no value
MISSING = object()


def value_at(node: Any, path: str) -> Any:
    """The value at a dotted path of dicts and lists (``'model.explorer.vlm'``), or
    :data:`MISSING`."""
    for part in path.split('.'):
        if isinstance(node, (list, tuple)):
            if not (part.isdigit() and int(part) < len(node)):
                return MISSING
            node = node[int(part)]
        else:  # a dict, a ConfigDict or the Config itself
            try:
                node = node[part]
            except (KeyError, TypeError):
                return MISSING
    return node


def class_default(component: Optional[dict], argument: str) -> Any:
    """The default of ``argument`` in the registered class of ``component``, or :data:`MISSING`.

    Args:
        component (dict, optional): a component config with ``type`` (a registered name or the
            class itself).
        argument (str): a constructor argument.
    """
    type_ = component.get('type') if isinstance(component, dict) else None
    if isinstance(type_, str):
        cls = (MODELS.get(type_) or TRANSFORMS.get(type_) or METRICS.get(type_)
               or REWARDS.get(type_) or HOOKS.get(type_))
    else:
        cls = type_ if inspect.isclass(type_) else None
    if cls is None:
        return MISSING
    # a subclass that passes **kwargs on (GlobalExplorer -> VLMStageModel) has the default higher up
    for owner in inspect.getmro(cls):
        if '__init__' not in vars(owner):
            continue
        parameters = inspect.signature(owner.__init__).parameters
        parameter = parameters.get(argument)
        if parameter is not None:
            return MISSING if parameter.default is inspect.Parameter.empty else parameter.default
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            return MISSING
    return MISSING


def applied_arguments(cfg, apply: Callable[[Any], List[str]]) -> List[Tuple[str, Any, Any]]:
    """What ``apply`` sets on a copy of ``cfg``, beside what ``cfg`` itself would build with.

    Args:
        cfg (mmengine.Config): a merged config.
        apply (Callable): sets arguments on a config in place and returns their dotted paths
            (:func:`~finers_mm.utils.frames_config.apply_frames`,
            :func:`~finers_mm.utils.protocol_config.apply_protocol`).

    Returns:
        list[tuple]: ``(path, written, wanted)`` per argument ``apply`` changed, ``written`` being
        the value in ``cfg``, else its class's default, else :data:`MISSING`.
    """
    expected = copy.deepcopy(cfg)
    rows = []
    for path in apply(expected):
        written = value_at(cfg, path)
        if written is MISSING:
            owner, _, argument = path.rpartition('.')
            written = class_default(value_at(expected, owner), argument)
        rows.append((path, written, value_at(expected, path)))
    return rows
