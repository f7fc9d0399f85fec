# Copyright (c) finers_mm contributors. All rights reserved.
"""GRPO through mmengine: tools/train.py with GRPOHook on the tiny models and the bundled data."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from finers_mm.testing import REPO_ROOT

CONFIGS = osp.join(REPO_ROOT, 'configs', 'finers')
BUNDLED = osp.join(REPO_ROOT, 'finers_mm', 'data', 'synthetic') + '/'


def _tiny_options(tiny_models) -> list:
    return [f"model.vlm.pretrained={tiny_models['qwen2_5_vl']}",
            f'train_dataloader.dataset.data_root={BUNDLED}']


def _train(config, work_dir, tiny_models, *options, check=True):
    return subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), osp.join(CONFIGS, config),
         '--work-dir', str(work_dir), '--cfg-options', *_tiny_options(tiny_models), *options],
        cwd=REPO_ROOT, env=dict(os.environ, OMP_NUM_THREADS='1'), capture_output=True, text=True,
        timeout=600, check=False) if not check else _checked(config, work_dir, tiny_models,
                                                             *options)


def _checked(config, work_dir, tiny_models, *options):
    result = _train(config, work_dir, tiny_models, *options, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def _scalars(work_dir) -> list:
    """The per-iteration scalars mmengine's LocalVisBackend wrote."""
    [path] = [osp.join(root, name) for root, _, names in os.walk(work_dir) for name in names
              if name == 'scalars.json']
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.mark.slow
def test_lpr_grpo_trains_logs_saves_and_resumes(tiny_models, tmp_path):
    _train('lpr_tiny.py', tmp_path, tiny_models, 'train_cfg.max_iters=2')
    logged = _scalars(tmp_path)
    assert [row['iter'] for row in logged] == [1, 2]
    for key in ('reward', 'reward_std', 'reward/think_format', 'reward/box_iou', 'reward/points',
                'reward/answer', 'invalid_rate', 'completion_length', 'rollout_time',
                'reference_time', 'update_time', 'loss', 'kl', 'clip_fraction', 'entropy'):
        assert key in logged[0], key
    limit = Config.fromfile(osp.join(CONFIGS, 'lpr_tiny.py')).custom_hooks[0]['max_new_tokens']
    assert 0 < logged[0]['completion_length'] <= limit
    assert osp.isfile(tmp_path / 'iter_2.pth')

    _train('lpr_tiny.py', tmp_path, tiny_models, 'train_cfg.max_iters=3', 'resume=True')
    assert osp.isfile(tmp_path / 'iter_3.pth')
    checkpoint = torch.load(tmp_path / 'iter_3.pth', map_location='cpu', weights_only=False)
    assert checkpoint['meta']['iter'] == 3


@pytest.mark.slow
def test_gse_refuses_retrospective_terms_without_best_region(tiny_models, tmp_path):
    """The authors' GSE reward (with the two best_region terms) on data without best_region."""
    config = tmp_path / 'gse_authors_reward_tiny.py'
    config.write_text(f"_base_ = ['{CONFIGS}/gse_tiny.py']\n"
                      "custom_hooks = [dict(type='GRPOHook', reward={{_base_.gse_reward}}, "
                      "num_generations=2, max_new_tokens=8)]\n")
    result = _train(str(config), tmp_path, tiny_models, 'train_cfg.max_iters=1', check=False)
    assert result.returncode != 0
    assert 'best_region' in result.stderr and 'search_best_region.py' in result.stderr
    assert 'annotations/train.json' in result.stderr and '12 of 12' in result.stderr


def test_lora_grpo_updates_only_the_adapter_and_uses_the_disabled_adapter_as_reference(
        tiny_models, tmp_path):
    init_default_scope('finers_mm')
    cfg = Config.fromfile(osp.join(CONFIGS, 'lpr_tiny.py'))
    cfg.merge_from_dict({'model.vlm.pretrained': tiny_models['qwen2_5_vl'],
                         'model.vlm.lora': dict(r=4, alpha=8, dropout=0.0),
                         'train_dataloader.dataset.data_root': BUNDLED,
                         'train_cfg.max_iters': 1, 'work_dir': str(tmp_path),
                         'optim_wrapper.optimizer.lr': 1e-2})
    runner = Runner.from_cfg(cfg)
    before = {name: p.detach().clone() for name, p in runner.model.named_parameters()}
    runner.train()
    [hook] = [h for h in runner.hooks if type(h).__name__ == 'GRPOHook']
    assert hook.reference is None  # no frozen copy: the LoRA-disabled model is the reference
    changed = {name for name, p in runner.model.named_parameters()
               if not torch.equal(p.detach(), before[name])}
    assert changed and all('lora_' in name for name in changed)


@pytest.mark.slow
@pytest.mark.parametrize('config', ['lpr_tiny_sft.py', 'gse_tiny_sft.py'])
def test_sft_configs_train_through_the_same_tools(config, tiny_models, tmp_path):
    result = _train(config, tmp_path, tiny_models, 'train_cfg.max_iters=3')
    logged = _scalars(tmp_path)
    assert len(logged) == 3 and 'target_tokens' in logged[0] and 'reward' not in logged[0]
    # 16 prompts a step from 12 records: an epoch-based sampler would end an epoch (and mmengine's
    # iteration-based loop sleep 2 s) at every step; the tiny configs sample endlessly
    assert 'Reach the end of the dataloader' not in result.stdout + result.stderr


#: a short GRPO step for the reference tests: 2 prompts, 2 samples of 16 tokens each
_SHORT = ['train_dataloader.batch_size=2', 'custom_hooks.0.num_generations=2',
          'custom_hooks.0.max_new_tokens=16']


@pytest.fixture(scope='module')
def warm_start_checkpoint(tiny_models, tmp_path_factory):
    """A stage checkpoint whose weights differ from ``pretrained`` (a stand-in SFT warm-up)."""
    from finers_mm.registry import MODELS
    init_default_scope('finers_mm')
    cfg = Config.fromfile(osp.join(CONFIGS, 'lpr_tiny.py'))
    cfg.model.vlm.pretrained = tiny_models['qwen2_5_vl']
    model = MODELS.build(cfg.model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.vlm.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator).to(param.dtype))
    path = tmp_path_factory.mktemp('warm_start') / 'sft.pth'
    torch.save(dict(meta=dict(iter=10), state_dict=model.state_dict()), path)
    return path


@pytest.mark.slow
def test_reference_is_the_policy_loaded_with_load_from(warm_start_checkpoint, tiny_models,
                                                         tmp_path):
    """GRPO after an SFT warm-up loaded with ``load_from``: the KL reference is the warm-up, so the
    first iteration's KL is ~0 (policy == reference), not the drift from ``pretrained``; the
    checkpoints record the reference's origin, and a resumed run keeps that reference (iteration 2
    repeats the uninterrupted run, KL included) rather than copying the resumed policy."""
    full, resumed = tmp_path / 'full', tmp_path / 'resumed'
    _train('lpr_tiny.py', full, tiny_models, 'train_cfg.max_iters=2',
           'default_hooks.checkpoint.interval=1', f'load_from={warm_start_checkpoint}', *_SHORT)
    logged = _scalars(full)
    assert abs(logged[0]['kl']) < 1e-6, logged[0]['kl']
    assert logged[1]['kl'] > 0  # the policy moved away from the reference
    checkpoint = torch.load(full / 'iter_1.pth', map_location='cpu', weights_only=False)
    assert checkpoint['meta']['grpo_reference'] == str(warm_start_checkpoint)
    assert not any('reference' in key for key in checkpoint['state_dict'])

    result = _train('lpr_tiny.py', resumed, tiny_models, 'train_cfg.max_iters=2',
                    'resume=True', f'load_from={full / "iter_1.pth"}', *_SHORT)
    assert 'rebuilding the frozen reference policy' in result.stdout + result.stderr
    [row] = _scalars(resumed)
    expected = {k: v for k, v in logged[1].items() if 'time' not in k}
    assert {k: v for k, v in row.items() if 'time' not in k} == expected
