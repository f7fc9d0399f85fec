# Copyright (c) finers_mm contributors. All rights reserved.
"""Shared pytest fixtures. Tests run on CPU, offline, with tiny models built locally once per session.

Helpers shared by several test modules live in :mod:`finers_mm.testing`; test modules never import
each other.
"""
import os

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')

import pytest  # noqa: E402


@pytest.fixture(scope='session')
def tiny_models(tmp_path_factory):
    """Paths of the tiny local models (:func:`finers_mm.testing.tiny_models.build_tiny_models`)."""
    from finers_mm.testing.tiny_models import build_tiny_models
    return build_tiny_models(str(tmp_path_factory.mktemp('tiny_models')), seed=0)


@pytest.fixture(scope='session')
def model_dirs(tiny_models, tmp_path_factory):
    """Local dirs of the three tiny families: Qwen2.5-VL, Qwen2-VL and a Qwen3-VL built here."""
    from finers_mm.testing.tiny_models import build_tiny_qwen3_vl
    qwen3_vl = build_tiny_qwen3_vl(str(tmp_path_factory.mktemp('tiny_qwen3_vl')), seed=0)
    return dict(qwen2_5_vl=tiny_models['qwen2_5_vl'], qwen2_vl=tiny_models['qwen2_vl'],
                qwen3_vl=qwen3_vl)


@pytest.fixture(scope='session')
def oracle(tmp_path_factory):
    """The oracle JSON of the bundled questions (each question's explorer region, crop window, GT
    box and two points inside it) for ``OracleQwen25VLAdapter`` (:mod:`finers_mm.testing.scripted`),
    and each sample's crop window by ``sample_idx``."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from finers_mm.registry import DATASETS
    from finers_mm.testing import BUNDLED_DATA
    from finers_mm.testing.chains import SAM_CONFIG
    from finers_mm.testing.scripted import write_oracle
    init_default_scope('finers_mm')
    cfg = Config.fromfile(SAM_CONFIG)
    data_cfg = cfg.test_dataloader.dataset
    data_cfg.data_root = BUNDLED_DATA
    path = tmp_path_factory.mktemp('oracle') / 'oracle.json'
    windows = write_oracle(DATASETS.build(data_cfg), str(path), cfg.frames.crop_min_side,
                           tuple(cfg.frames.explorer_size), cfg.frames.region_size)
    return dict(file=str(path), windows=windows)


@pytest.fixture(scope='session', autouse=True)
def _single_torch_thread():
    """One intra-op thread: the tiny models run ~100x faster than with 2 threads on a loaded 2-core box."""
    import torch
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
