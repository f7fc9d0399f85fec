# Copyright (c) finers_mm contributors. All rights reserved.
"""Reading a config the way every finers_mm tool does, and the command-line flags they share.

:func:`load_config` is ``Config.fromfile`` + ``--cfg-options`` + the config's ``frames`` applied to
every component (:mod:`finers_mm.utils.frames_config`); :func:`load_run_config` adds the flags of
``tools/train.py`` and ``tools/test.py``. The precedence is mmdet's: a flag beats the config file,
which beats the default.
"""
import contextlib
import datetime
import os
import os.path as osp
from typing import Iterator, Optional

import torch
from mmengine.config import Config

from .frames_config import apply_frames
from .protocol_config import apply_protocol


def load_config(config: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config file as finers_mm's tools do: merge ``cfg_options``, then apply ``frames``
    and ``protocol`` (:func:`~finers_mm.utils.protocol_config.apply_protocol`).

    Use it instead of ``Config.fromfile`` wherever a config that changes ``frames`` (a child
    config, ``frames.region_size=128`` in ``cfg_options``) must reach the pipelines and the model.

    Args:
        config (str): path of the config file.
        cfg_options (dict, optional): ``--cfg-options`` key-value pairs, merged before the
            frames are applied.

    Returns:
        Config: the merged config, its frame sizes set from ``cfg.frames``
        (:func:`~finers_mm.utils.frames_config.apply_frames`).

    Raises:
        FileNotFoundError: the config file does not exist.
        ValueError: a malformed ``frames``.
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file {config!r} does not exist')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    apply_frames(cfg)
    apply_protocol(cfg)
    return cfg


def load_run_config(config: str, cfg_options: Optional[dict] = None, launcher: str = 'none',
                    work_dir: Optional[str] = None) -> Config:
    """Read a config file (:func:`load_config`) and apply the flags every tool takes.

    Args:
        config (str): path of the config file.
        cfg_options (dict, optional): ``--cfg-options`` key-value pairs, merged last.
        launcher (str): ``--launcher`` (``none``, ``pytorch``, ``slurm`` or ``mpi``).
        work_dir (str, optional): ``--work-dir``; otherwise the config's ``work_dir``; otherwise
            ``./work_dirs/<config file name without extension>``.

    Returns:
        Config: the merged config, its frames applied, with ``launcher`` and ``work_dir`` set.

    Raises:
        FileNotFoundError: the config file does not exist.
        ValueError: a malformed ``frames``.
    """
    cfg = load_config(config, cfg_options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    return cfg


def init_cpu_distributed(cfg: Config, timeout: Optional[datetime.timedelta] = None,
                         backend: Optional[str] = None) -> bool:
    """Join a ``torchrun`` launch (``--launcher pytorch``) on a machine without a GPU.

    mmengine 0.10.7 cannot: its ``init_dist`` calls ``torch.cuda.set_device(LOCAL_RANK)`` ("Found no
    NVIDIA driver") and its default DDP wrapper passes ``device_ids=[LOCAL_RANK]``, which DDP
    refuses for a CPU module. So, before the Runner is built, this joins the process group with the
    config's ``env_cfg.dist_cfg`` (the Runner then skips ``init_dist``) and wraps the model in
    ``MMDistributedDataParallel`` without device ids. With a GPU, or another launcher, it does
    nothing. The one way every tool (train, test, search_best_region) joins a CPU launch.

    Args:
        cfg (Config): the run's config (``launcher`` set); ``model_wrapper_cfg`` is set in place.
        timeout (datetime.timedelta, optional): how long a rank may wait for the others; None
            keeps ``env_cfg.dist_cfg.timeout`` (or torch's default).
        backend (str, optional): the backend to use instead of ``env_cfg.dist_cfg.backend`` (a tool
            without a Runner, e.g. search_best_region.py, passes ``'gloo'``: a CPU run of a config
            written for GPUs).

    Returns:
        bool: whether this joined (or found) a CPU process group.

    Raises:
        ValueError: a backend other than gloo (nccl needs GPUs).
    """
    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available():
        return False
    dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}))
    config_backend = dist_cfg.pop('backend', 'nccl')
    backend = backend or config_backend
    dist_cfg.pop('init_backend', None)
    if timeout is not None:
        dist_cfg['timeout'] = timeout
    if backend != 'gloo':
        raise ValueError(f'a distributed run without a GPU needs the gloo backend, got '
                         f'{backend!r}: add --cfg-options env_cfg.dist_cfg.backend=gloo')
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=backend, **dist_cfg)
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    if wrapper.get('type', 'MMDistributedDataParallel') == 'MMDistributedDataParallel':
        cfg.model_wrapper_cfg = dict(wrapper, device_ids=None)
    return True


@contextlib.contextmanager
def process_group_scope() -> Iterator[None]:
    """Destroy, on the way out, a process group joined inside (by a tool's launch).

    A gloo group left to the interpreter's exit can abort the process there ("terminate called
    without an active exception", exit -6, seen on a 2-process CPU ``torchrun`` of tools/test.py
    after its results were written); torch asks for ``destroy_process_group`` before exit. A
    group that existed before (a caller's own) is left alone.
    """
    existed = torch.distributed.is_available() and torch.distributed.is_initialized()
    try:
        yield
    finally:
        if (not existed and torch.distributed.is_available()
                and torch.distributed.is_initialized()):
            torch.distributed.destroy_process_group()


def set_local_rank_env(local_rank: int) -> None:
    """Export ``LOCAL_RANK`` for launchers that pass ``--local-rank`` instead of setting it."""
    os.environ.setdefault('LOCAL_RANK', str(local_rank))
