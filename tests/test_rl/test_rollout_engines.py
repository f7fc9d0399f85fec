# Copyright (c) finers_mm contributors. All rights reserved.
"""GRPOHook's rollout engine: HF generate by default, the same run as before the interface existed;
the engine's lifecycle (setup, wake/sync before each rollout, sleep after, the optimiser step)
called in order by mmengine's loop."""
import os.path as osp
import uuid

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from finers_mm.models.vlm.engines import BaseRolloutEngine, HFRolloutEngine
from finers_mm.registry import MODELS, TASK_UTILS
from finers_mm.rl import GRPOHook
from finers_mm.testing import REPO_ROOT

CONFIGS = osp.join(REPO_ROOT, 'configs', 'finers')
BUNDLED = osp.join(REPO_ROOT, 'finers_mm', 'data', 'synthetic') + '/'
REWARD = dict(type='CompositeReward', terms=[dict(type='ThinkFormatReward')])


@TASK_UTILS.register_module(force=True)
class _LegacyRolloutEngine(BaseRolloutEngine):
    """The rollout as GRPOHook did it before engines existed (``model.vlm.generate`` right after
    the hook seeds torch), recording the lifecycle calls it receives."""

    def __init__(self):
        self.calls = []

    def setup(self, adapter, seed=0, rank=0):
        self.calls.append('setup')

    def before_rollout(self, adapter):
        self.calls.append('before_rollout')

    def after_rollout(self, adapter):
        self.calls.append('after_rollout')

    def after_optimizer_step(self, adapter):
        self.calls.append('after_optimizer_step')

    def generate(self, adapter, images, prompts, seed=None, **sampling):
        self.calls.append('generate')
        return adapter.generate(images, prompts, **sampling)


def test_the_default_engine_is_hf_generate_and_a_config_key():
    assert isinstance(GRPOHook(reward=REWARD).rollout_engine, HFRolloutEngine)
    hook = GRPOHook(reward=REWARD, rollout_engine=dict(type='VLLMRolloutEngine', sleep_level=2))
    assert type(hook.rollout_engine).__name__ == 'VLLMRolloutEngine'
    with pytest.raises(KeyError, match='NoSuchEngine'):
        GRPOHook(reward=REWARD, rollout_engine=dict(type='NoSuchEngine'))


def test_hf_engine_is_the_adapters_seeded_generate(tiny_models):
    adapter = MODELS.build(dict(type='Qwen25VLAdapter', pretrained=tiny_models['qwen2_5_vl'],
                                generation=dict(max_new_tokens=8)))
    images = [np.random.default_rng(i).integers(0, 256, (112, 140, 3), dtype=np.uint8)
              for i in range(2)]
    prompts = ['Find the car.', 'Find the boat.']
    sampling = dict(do_sample=True, temperature=1.0, num_return_sequences=3)
    result = HFRolloutEngine().generate(adapter, images, prompts, seed=7, **sampling)
    torch.manual_seed(7)
    expected = adapter.generate(images, prompts, **sampling)
    assert result.texts == expected.texts
    assert torch.equal(result.completion_ids, expected.completion_ids)
    assert torch.equal(result.completion_mask, expected.completion_mask)
    for key, value in expected.prompt_inputs.items():
        assert torch.equal(result.prompt_inputs[key], value), key
    other = HFRolloutEngine().generate(adapter, images, prompts, seed=8, **sampling)
    assert not torch.equal(other.completion_ids, expected.completion_ids)  # the seed is used


def _run(tiny_models, work_dir, engine, **extra):
    """Two LPR GRPO iterations (full fine-tune, KL on) in-process; the runner after training."""
    init_default_scope('finers_mm')
    cfg = Config.fromfile(osp.join(CONFIGS, 'lpr_tiny.py'))
    options = {'model.vlm.pretrained': tiny_models['qwen2_5_vl'],
               'train_dataloader.dataset.data_root': BUNDLED, 'train_dataloader.batch_size': 2,
               'custom_hooks.0.num_generations': 2, 'custom_hooks.0.max_new_tokens': 12,
               'train_cfg.max_iters': 2, 'default_hooks.checkpoint.interval': 100,
               'work_dir': str(work_dir), 'randomness.seed': 0,
               'experiment_name': f'engine_{uuid.uuid4().hex}',
               'visualizer.name': f'engine_{uuid.uuid4().hex}'}
    if engine is not None:
        options['custom_hooks.0.rollout_engine'] = engine
    cfg.merge_from_dict(dict(options, **extra))
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub
    logged = []
    for key in ('train/reward', 'train/completion_length', 'train/kl', 'train/loss',
                'train/entropy'):
        logged.append((key, [float(v) for v in hub.get_scalar(key).data[0]]))
    weights = {k: v.detach().clone() for k, v in runner.model.vlm.model.state_dict().items()}
    [hook] = [h for h in runner.hooks if isinstance(h, GRPOHook)]
    return logged, weights, hook


def test_grpo_with_the_default_engine_runs_as_before(tiny_models, tmp_path):
    """Same rewards, completion lengths, KL, losses and updated weights as the hook's old
    direct call; the engine's lifecycle comes in order, once per iteration."""
    default_log, default_weights, _ = _run(tiny_models, tmp_path / 'default', None)
    legacy_log, legacy_weights, hook = _run(tiny_models, tmp_path / 'legacy',
                                            dict(type='_LegacyRolloutEngine'))
    assert default_log == legacy_log
    assert default_weights.keys() == legacy_weights.keys()
    assert all(torch.equal(default_weights[k], legacy_weights[k]) for k in default_weights)
    iteration = ['before_rollout', 'generate', 'after_rollout', 'after_optimizer_step']
    assert hook.rollout_engine.calls == ['setup'] + iteration * 2


def test_the_engine_hears_of_optimiser_steps_only(tiny_models, tmp_path):
    """With two iterations per optimiser step the engine is told once, after the step (a vLLM
    engine pushes the weights then, not after an iteration that only accumulated gradients)."""
    _, _, hook = _run(tiny_models, tmp_path, dict(type='_LegacyRolloutEngine'),
                      **{'optim_wrapper.accumulative_counts': 2})
    rollout = ['before_rollout', 'generate', 'after_rollout']
    assert hook.rollout_engine.calls == ['setup'] + rollout * 2 + ['after_optimizer_step']
