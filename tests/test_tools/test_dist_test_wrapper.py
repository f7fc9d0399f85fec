# Copyright (c) finers_mm contributors. All rights reserved.
"""``tools/dist_test.sh`` wraps the frozen chain the way its config says: DDP refuses a module
without a trainable parameter, so every chain config (the FineRS test configs and the public
benchmarks' configs) names mmengine's separate wrapper, which wraps only trainable sub-models."""
import glob
import os.path as osp

import pytest
import torch.distributed as dist
from mmengine.config import Config
from mmengine.registry import MODEL_WRAPPERS, init_default_scope

from finers_mm.registry import MODELS
from finers_mm.testing import REPO_ROOT
from finers_mm.testing.chains import SAM_CONFIG, chain_config

CHAIN_CONFIGS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', 'finers', 'finers_*_test*.py')) +
    glob.glob(osp.join(REPO_ROOT, 'configs', 'benchmarks', '*.py')))


@pytest.fixture(scope='module')
def process_group():
    started = not dist.is_initialized()
    if started:
        dist.init_process_group('gloo', store=dist.HashStore(), rank=0, world_size=1)
    yield
    if started:
        dist.destroy_process_group()


@pytest.mark.parametrize('path', CHAIN_CONFIGS, ids=lambda path: osp.relpath(path, REPO_ROOT))
def test_every_chain_config_names_the_separate_wrapper(path):
    cfg = Config.fromfile(path)
    assert cfg.model.type == 'FineRSDetector'
    assert cfg.model_wrapper_cfg.type == 'MMSeparateDistributedDataParallel'


def test_the_frozen_chain_wraps_under_its_configs_wrapper_and_not_under_ddp(
        tiny_models, process_group):
    init_default_scope('finers_mm')
    cfg = chain_config(SAM_CONFIG, tiny_models)
    model = MODELS.build(cfg.model)
    assert not any(p.requires_grad for p in model.parameters())
    with pytest.raises(RuntimeError, match='requires'):  # what dist_test.sh met before
        MODEL_WRAPPERS.build(dict(type='MMDistributedDataParallel', module=model,
                                  device_ids=None))
    wrapped = MODEL_WRAPPERS.build(dict(cfg.model_wrapper_cfg, module=model))
    assert wrapped.module is model
