# Copyright (c) finers_mm contributors. All rights reserved.
"""Test (and evaluate) a checkpoint with an mmengine config: FineRS, or any stock mmdet detector.

Examples::

    python tools/test.py configs/finers/finers_qwen7b_test.py        # weights named in the config
    python tools/test.py CONFIG CHECKPOINT                           # an mmengine checkpoint
    bash tools/dist_test.sh CONFIG CHECKPOINT_OR_none 8 --out results.pkl
    python tools/test.py CONFIG CHECKPOINT --show-dir vis   # drawn predictions under work_dir/.../vis

Reliability: ``--out`` is checked writable before the model is built, and written atomically after
the metrics are logged and saved (a failed write loses no metrics and leaves no truncated pickle);
a checkpoint that fits no part of the model is refused (``CheckpointCheckHook``); two runs in one
``--work-dir`` never share a run folder (:func:`~finers_mm.utils.run_folder.unique_run_second`).
"""
import argparse
import os.path as osp
import sys
from typing import Any, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import finers_mm  # noqa: E402,F401  (applies the checkpoint-loading fix before any runner exists)
from finers_mm.engine.hooks.checkpoint_check_hook import add_checkpoint_check  # noqa: E402
from finers_mm.utils.fileio import check_writable, write_atomic  # noqa: E402
from finers_mm.utils.run_config import (  # noqa: E402
    init_cpu_distributed, load_run_config, process_group_scope, set_local_rank_env)
from finers_mm.utils.run_folder import unique_run_second  # noqa: E402
from mmdet.evaluation import DumpDetResults  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.fileio import dump  # noqa: E402
from mmengine.logging import print_log  # noqa: E402


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


class CollectDetResults(DumpDetResults):
    """mmdet's ``DumpDetResults`` (masks as RLE, GT dropped, gathered from every rank), keeping
    the results for :func:`main` to write once the metrics are logged and saved, instead of
    writing them among the metrics, where a failed write loses the metrics.

    Args:
        out_file_path (str): the ``--out`` file (``.pkl`` / ``.pickle``).
    """

    def __init__(self, out_file_path: str) -> None:
        super().__init__(out_file_path=out_file_path)
        self.collected: Optional[list] = None

    def compute_metrics(self, results: list) -> dict:
        """Keep ``results`` (on rank 0, after the gather); no metric."""
        self.collected = results
        return {}


def write_results(collector: CollectDetResults) -> None:
    """Write the collected predictions to ``--out`` atomically (rank 0; nothing on the others).

    Raises:
        OSError: the write failed (e.g. a full disk); ``--out`` keeps its previous content.
    """
    if collector.collected is None:
        return
    write_atomic(collector.out_file_path, dump(collector.collected, file_format='pkl'))
    print_log(f'Results has been saved to {collector.out_file_path}.', logger='current')


def main(argv=None) -> dict:
    """Run the test: the config's metrics, then ``--out``.

    Args:
        argv (list[str], optional): the command line without the program name; None reads
            ``sys.argv``.

    Returns:
        dict: the metrics (as logged and saved under ``work_dir/<timestamp>/``).
    """
    args = parse_args(argv)
    if args.out is not None:
        check_writable(args.out, '--out')  # now, not after the whole evaluation
    cfg = build_test_config(args)
    with process_group_scope():  # a launch's group ends before the interpreter does
        return _run(args, cfg)


def _run(args: argparse.Namespace, cfg: Config) -> dict:
    """Build the Runner, test, write ``--out``; the metrics."""
    init_cpu_distributed(cfg)
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    with unique_run_second(cfg.work_dir):
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    keep_integer_metrics(runner)
    add_checkpoint_check(runner)
    collector = None
    if args.out is not None:
        collector = CollectDetResults(args.out)
        runner.test_evaluator.metrics.append(collector)
    metrics = runner.test()  # logs the metrics and saves them under work_dir/<timestamp>/
    if collector is not None:
        write_results(collector)
    return metrics


if __name__ == '__main__':
    main()
