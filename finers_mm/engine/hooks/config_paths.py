# Copyright (c) finers_mm contributors. All rights reserved.
"""Reading a merged config by dotted path, and the defaults of the classes it names.

The config checks (:class:`FramesCheckHook`, :class:`ProtocolCheckHook`) compare what a config writes, or what its
components default to, with what ``frames`` / ``protocol`` say.
"""
import inspect
from typing import Any, Optional

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

