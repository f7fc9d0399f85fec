# Copyright (c) finers_mm contributors. All rights reserved.
"""Turning the command-line flags shared by ``tools/train.py`` and ``tools/test.py`` into a config.

The precedence is mmdet's: a flag beats the config file, which beats the default.
"""
import os
import os.path as osp
from typing import Optional

from mmengine.config import Config


def load_run_config(config: str, cfg_options: Optional[dict] = None, launcher: str = 'none',
                    work_dir: Optional[str] = None) -> Config:
    """Read a config file and apply the flags every tool takes.

    Args:
        config (str): path of the config file.
        cfg_options (dict, optional): ``--cfg-options`` key-value pairs, merged last.
        launcher (str): ``--launcher`` (``none``, ``pytorch``, ``slurm`` or ``mpi``).
        work_dir (str, optional): ``--work-dir``; otherwise the config's ``work_dir``; otherwise
            ``./work_dirs/<config file name without extension>``.

    Returns:
        Config: the merged config, with ``launcher`` and ``work_dir`` set.

    Raises:
        FileNotFoundError: the config file does not exist.
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file {config!r} does not exist')
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    return cfg


def set_local_rank_env(local_rank: int) -> None:
    """Export ``LOCAL_RANK`` for launchers that pass ``--local-rank`` instead of setting it."""
    os.environ.setdefault('LOCAL_RANK', str(local_rank))
