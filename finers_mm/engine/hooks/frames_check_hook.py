# Copyright (c) finers_mm contributors. All rights reserved.
"""Refuse to run a config whose components' frame sizes differ from its ``frames``."""
from typing import List

from mmengine.hooks import Hook

from finers_mm.registry import HOOKS
from finers_mm.utils.frames_config import apply_frames, same_size
from .config_paths import MISSING, applied_arguments


@HOOKS.register_module()
class FramesCheckHook(Hook):
    """Before a run: every frame size the components will use must equal the config's ``frames``.

    finers_mm's loader (:func:`~finers_mm.utils.run_config.load_config`, used by
    ``tools/train.py``, ``tools/test.py`` and ``tools/search_best_region.py``) applies ``frames``
    to the pipelines and models after the config is merged. A config read otherwise (stock mmdet
    tools, ``Runner.from_cfg(Config.fromfile(...))`` in a notebook) keeps the sizes its base files
    were written with, which differ from its ``frames`` when a child config changed them. This
    hook (in ``default_hooks`` of ``configs/_base_/default_runtime.py``) turns that silent
    difference into an error naming each component argument and the fix. A config whose sizes
    agree with its ``frames`` (every shipped config, read either way) runs unchanged; a config
    without ``frames`` (a stock mmdet config) is not checked.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        """Compare the run's config with its ``frames``.

        Raises:
            RuntimeError: a component argument (written, or the class's default) that differs
                from ``frames``.
        """
        cfg = runner.cfg
        if cfg is None or cfg.get('frames', None) is None:
            return
        problems = frame_mismatches(cfg)
        if problems:
            source = getattr(cfg, 'filename', None) or 'the config'
            raise RuntimeError(
                f'{source}: the frame sizes of these components differ from its `frames` '
                f'{dict(cfg.frames)}: ' + '; '.join(problems) + '. The config was read without '
                "applying `frames` (mmengine copies a base file's values when it reads it): read "
                'it with finers_mm.utils.run_config.load_config (tools/train.py and tools/test.py '
                'do), or write the sizes in the components too.')


def frame_mismatches(cfg) -> List[str]:
    """The component arguments of ``cfg`` whose frame size differs from ``cfg.frames``.

    An argument the config does not write counts with its class's default.

    Args:
        cfg (mmengine.Config): a merged config with ``frames``.

    Returns:
        list[str]: ``'<dotted path> is <value>, frames give <value>'`` per mismatch.
    """
    return [f'{path} is {"unset" if written is MISSING else written!r}, frames give {want!r}'
            for path, written, want in applied_arguments(cfg, apply_frames)
            if written is MISSING or not same_size(written, want)]
