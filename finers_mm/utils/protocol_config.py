# Copyright (c) finers_mm contributors. All rights reserved.
"""Apply a config's ``protocol`` to every component that takes one.

``protocol = 'authors'`` (or ``'finers_mm'``), written once at the top level of a config (or given
as ``--cfg-options protocol=authors``), must reach every stage, reward, metric, transform and loss
whose behaviour it decides (:mod:`finers_mm.structures.protocols`). As with ``frames``
(:mod:`finers_mm.utils.frames_config`), mmengine copies a base file's values when it reads it, so
finers_mm's loader (:func:`~finers_mm.utils.run_config.load_config`) calls :func:`apply_protocol`
once the config is merged, and :class:`~finers_mm.engine.hooks.ProtocolCheckHook` refuses to run a
config read otherwise whose components disagree with its ``protocol``.

A component config that writes its own ``protocol`` is overridden: the top-level key is the one
switch. Components without a ``protocol`` argument are not touched. The value is checked where
it is used: each component refuses an unknown protocol when it is built
(:func:`finers_mm.structures.protocols.check_protocol`).
"""
from typing import Any, List, Set

from .frames_config import type_name

#: registered component types with a ``protocol`` argument: the stages (prompts, coordinates, the
#: GRPO loss), the detector (which stage answers), the GRPO reward and its terms, the metric, the
#: frame transforms (resize) and the GT points
PROTOCOL_TYPES: Set[str] = {
    'GlobalExplorer', 'LocalRefiner', 'FineRSDetector', 'GRPOLoss', 'CompositeReward',
    'FineRSMetric', 'ExplorerView', 'RefinerCrop', 'SampleGTPoints',
}


def register_protocol_type(type_name_: str) -> None:
    """Declare that a component type (e.g. one of a project) takes a ``protocol`` argument.

    Args:
        type_name_ (str): the registered type name.
    """
    PROTOCOL_TYPES.add(type_name_)


def apply_protocol(cfg) -> List[str]:
    """Set ``protocol`` on every component config of :data:`PROTOCOL_TYPES` in ``cfg``, in place.

    Args:
        cfg (mmengine.Config): the merged config (``--cfg-options`` included).

    Returns:
        list[str]: the dotted paths of the ``protocol`` arguments that changed or were added,
        e.g. ``['model.explorer.protocol']``.

    """
    protocol = cfg.get('protocol', None)
    if protocol is None:
        return []
    changed: List[str] = []
    for key, value in cfg.items():
        if key != 'protocol':
            _apply(value, protocol, key, changed)
    return changed


def _apply(node: Any, protocol: str, path: str, changed: List[str]) -> None:
    """Walk ``node`` (dicts, lists, tuples) and set ``protocol`` on the typed dicts that take it."""
    if isinstance(node, dict):
        if type_name(node) in PROTOCOL_TYPES:
            if node.get('protocol', None) != protocol:
                changed.append(f'{path}.protocol')
            node['protocol'] = protocol
        for key, value in node.items():
            _apply(value, protocol, f'{path}.{key}', changed)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            _apply(value, protocol, f'{path}.{index}', changed)
