# Copyright (c) finers_mm contributors. All rights reserved.
"""Resumed GRPO runs: 1 and 2 processes (torchrun, gloo, CPU), and a run killed mid-iteration.

A resumed run must reach the state of the uninterrupted run EXACTLY: the same iteration-3 scalars
(``==``) and bit-identical weights and optimiser state (``torch.equal``). On CPU with one thread
the replayed computation is the same sequence of float operations (same seed, same rollout seed
per iteration and rank, same per-sample data randomness, same sampler position, AdamW moments and
message hub restored from the checkpoint), so anything short of equality is a bug; a tolerance
would have to be below the size of one update (lr 1e-4) to mean anything, and then it is as strict
as equality. Timings (``*time*`` scalars) are the only logged values that may differ.

The resumed runs resume from ``iter_2.pth`` of the uninterrupted run (``--resume PATH`` in a fresh
work dir): the checkpoint of a run that stopped at iteration 2 is the same training state.
"""
import json
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from mmengine.config import Config

from finers_mm.testing import REPO_ROOT

#: subprocess runs of the tools: end to end
pytestmark = pytest.mark.slow

CONFIG = osp.join(REPO_ROOT, 'configs', 'finers', 'lpr_tiny.py')
BUNDLED = osp.join(REPO_ROOT, 'finers_mm', 'data', 'synthetic') + '/'
#: the smallest GRPO step: one prompt per process, 2 samples of 16 tokens
SMALL = ['train_dataloader.batch_size=1', 'custom_hooks.0.num_generations=2',
         'custom_hooks.0.max_new_tokens=16']
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')


def _options(tiny_models, *extra) -> list:
    return ['--cfg-options', f"model.vlm.pretrained={tiny_models['qwen2_5_vl']}",
            f'train_dataloader.dataset.data_root={BUNDLED}', *SMALL, *extra]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _train(work_dir, tiny_models, *options, nproc=1, config=CONFIG, resume=None, env=None):
    """tools/train.py (1 process) or tools/dist_train.sh (torchrun, ``nproc`` processes)."""
    flags = [config, '--work-dir', str(work_dir)]
    if resume is not None:
        flags += ['--resume'] + ([] if resume == 'auto' else [str(resume)])
    flags += _options(tiny_models, *options)
    if nproc == 1:
        command = [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), *flags]
    else:
        command = ['bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh'), config, str(nproc),
                   *flags[1:]]
    env = dict(env or ENV, PYTHON=sys.executable, PORT=str(_free_port()))
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


def _runs(work_dir) -> list:
    """The timestamped log folders of the runs in ``work_dir``, oldest first."""
    return sorted(osp.join(work_dir, name) for name in os.listdir(work_dir)
                  if osp.isdir(osp.join(work_dir, name)))


def _scalars(run_dir) -> dict:
    """iteration -> the scalars mmengine's LocalVisBackend wrote, without the timings."""
    with open(osp.join(run_dir, 'vis_data', 'scalars.json')) as f:
        rows = [json.loads(line) for line in f]
    return {row['iter']: {k: v for k, v in row.items() if 'time' not in k} for row in rows}


def _load(path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=False)


def _assert_same_state(path, expected_path) -> None:
    """Bit-identical weights and AdamW state, and the same iteration."""
    got, expected = _load(path), _load(expected_path)
    assert got['meta']['iter'] == expected['meta']['iter']
    assert got['state_dict'].keys() == expected['state_dict'].keys()
    different = [k for k, v in expected['state_dict'].items()
                 if not torch.equal(got['state_dict'][k], v)]
    assert not different, f'{len(different)} tensors differ, e.g. {different[:3]}'
    got_opt, expected_opt = got['optimizer']['state'], expected['optimizer']['state']
    assert got_opt.keys() == expected_opt.keys()
    for index, state in expected_opt.items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(got_opt[index][name]), torch.as_tensor(value)), \
                (index, name)


def _assert_trained(path, before_path) -> None:
    """The step between two checkpoints changed the weights (so equality above means something)."""
    after, before = _load(path)['state_dict'], _load(before_path)['state_dict']
    assert any(not torch.equal(after[k], before[k]) for k in after)


@pytest.fixture(scope='module')
def uninterrupted(tiny_models, tmp_path_factory):
    """A 1-process run of 4 iterations with a checkpoint after every iteration."""
    work_dir = tmp_path_factory.mktemp('uninterrupted')
    _train(work_dir, tiny_models, 'train_cfg.max_iters=4', 'default_hooks.checkpoint.interval=1',
           'default_hooks.checkpoint.max_keep_ckpts=-1')
    return work_dir


def _check_resumed(work_dir, reference_dir, result, iters) -> None:
    """``work_dir`` resumed from iteration 2 and repeated ``reference_dir``'s ``iters``."""
    assert 'resumed epoch: 0, iter: 2' in result.stdout + result.stderr
    resumed = _scalars(_runs(work_dir)[-1])
    reference = _scalars(_runs(reference_dir)[0])
    assert sorted(resumed) == list(iters)  # the count goes on from 2
    for it in iters:
        assert resumed[it] == reference[it], it
        assert {'reward', 'loss', 'entropy', 'kl', 'grad_norm'} <= set(resumed[it])
    last = iters[-1]
    _assert_same_state(osp.join(work_dir, f'iter_{last}.pth'),
                       osp.join(reference_dir, f'iter_{last}.pth'))
    _assert_trained(osp.join(work_dir, f'iter_{last}.pth'), osp.join(reference_dir, 'iter_2.pth'))


def test_resume_repeats_the_uninterrupted_run(uninterrupted, tiny_models, tmp_path):
    result = _train(tmp_path, tiny_models, 'train_cfg.max_iters=3',
                    resume=uninterrupted / 'iter_2.pth')
    _check_resumed(tmp_path, uninterrupted, result, [3])


def test_two_process_run_trains_saves_and_resumes_identically(tiny_models, tmp_path):
    """torchrun --nproc_per_node 2 through tools/dist_train.sh, gloo on CPU (the issue's check)."""
    full, resumed = tmp_path / 'full', tmp_path / 'resumed'
    result = _train(full, tiny_models, 'train_cfg.max_iters=3',
                    'default_hooks.checkpoint.interval=1', nproc=2)
    assert 'Distributed training: True' in result.stdout + result.stderr
    assert sorted(_scalars(_runs(full)[0])) == [1, 2, 3]
    assert all(osp.isfile(full / f'iter_{it}.pth') for it in (1, 2, 3))

    result = _train(resumed, tiny_models, 'train_cfg.max_iters=3', resume=full / 'iter_2.pth',
                    nproc=2)
    _check_resumed(resumed, full, result, [3])


HANG_HOOK = '''
import os
import time

from mmengine.hooks import Hook

from finers_mm.registry import HOOKS



@HOOKS.register_module()
class HangOnceHook(Hook):
    """Test helper: in iteration ``iteration`` (after the rollout), write ``marker`` and hang, once
    (a run that finds the marker goes on), so that the test kills the run mid-iteration."""

    priority = 'LOWEST'

    def __init__(self, iteration, marker):
        self.iteration, self.marker = iteration, marker

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.iteration and not os.path.exists(self.marker):
            with open(self.marker, 'w') as f:
                f.write(str(os.getpid()))
            time.sleep(600)
'''


def test_killed_run_resumes_from_the_last_checkpoint(uninterrupted, tiny_models, tmp_path):
    """SIGKILL in iteration 3 (checkpoints every 2 iterations), then ``--resume``."""
    (tmp_path / 'hang_once_hook.py').write_text(HANG_HOOK)
    marker = tmp_path / 'in_iteration_3'
    config = tmp_path / 'lpr_tiny_hang.py'
    # the same sampling as the uninterrupted run, which uses the base config's hook
    temperature = Config.fromfile(CONFIG).custom_hooks[0]['temperature']
    config.write_text(
        f"_base_ = ['{CONFIG}']\n"
        "custom_imports = dict(imports=['finers_mm', 'hang_once_hook'],\n"
        "                      allow_failed_imports=False)\n"
        "custom_hooks = [\n"
        "    dict(type='GRPOHook', reward={{_base_.lpr_reward}}, num_generations=2,\n"
        f"         max_new_tokens=16, temperature={temperature}),\n"
        f"    dict(type='HangOnceHook', iteration=3, marker='{marker}'),\n"
        "]\n")
    work_dir = tmp_path / 'work_dir'
    env = dict(ENV, PYTHONPATH=os.pathsep.join([str(tmp_path), ENV.get('PYTHONPATH', '')]))
    options = _options(tiny_models, 'train_cfg.max_iters=4', 'default_hooks.checkpoint.interval=2')
    with open(tmp_path / 'killed.out', 'w') as out:
        process = subprocess.Popen(
            [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), str(config),
             '--work-dir', str(work_dir), *options],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            while not marker.exists():  # iter_2.pth is written before iteration 3 begins
                assert process.poll() is None, (tmp_path / 'killed.out').read_text()[-4000:]
                assert time.monotonic() < deadline, 'the run never reached iteration 3'
                time.sleep(0.1)
            process.send_signal(signal.SIGKILL)
            assert process.wait(timeout=60) == -signal.SIGKILL
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

    # nothing lost: the checkpoint of iteration 2 is whole, the log of the killed run readable
    assert sorted(name for name in os.listdir(work_dir) if name.endswith('.pth')) == ['iter_2.pth']
    with open(work_dir / 'last_checkpoint') as f:
        assert f.read().strip() == str(work_dir / 'iter_2.pth')
    checkpoint = _load(work_dir / 'iter_2.pth')
    assert checkpoint['meta']['iter'] == 2
    assert {'state_dict', 'optimizer', 'message_hub'} <= set(checkpoint)
    [killed_run] = _runs(work_dir)
    assert sorted(_scalars(killed_run)) == [1, 2]
    with open(osp.join(killed_run, osp.basename(killed_run) + '.log')) as f:
        assert 'Saving checkpoint at 2 iterations' in f.read()

    # resumed: iterations 3 and 4 exactly as in the run that was never killed, the final checkpoint
    result = _train(work_dir, tiny_models, 'train_cfg.max_iters=4',
                    'default_hooks.checkpoint.interval=2', config=str(config), resume='auto',
                    env=env)
    assert 'Advance dataloader 2 steps' in result.stdout + result.stderr
    assert len(_runs(work_dir)) == 2 and sorted(_scalars(killed_run)) == [1, 2]
    with open(work_dir / 'last_checkpoint') as f:
        assert f.read().strip() == str(work_dir / 'iter_4.pth')
    _check_resumed(work_dir, uninterrupted, result, [3, 4])
