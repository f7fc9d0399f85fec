# Copyright (c) finers_mm contributors. All rights reserved.
"""CheckpointCheckHook: a checkpoint that does not fit the model stops the run before it starts."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import find_latest_checkpoint

from finers_mm.registry import HOOKS
from finers_mm.utils.checkpoint_guard import MIN_FRACTION, check_checkpoint_fits


@HOOKS.register_module()
class CheckpointCheckHook(Hook):
    """Refuse a checkpoint (``load_from`` / ``resume``) that supplies (almost) none of the model's
    weights, instead of mmengine's non-strict load, which logs the missing keys and runs the
    untrained model (:func:`~finers_mm.utils.checkpoint_guard.check_checkpoint_fits`).

    It runs in mmengine's public ``after_load_checkpoint``, between reading the checkpoint and
    loading it into the model. ``tools/train.py`` and ``tools/test.py`` add it to every run (stock
    mmdet configs included) unless the config has one; a config may list it in ``custom_hooks`` to
    change ``min_fraction`` (0 turns the check off).

    Args:
        min_fraction (float): the least fraction of the model's weights (by element count) the
            checkpoint must supply.
    """

    priority = 'VERY_HIGH'  # before any other hook reads the checkpoint

    def __init__(self, min_fraction: float = MIN_FRACTION) -> None:
        self.min_fraction = min_fraction

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Check ``checkpoint`` against the runner's (unwrapped) model.

        Raises:
            ValueError: the checkpoint does not fit; the message names the file and the fix.
        """
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        check_checkpoint_fits(model, checkpoint, self._filename(runner), self.min_fraction)

    @staticmethod
    def _filename(runner) -> str:
        """The checkpoint's path, as the runner chose it (``load_from``, or the latest one in
        ``work_dir`` for an automatic resume)."""
        load_from: Optional[str] = runner.cfg.get('load_from', None)
        if load_from is None and runner.cfg.get('resume', False):
            load_from = find_latest_checkpoint(runner.work_dir)
        return load_from or 'the checkpoint'


def add_checkpoint_check(runner) -> None:
    """Register a :class:`CheckpointCheckHook` on ``runner`` unless it has one already.

    Args:
        runner (mmengine.runner.Runner): a built runner, before ``train()`` / ``test()``.
    """
    if not any(isinstance(hook, CheckpointCheckHook) for hook in runner.hooks):
        runner.register_hook(CheckpointCheckHook())
