# Copyright (c) finers_mm contributors. All rights reserved.
"""Sharded generate on 2 ranks that stop at different lengths (torchrun, gloo, CPU).

Ranks of a GRPO run finish their rollouts at different steps (EOS). Block by block, every
decoding step gathers weights (collectives), so transformers must keep the ranks stepping together
(``synced_gpus``, turned on by the attribute ``fully_shard_model`` sets); with the weights gathered
for the whole rollout (:func:`gathered_for_generation`), no step is a collective and each rank stops
on its own. Either way a mismatch hangs or fails the next collective: here the sharded loss'
forward and backward and an all-reduce after the generates. This file is also the worker.
"""
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest

from finers_mm.testing import REPO_ROOT

#: subprocess runs under torchrun
pytestmark = pytest.mark.slow


def _worker(pretrained: str, gathered: bool) -> None:
    import numpy as np
    import torch
    import torch.distributed as dist
    from mmengine.registry import init_default_scope
    from torch.distributed.device_mesh import init_device_mesh

    from finers_mm.models.vlm.sharding import fully_shard_model, gathered_for_generation
    from finers_mm.registry import MODELS

    dist.init_process_group('gloo', timeout=__import__('datetime').timedelta(seconds=60))
    rank = dist.get_rank()
    init_default_scope('finers_mm')
    stage = MODELS.build(dict(type='LocalRefiner', vlm=dict(
        type='Qwen25VLAdapter', pretrained=pretrained, dtype='float32')))
    fully_shard_model(stage, init_device_mesh('cpu', (2,)), dict(param_dtype='float32'))
    image = np.random.default_rng(rank).integers(0, 255, (56, 56, 3), dtype=np.uint8)
    # rank 0 stops after 3 tokens, rank 1 after 11
    settings = dict(do_sample=False, max_new_tokens=3 + 8 * rank)
    if gathered:
        with gathered_for_generation(stage.vlm.model):
            result = stage.vlm.generate([image], ['Find the car.'], **settings)
    else:
        result = stage.vlm.generate([image], ['Find the car.'], **settings)
    assert result.completion_ids.shape[1] == settings['max_new_tokens'], result.completion_ids.shape
    logps = stage.vlm.completion_logprobs(result.prompt_inputs, result.completion_ids,
                                          result.completion_mask)
    logps.sum().backward()
    total = torch.tensor([float(result.completion_ids.shape[1])])
    dist.all_reduce(total)
    assert total.item() == 14.0
    dist.destroy_process_group()
    print(f'rank {rank} ok')


@pytest.mark.parametrize('gathered', [False, True])
def test_ranks_generating_different_lengths_stay_in_step(tiny_models, gathered):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='', HF_HUB_OFFLINE='1',
               PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    command = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
               '--master_port', str(port), osp.abspath(__file__), tiny_models['qwen2_5_vl'],
               str(int(gathered))]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300,
                            check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert 'rank 0 ok' in out and 'rank 1 ok' in out


if __name__ == '__main__':
    _worker(sys.argv[1], bool(int(sys.argv[2])))
