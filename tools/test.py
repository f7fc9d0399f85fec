# Copyright (c) finers_mm contributors. All rights reserved.
"""Test (and evaluate) a checkpoint with an mmengine config: FineRS, or any stock mmdet detector.

Examples::

    python tools/test.py configs/finers/finers_qwen7b_test.py        # weights named in the config
    python tools/test.py CONFIG CHECKPOINT                           # an mmengine checkpoint
    bash tools/dist_test.sh CONFIG CHECKPOINT_OR_none 8 --out results.pkl
    python tools/test.py CONFIG CHECKPOINT --show-dir vis   # drawn predictions under work_dir/.../vis
"""
import argparse
import os.path as osp
import sys
from typing import Any

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import finers_mm  # noqa: E402,F401  (applies the checkpoint-loading fix before any runner exists)
from finers_mm.utils.run_config import (  # noqa: E402
    init_cpu_distributed, load_run_config, set_local_rank_env)
from mmengine.config import Config, DictAction  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line (mmdet's ``tools/test.py`` flags)."""
    parser = argparse.ArgumentParser(description='Test (and evaluate) a finers_mm or mmdet model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument(
        'checkpoint', nargs='?', default=None,
        help='checkpoint file; omit it (or pass "none") to test the weights the config loads, e.g. '
        "a FineRS config's local Hugging Face model directories")
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--out', help='dump the predictions to a pickle file (.pkl / .pickle)')
    parser.add_argument('--show', action='store_true', help='show the predictions in a window')
    parser.add_argument('--show-dir', help='save drawn predictions under work_dir/timestamp/SHOW_DIR')
    parser.add_argument('--wait-time', type=float, default=2, help='seconds each shown image stays')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error(f'--out must end with .pkl or .pickle, got {args.out!r}')
    set_local_rank_env(args.local_rank)
    return args


def build_test_config(args: argparse.Namespace) -> Config:
    """The config this run tests with: the file, ``--cfg-options``, the checkpoint, visualisation.

    Args:
        args (argparse.Namespace): the output of :func:`parse_args`.

    Returns:
        Config: the merged config.
    """
    cfg = load_run_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    cfg.load_from = None if args.checkpoint in (None, 'none') else args.checkpoint
    if args.show or args.show_dir:
        from mmdet.engine.hooks.utils import trigger_visualization_hook
        cfg = trigger_visualization_hook(cfg, args)
    return cfg


def _python_scalars(value: Any) -> Any:
    """``value`` with every numpy scalar (nested in dicts, lists and tuples) as a Python one."""
    import numpy as np
    if isinstance(value, dict):
        return type(value)((key, _python_scalars(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_python_scalars(item) for item in value)
    return value.item() if isinstance(value, np.generic) else value


def keep_integer_metrics(runner) -> None:
    """Keep integer metrics (e.g. ``finers/num_samples``) in the metrics JSON of the test run.

    mmengine's message hub keeps each metric in a numpy history, so an int metric comes back as a
    ``numpy.int64``; ``LoggerHook._process_tags``, which makes the metrics json-friendly before
    dumping them, keeps Python scalars, tensors and arrays only, and writes anything else as null
    (a float metric survives because ``numpy.float64`` subclasses ``float``). So numpy scalars
    become Python ones before that.
    """
    from mmengine.hooks import LoggerHook
    for hook in runner.hooks:
        if isinstance(hook, LoggerHook):
            process_tags = hook._process_tags
            hook._process_tags = lambda tags, process=process_tags: process(_python_scalars(tags))


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = build_test_config(args)
    init_cpu_distributed(cfg)
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    keep_integer_metrics(runner)
    if args.out is not None:
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    runner.test()


if __name__ == '__main__':
    main()
