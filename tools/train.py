# Copyright (c) finers_mm contributors. All rights reserved.
"""Train a model from an mmengine config: a FineRS stage, or any stock mmdet detector.

Examples::

    python tools/train.py configs/finers/gse_qwen7b.py
    bash tools/dist_train.sh configs/finers/gse_qwen7b.py 8
    python tools/train.py CONFIG --resume                 # from the latest checkpoint in work_dir
    python tools/train.py CONFIG --cfg-options train_cfg.max_iters=10
"""
import argparse
import logging
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import finers_mm  # noqa: E402,F401  (applies the checkpoint-loading fix before any runner exists)
from finers_mm.engine.hooks.checkpoint_check_hook import add_checkpoint_check  # noqa: E402
from finers_mm.utils.run_config import (  # noqa: E402
    init_cpu_distributed, load_run_config, process_group_scope, set_local_rank_env)
from finers_mm.utils.run_folder import unique_run_second  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import print_log  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line (mmdet's ``tools/train.py`` flags)."""
    parser = argparse.ArgumentParser(description='Train a finers_mm or mmdet model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp', action='store_true', default=False,
        help='enable automatic mixed precision (AmpOptimWrapper; needs a GPU)')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help='scale the learning rate by the real batch size over auto_scale_lr.base_batch_size')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or, with no value, from the latest one in work_dir')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs, e.g. train_cfg.max_iters=10')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    set_local_rank_env(args.local_rank)
    return args


def build_train_config(args: argparse.Namespace) -> Config:
    """The config this run trains with: the file, then ``--cfg-options``, then the other flags.

    Args:
        args (argparse.Namespace): the output of :func:`parse_args`.

    Returns:
        Config: the merged config.

    Raises:
        ValueError: ``--auto-scale-lr`` on a config without ``auto_scale_lr.base_batch_size``.
    """
    cfg = load_run_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print_log('AMP is already enabled in the config.', logger='current', level=logging.WARNING)
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'base_batch_size' not in (cfg.get('auto_scale_lr') or {}):
            raise ValueError(
                f'--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=...)` in {args.config}')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = build_train_config(args)
    with process_group_scope():  # a launch's group ends before the interpreter does
        init_cpu_distributed(cfg)
        from mmengine.registry import RUNNERS
        from mmengine.runner import Runner
        # two runs in one work_dir never share a run folder (mmengine names it by the second)
        with unique_run_second(cfg.work_dir):
            runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
        # a load_from / resume checkpoint that fits no part of the model stops the run
        add_checkpoint_check(runner)
        runner.train()


if __name__ == '__main__':
    main()
