# Copyright (c) finers_mm contributors. All rights reserved.
"""GRPO through mmengine: tools/train.py (and in-process runners) with GRPOHook on the tiny models
and the bundled data: training, logging, the KL reference policy over load_from and resume, one
preprocessing of the batch per iteration."""
import ast
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from finers_mm.rl import GRPOHook
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
    cfg = Config.fromfile(osp.join(CONFIGS, 'lpr_tiny.py'))
    # the rollout's budget: the hook's max_new_tokens, else the VLM's generation setting
    limit = cfg.custom_hooks[0].get('max_new_tokens', cfg.model.vlm.generation.max_new_tokens)
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


# ------------------------------------------------------------------------------------------------
# In process: the reference policy's lifecycle through the public runner API, one preprocessing
# ------------------------------------------------------------------------------------------------


class _PublicView:
    """The runner as GRPOHook may see it: reading a private attribute (``_load_from``,
    ``_has_loaded``, ``_resume``, ...) fails loudly; an AssertionError, which ``getattr(runner,
    name, default)`` does not swallow."""

    def __init__(self, runner: Runner) -> None:
        self.__dict__['runner'] = runner

    def __getattr__(self, name: str):
        if name.startswith('_'):
            raise AssertionError(f'GRPOHook read the private runner attribute {name!r}')
        return getattr(self.__dict__['runner'], name)


class _PublicOnlyRunner(Runner):
    """mmengine's Runner, handing GRPOHook (all its callbacks, checkpoint ones included) a
    :class:`_PublicView` of itself."""

    def call_hook(self, fn_name: str, **kwargs) -> None:
        for hook in self.hooks:
            if hasattr(hook, fn_name):
                runner = _PublicView(self) if isinstance(hook, GRPOHook) else self
                getattr(hook, fn_name)(runner, **kwargs)


def _runner(tiny_models, work_dir, **options) -> Runner:
    """An in-process LPR GRPO run (full fine-tune, KL on) of the short step, a checkpoint per
    iteration."""
    init_default_scope('finers_mm')
    cfg = Config.fromfile(osp.join(CONFIGS, 'lpr_tiny.py'))
    cfg.merge_from_dict({'model.vlm.pretrained': tiny_models['qwen2_5_vl'],
                         'train_dataloader.dataset.data_root': BUNDLED,
                         'train_dataloader.batch_size': 2, 'custom_hooks.0.num_generations': 2,
                         'custom_hooks.0.max_new_tokens': 16,
                         'default_hooks.checkpoint.interval': 1, 'work_dir': str(work_dir),
                         'experiment_name': f'grpo_{uuid.uuid4().hex}',
                         'visualizer.name': f'grpo_{uuid.uuid4().hex}', **options})
    return _PublicOnlyRunner.from_cfg(cfg)


def _grpo_hook(runner) -> GRPOHook:
    [hook] = [h for h in runner.hooks if isinstance(h, GRPOHook)]
    return hook


def _vlm_weights(path) -> dict:
    state = torch.load(path, map_location='cpu', weights_only=False)['state_dict']
    return {key[len('vlm.'):]: value for key, value in state.items() if key.startswith('vlm.')}


def test_reference_lifecycle_through_the_public_runner_api(warm_start_checkpoint, tiny_models,
                                                           tmp_path):
    """load_from: the reference is the loaded policy (KL 0 at iteration 1) and the checkpoint
    records it; resume: the reference is rebuilt from that record (the warm-start weights, not the
    resumed policy); a record naming a file that is gone stops the resumed run. GRPOHook sees a
    runner without private attributes throughout."""
    warm = tmp_path / 'warm.pth'
    shutil.copy(warm_start_checkpoint, warm)
    first = _runner(tiny_models, tmp_path / 'first', load_from=str(warm),
                    **{'train_cfg.max_iters': 1})
    first.train()
    assert abs(first.message_hub.get_scalar('train/kl').current()) < 1e-6
    checkpoint = torch.load(tmp_path / 'first' / 'iter_1.pth', map_location='cpu',
                            weights_only=False)
    assert checkpoint['meta']['grpo_reference'] == str(warm)

    resumed = _runner(tiny_models, tmp_path / 'resumed', resume=True,
                      load_from=str(tmp_path / 'first' / 'iter_1.pth'),
                      **{'train_cfg.max_iters': 2})
    resumed.train()
    warm_weights = _vlm_weights(warm)
    reference = _grpo_hook(resumed).reference.state_dict()
    assert reference.keys() == warm_weights.keys()
    assert all(torch.equal(reference[k], v) for k, v in warm_weights.items())
    resumed_policy = _vlm_weights(tmp_path / 'first' / 'iter_1.pth')
    assert any(not torch.equal(resumed_policy[k], v) for k, v in warm_weights.items())
    saved = torch.load(tmp_path / 'resumed' / 'iter_2.pth', map_location='cpu',
                       weights_only=False)
    assert saved['meta']['grpo_reference'] == str(warm)

    os.remove(warm)
    again = _runner(tiny_models, tmp_path / 'again', resume=True,
                    load_from=str(tmp_path / 'first' / 'iter_1.pth'),
                    **{'train_cfg.max_iters': 2})
    with pytest.raises(FileNotFoundError, match=r'load_from=.*warm\.pth.*no longer exists'):
        again.train()


def test_the_batch_is_preprocessed_once_per_iteration(tiny_models, tmp_path):
    runner = _runner(tiny_models, tmp_path, **{'train_cfg.max_iters': 2})
    preprocessor = runner.model.data_preprocessor
    calls = []
    convert, forward = preprocessor.convert, preprocessor.forward

    def counted_convert(data):
        calls.append(('convert', runner.iter))
        return convert(data)

    def counted_forward(data, training=False):
        calls.append(('forward', runner.iter))
        return forward(data, training)

    preprocessor.convert, preprocessor.forward = counted_convert, counted_forward
    runner.train()
    converted = [it for kind, it in calls if kind == 'convert']
    assert converted == [0, 1]  # once per iteration ...
    # ... though the hook (rollout) and train_step (loss) both call the preprocessor
    assert [it for kind, it in calls if kind == 'forward'] == [0, 0, 1, 1]


def test_the_grpo_hook_and_its_reference_use_no_private_runner_attribute():
    """The source of finers_mm/rl/ reads no ``runner._*`` (attribute or ``getattr`` string)."""
    found = []
    for path in glob.glob(osp.join(REPO_ROOT, 'finers_mm', 'rl', '**', '*.py'), recursive=True):
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith('_')
                    and isinstance(node.value, ast.Name) and node.value.id == 'runner'):
                found.append(f'{path}:{node.lineno} runner.{node.attr}')
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ('getattr', 'hasattr', 'setattr') and len(node.args) > 1
                    and isinstance(node.args[0], ast.Name) and node.args[0].id == 'runner'
                    and isinstance(node.args[1], ast.Constant)
                    and str(node.args[1].value).startswith('_')):
                found.append(f'{path}:{node.lineno} {node.func.id}(runner, {node.args[1].value!r})')
    assert not found, '\n'.join(found)
