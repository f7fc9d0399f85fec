# Copyright (c) finers_mm contributors. All rights reserved.
"""Refuse to run a config whose components' protocol differs from its ``protocol``."""
from typing import List

from mmengine.hooks import Hook

from finers_mm.registry import HOOKS
from finers_mm.structures.protocols import check_protocol
from finers_mm.utils.protocol_config import apply_protocol
from .config_paths import MISSING, applied_arguments


@HOOKS.register_module()
class ProtocolCheckHook(Hook):
    """Before a run: every component that takes a ``protocol`` must run by the config's.

    finers_mm's loader (:func:`~finers_mm.utils.run_config.load_config`, used by every tool) hands
    the config's top-level ``protocol`` to each component
    (:func:`~finers_mm.utils.protocol_config.apply_protocol`). A config read otherwise (stock
    mmdet tools, ``Runner.from_cfg(Config.fromfile(...))``) would run its components by their
    written or default protocol, e.g. the authors' weights asked finers_mm's prompts; this hook (in
    ``default_hooks`` of ``configs/_base_/default_runtime.py``) turns that into an error naming
    each component and the fix. A config without ``protocol`` is not checked.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        """Compare the run's components with its ``protocol``.

        Raises:
            RuntimeError: an unknown protocol, or a component whose ``protocol`` (written, or its class's default)
                differs from the config's.
        """
        cfg = runner.cfg
        if cfg is None or cfg.get('protocol', None) is None:
            return
        source = getattr(cfg, 'filename', None) or 'the config'
        try:
            check_protocol(cfg.protocol)
        except ValueError as error:
            raise RuntimeError(f'{source}: {error}') from None
        problems = protocol_mismatches(cfg)
        if problems:
            raise RuntimeError(
                f'{source}: these components do not run by its protocol {cfg.protocol!r}: '
                + '; '.join(problems) + '. The config was read without applying `protocol`: read '
                'it with finers_mm.utils.run_config.load_config (tools/train.py and tools/test.py '
                'do), or write protocol=... in those components too.')


def protocol_mismatches(cfg) -> List[str]:
    """The ``protocol`` arguments of ``cfg``'s components that differ from ``cfg.protocol``.

    An argument the config does not write counts with its class's default.

    Args:
        cfg (mmengine.Config): a merged config with ``protocol``.

    Returns:
        list[str]: ``'<dotted path> is <value>'`` per mismatch.
    """
    return [f'{path} is {"unset" if written is MISSING else written!r}'
            for path, written, _ in applied_arguments(cfg, apply_protocol)
            if written != cfg.protocol]
