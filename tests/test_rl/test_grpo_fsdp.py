# Copyright (c) finers_mm contributors. All rights reserved.
"""GRPO under FullyShardStrategy (FSDP2): 2 processes (torchrun, gloo, CPU) against DDP.

configs/finers/lpr_tiny_fsdp.py shards as the 7B configs do (configs/_base_/strategies/fsdp.py:
fp32 shards, block-level units, the rollout generating with the weights gathered, the KL reference
rebuilt whole) but computes in fp32, so the sharded run can be held to the DDP run of
lpr_tiny.py: on CPU with one thread FSDP's reduce-scatter of 2 ranks adds the same two numbers
DDP's all-reduce adds, so the weights are expected EQUAL (measured: max difference 0.0 over 3
steps); a tolerance of 1e-6 leaves room for a reduction order that differs elsewhere.
"""
import json
import os
import os.path as osp
import re
import socket
import subprocess
import sys

import pytest
import torch

from finers_mm.testing import REPO_ROOT

#: subprocess runs of the tools: end to end
pytestmark = pytest.mark.slow

FSDP = osp.join(REPO_ROOT, 'configs', 'finers', 'lpr_tiny_fsdp.py')
DDP = osp.join(REPO_ROOT, 'configs', 'finers', 'lpr_tiny.py')
BUNDLED = osp.join(REPO_ROOT, 'finers_mm', 'data', 'synthetic') + '/'
#: the smallest GRPO step: one prompt per process, 2 samples of 16 tokens
SMALL = ('train_dataloader.batch_size=1', 'custom_hooks.0.num_generations=2',
         'custom_hooks.0.max_new_tokens=16')
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
#: 3 iterations, a checkpoint after each, gradient checkpointing on (as the 7B configs)
RUN = ('train_cfg.max_iters=3', 'default_hooks.checkpoint.interval=1',
       'default_hooks.checkpoint.max_keep_ckpts=-1', 'model.vlm.gradient_checkpointing=True')


def _train(work_dir, tiny_models, *options, config, resume=None):
    """tools/dist_train.sh (torchrun, 2 processes) of ``config`` on the bundled data."""
    port = socket.socket()
    port.bind(('127.0.0.1', 0))
    free = port.getsockname()[1]
    port.close()
    flags = ['--work-dir', str(work_dir)] + ([] if resume is None else ['--resume', str(resume)])
    flags += ['--cfg-options', f"model.vlm.pretrained={tiny_models['qwen2_5_vl']}",
              f'train_dataloader.dataset.data_root={BUNDLED}', *SMALL, *options]
    command = ['bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh'), config, '2', *flags]
    env = dict(ENV, PYTHON=sys.executable, PORT=str(free))
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


def _load(path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=False)


def _scalars(work_dir) -> dict:
    """iteration -> the scalars of the (only) run in ``work_dir``."""
    run = next(name for name in sorted(os.listdir(work_dir))
               if osp.isdir(osp.join(work_dir, name)))
    with open(osp.join(work_dir, run, 'vis_data', 'scalars.json')) as f:
        return {row['iter']: row for row in map(json.loads, f)}


@pytest.fixture(scope='module')
def fsdp_run(tiny_models, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('fsdp')
    result = _train(work_dir, tiny_models, *RUN, config=FSDP)
    return work_dir, result.stdout + result.stderr


@pytest.fixture(scope='module')
def ddp_run(tiny_models, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('ddp')
    _train(work_dir, tiny_models, *RUN, config=DDP)
    return work_dir


def test_fsdp_shards_trains_and_equals_ddp(fsdp_run, ddp_run):
    work_dir, log = fsdp_run
    held = re.search(r'this rank holds ([\d,]+) of ([\d,]+) parameters', log)
    assert held, log[-3000:]
    local, total = (int(group.replace(',', '')) for group in held.groups())
    assert local < 0.6 * total  # each of the 2 ranks holds about half
    first, last = (_load(osp.join(work_dir, f'iter_{i}.pth'))['state_dict'] for i in (1, 3))
    assert any(not torch.equal(first[k], last[k]) for k in first)  # it trains
    for it in (1, 2, 3):
        sharded = _load(osp.join(work_dir, f'iter_{it}.pth'))['state_dict']
        plain = _load(osp.join(ddp_run, f'iter_{it}.pth'))['state_dict']
        # the full state dict: the keys and dtypes of an unsharded run
        assert sharded.keys() == plain.keys()
        for key, value in plain.items():
            assert sharded[key].dtype == value.dtype and sharded[key].shape == value.shape
            torch.testing.assert_close(sharded[key], value, rtol=0, atol=1e-6, msg=key)
    fsdp_scalars, ddp_scalars = _scalars(work_dir), _scalars(ddp_run)
    for name in ('loss', 'kl', 'reward', 'grad_norm'):
        assert fsdp_scalars[3][name] == pytest.approx(ddp_scalars[3][name], abs=1e-6), name


def test_fsdp_resume_repeats_the_uninterrupted_run(fsdp_run, tiny_models, tmp_path):
    work_dir, _ = fsdp_run
    result = _train(tmp_path, tiny_models, *RUN, config=FSDP,
                    resume=osp.join(work_dir, 'iter_2.pth'))
    assert 'resumed epoch: 0, iter: 2' in result.stdout + result.stderr
    got, expected = _load(tmp_path / 'iter_3.pth'), _load(osp.join(work_dir, 'iter_3.pth'))
    assert got['meta']['iter'] == expected['meta']['iter'] == 3
    for key, value in expected['state_dict'].items():
        assert torch.equal(got['state_dict'][key], value), key
    # the optimiser state keyed by parameter name, every rank's shard gathered
    states = expected['optimizer']['state']
    assert set(states) == set(expected['state_dict'])
    for name, state in states.items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(got['optimizer']['state'][name][key]),
                               torch.as_tensor(value)), (name, key)


def test_a_sharded_checkpoint_loads_into_the_unsharded_stage(fsdp_run, tiny_models):
    """What tools/misc/export_stage.py and load_from read: the stage's own state dict."""
    from mmengine.registry import init_default_scope

    from finers_mm.registry import MODELS
    init_default_scope('finers_mm')
    work_dir, _ = fsdp_run
    model = MODELS.build(dict(type='LocalRefiner', vlm=dict(
        type='Qwen25VLAdapter', pretrained=tiny_models['qwen2_5_vl'], dtype='float32')))
    state_dict = _load(osp.join(work_dir, 'iter_3.pth'))['state_dict']
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    assert not unexpected and not [k for k in missing if k.startswith('vlm.')]


def test_load_from_is_the_sharded_runs_kl_reference(fsdp_run, tiny_models, tmp_path):
    """A sharded run started from a checkpoint (an SFT warm-up's, here iteration 2 of a GRPO run)
    rebuilds its frozen reference from that checkpoint, whole: at the first step the policy IS
    the reference (KL 0; the pretrained model as reference would give KL > 0, as iteration 2 of
    the run it came from shows)."""
    work_dir, _ = fsdp_run
    start = osp.join(work_dir, 'iter_2.pth')
    _train(tmp_path, tiny_models, 'train_cfg.max_iters=1', f'load_from={start}',
           'default_hooks.checkpoint.interval=1', config=FSDP)
    assert _scalars(tmp_path)[1]['kl'] == 0.0
    assert _scalars(work_dir)[3]['kl'] > 0.0
    assert _load(tmp_path / 'iter_1.pth')['meta']['grpo_reference'] == osp.abspath(start)
