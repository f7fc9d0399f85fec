# Copyright (c) finers_mm contributors. All rights reserved.
"""Every 7B/3B training config's optimiser steps land on the weights it trains.

Each config's precision settings are read from the config (the VLM's ``dtype`` and ``lora``, the
optimiser's type and settings, the wrapper's gradient clipping, a DeepSpeed strategy's bf16 and
ZeRO settings) and applied to the tiny Qwen2.5-VL in the config's stage. Five optimiser steps
with fixed synthetic gradients (the same values in both runs, rounded to the dtype a backward
through the model gives) run against an fp32 AdamW run from the same start. Checked: at least 90 %
of the elements the fp32 run changes also change, and the update norm is within 2x of the fp32
run's.

What counts is the weight the optimiser holds: the parameter itself, plus KahanAdamW's
compensation buffer on bf16 weights; DeepSpeed's fp32 master partition under its bf16 mode;
FullyShardStrategy's shards in its ``master_dtype`` (the full fine-tunes: fp32, the gradients
computed in ``mixed_precision.param_dtype`` and reduced into them). The
bf16 copy the forward reads moves when that held weight crosses a bf16 rounding boundary (the same
for fp32 master weights in any mixed-precision scheme): tests/test_engine/test_kahan_adamw.py
checks that it is then the fp32 run's weight rounded.

``AmpOptimWrapper`` (bf16 autocast of the forward, which needs CUDA) is replaced by
``OptimWrapper``: autocast does not change the dtype of the weights or of their update.

Plain AdamW on the 7B configs' bf16 weights, unsharded, fails this check (measured here: 2.3 % of the
elements, 0.16x the update norm; issue 14 measured 2.4 % and 0.22x with other gradients):
:func:`test_plain_adamw_on_bf16_weights_fails_the_check`.
"""
import glob
import inspect
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope

from finers_mm.registry import MODELS, OPTIMIZERS
from finers_mm.testing import REPO_ROOT
from finers_mm.utils.run_config import load_config

if REPO_ROOT not in sys.path:  # the configs import their package (custom_imports)
    sys.path.insert(0, REPO_ROOT)

CONFIGS = osp.join(REPO_ROOT, 'configs', 'finers')
STEPS = 5
MIN_FRACTION, MAX_NORM_RATIO = 0.9, 2.0
#: the zero_optimization keys that lower DeepSpeed's master weights below fp32
LOW_PRECISION_MASTERS = ('bf16_master_weights_and_gradients', 'fp16_master_weights_and_gradients')


def _qwen_training_configs():
    """The names of the Qwen (7B, 3B) configs that train."""
    return [osp.basename(path) for path in sorted(glob.glob(osp.join(CONFIGS, '*qwen*.py')))
            if Config.fromfile(path).get('train_cfg') is not None]


QWEN_TRAINING = _qwen_training_configs()


@pytest.fixture(scope='module', autouse=True)
def _scope():
    init_default_scope('finers_mm')


def _deepspeed_masters_are_fp32(cfg) -> None:
    """A DeepSpeed config steps fp32 master copies: bf16 mode, ZeRO 1-3 without lowered masters,
    with keys mmengine's DeepSpeedStrategy accepts (what DeepSpeed 0.19's ZeRO does with them:
    configs/finers/gse_qwen7b_deepspeed.py)."""
    from mmengine._strategy.deepspeed import DeepSpeedStrategy
    strategy = cfg.strategy
    assert cfg.runner_type == 'FlexibleRunner' and strategy.type == 'DeepSpeedStrategy'
    accepted = inspect.signature(DeepSpeedStrategy.__init__).parameters
    assert set(strategy) - {'type'} <= set(accepted), set(strategy) - set(accepted)
    assert strategy.bf16.enabled and not (strategy.get('fp16') or {}).get('enabled', False)
    zero = strategy.zero_optimization
    assert zero.stage in (1, 2, 3)
    assert not any(zero.get(key, False) for key in LOW_PRECISION_MASTERS)
    # ZeRO refuses optimisers outside its tested list (torch's Adam/AdamW, its fused ones)
    assert cfg.optim_wrapper.optimizer.type in ('AdamW', 'Adam') or strategy.get(
        'zero_allow_untested_optimizer', False)


def _fsdp_masters(cfg) -> torch.dtype:
    """The dtype a FullyShardStrategy config's optimiser steps, checked: mmengine's
    FlexibleRunner, keys the strategy accepts, a plain OptimWrapper (FSDP computes in bf16
    already), a master dtype that holds lr-1e-6 updates (fp32)."""
    from finers_mm.engine.strategies import FullyShardStrategy
    strategy = cfg.strategy
    assert cfg.runner_type == 'FlexibleRunner'
    accepted = set(inspect.signature(FullyShardStrategy.__init__).parameters)
    assert set(strategy) - {'type'} <= accepted, set(strategy) - accepted
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    master = strategy.get('master_dtype', 'float32')
    assert master == 'float32', f'{master}: the shards the optimiser steps must be fp32'
    return getattr(torch, master)


def _precision_run(cfg, tiny_vlm: str, optimizer: dict):
    """The tensors the config's optimiser steps, on the tiny model in the config's stage.

    Returns:
        tuple[list[Tensor], list[torch.dtype]]: the stepped tensors (leaf, requires_grad) and,
        for each, the dtype a backward through the model gives its gradient.
    """
    vlm = cfg.model.vlm
    model = MODELS.build(dict(type=cfg.model.type, vlm=dict(
        type=vlm.type, pretrained=tiny_vlm, dtype=vlm.dtype, lora=vlm.get('lora'))))
    trainable = [p for p in model.parameters() if p.requires_grad]
    wrapper = cfg.optim_wrapper.type
    if str((cfg.get('strategy') or {}).get('type', '')).endswith('FullyShardStrategy'):
        master = _fsdp_masters(cfg)
        # gradients of the bf16 compute, reduce-scattered into the master-dtype shards
        compute = getattr(torch, cfg.strategy.mixed_precision.param_dtype)
        return ([p.detach().to(master).requires_grad_() for p in trainable],
                [compute for _ in trainable])
    if wrapper == 'DeepSpeedOptimWrapper':
        _deepspeed_masters_are_fp32(cfg)
        # bf16 model gradients, reduced into the fp32 master partition the optimiser steps
        return ([p.detach().float().requires_grad_() for p in trainable],
                [p.dtype for p in trainable])
    # AmpOptimWrapper autocasts the forward only: the optimiser steps the model's own parameters
    assert wrapper in ('AmpOptimWrapper', 'OptimWrapper'), (
        f'{wrapper}: say here which tensors its optimiser steps')
    return trainable, [p.dtype for p in trainable]


def _held(optimizer, tensor):
    """The weight the optimiser holds, fp32: the tensor plus KahanAdamW's compensation."""
    compensation = optimizer.state.get(tensor, {}).get('compensation')
    held = tensor.detach().float()
    return held if compensation is None else held + compensation.float()


def _step(tensors, grad_dtypes, optimizer_cfg, clip_grad):
    """``STEPS`` optimiser steps through an OptimWrapper with fixed gradients.

    The loss ``sum(t * G_t)`` gives every tensor ``t`` the gradient ``G_t`` (seeded, the same for
    every run, rounded to the dtype the model's backward gives).

    Returns:
        list[Tensor]: the held weights after the steps, fp32, one per tensor.
    """
    optimizer = OPTIMIZERS.build(dict(optimizer_cfg, params=tensors))
    wrapper = OptimWrapper(optimizer, clip_grad=clip_grad)
    generator = torch.Generator().manual_seed(0)
    for _ in range(STEPS):
        grads = [(torch.randn(t.shape, generator=generator) * 1e-3).to(dtype).to(t.dtype)
                 for t, dtype in zip(tensors, grad_dtypes)]
        wrapper.update_params(sum((t * g).sum() for t, g in zip(tensors, grads)))
    return [_held(optimizer, t) for t in tensors]


def measure(name: str, tiny_vlm: str, optimizer_type: str = None, unsharded: bool = False):
    """(fraction of the elements the fp32 run changes that the config's run changes, ratio of
    the update norms) after ``STEPS`` steps; ``optimizer_type`` replaces the config's;
    ``unsharded`` drops the config's FSDP strategy (the model's own bf16 weights are stepped)."""
    cfg = load_config(osp.join(CONFIGS, name))
    if unsharded:
        cfg.runner_type, cfg.strategy = 'Runner', None
    optimizer_cfg = dict(cfg.optim_wrapper.optimizer)
    if optimizer_type is not None:
        optimizer_cfg['type'] = optimizer_type
    clip_grad = cfg.optim_wrapper.get('clip_grad')
    if clip_grad is None and (cfg.get('strategy') or {}).get('type') == 'DeepSpeedStrategy':
        clip_grad = dict(max_norm=cfg.strategy.gradient_clipping)
    tensors, grad_dtypes = _precision_run(cfg, tiny_vlm, optimizer_cfg)
    start = [t.detach().float().clone() for t in tensors]
    reference = [s.clone().requires_grad_() for s in start]
    fp32 = dict(optimizer_cfg, type='AdamW')
    held = _step(tensors, grad_dtypes, optimizer_cfg, clip_grad and dict(clip_grad))
    expected = _step(reference, grad_dtypes, fp32, clip_grad and dict(clip_grad))
    start, held, expected = (torch.cat([t.flatten() for t in ts]) for ts in (start, held,
                                                                              expected))
    changed = expected != start
    fraction = ((held != start) & changed).sum().item() / changed.sum().item()
    ratio = ((held - start).norm() / (expected - start).norm()).item()
    return fraction, ratio


def test_the_7b_and_3b_training_configs_are_all_checked():
    assert len(QWEN_TRAINING) == 9 and 'gse_qwen7b_deepspeed.py' in QWEN_TRAINING


@pytest.mark.parametrize('name', QWEN_TRAINING)
def test_updates_land(name, tiny_models):
    fraction, ratio = measure(name, tiny_models['qwen2_5_vl'])
    assert fraction >= MIN_FRACTION, (name, fraction, ratio)
    assert 1 / MAX_NORM_RATIO <= ratio <= MAX_NORM_RATIO, (name, fraction, ratio)


def test_plain_adamw_on_bf16_weights_fails_the_check(tiny_models):
    """The 7B settings before KahanAdamW and FSDP: bf16 weights, torch's AdamW at lr 1e-6
    (measured 2.3 % of the elements, 0.16x the update norm)."""
    assert load_config(osp.join(CONFIGS, 'gse_qwen7b.py')).model.vlm.dtype == 'bfloat16'
    fraction, ratio = measure('gse_qwen7b.py', tiny_models['qwen2_5_vl'], optimizer_type='AdamW',
                              unsharded=True)
    assert fraction < 0.1 and ratio < 0.5, (fraction, ratio)


def test_bf16_fsdp_shards_fail_the_check():
    """FullyShardStrategy with bf16 shards (``master_dtype='bfloat16'``) would lose the updates as
    bf16 weights do: the check refuses it."""
    cfg = load_config(osp.join(CONFIGS, 'gse_qwen7b.py'))
    cfg.strategy.master_dtype = 'bfloat16'
    with pytest.raises(AssertionError, match='must be fp32'):
        _fsdp_masters(cfg)
