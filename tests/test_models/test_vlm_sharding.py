# Copyright (c) finers_mm contributors. All rights reserved.
"""finers_mm.models.vlm.sharding on the tiny Qwen2.5-VL, in one process (a 1-rank gloo group).

FSDP2 runs its gathers and hooks for one rank as for many; the 2-process runs against DDP are in
tests/test_rl/test_grpo_fsdp.py.
"""
import numpy as np
import pytest
import torch
import torch.distributed as dist
from mmengine.registry import init_default_scope
from torch.distributed.tensor import DTensor

from finers_mm.models.vlm.sharding import (FSDP_MANAGED_ATTR, fsdp_units, fully_shard_model,
                                           gathered_for_generation, hf_models, is_sharded,
                                           parse_dtype)
from finers_mm.registry import MODELS


@pytest.fixture(scope='module')
def mesh():
    from torch.distributed.device_mesh import init_device_mesh
    init_default_scope('finers_mm')
    started = not dist.is_initialized()
    if started:
        dist.init_process_group('gloo', store=dist.HashStore(), rank=0, world_size=1)
    yield init_device_mesh('cpu', (1,))
    if started:
        dist.destroy_process_group()


def _refiner(path, dtype='float32'):
    return MODELS.build(dict(type='LocalRefiner', vlm=dict(
        type='Qwen25VLAdapter', pretrained=path, dtype=dtype,
        generation=dict(max_new_tokens=8, do_sample=False))))


def _greedy(vlm):
    image = np.random.default_rng(0).integers(0, 255, (56, 56, 3), dtype=np.uint8)
    return vlm.generate([image, image[::-1].copy()], ['Find the car.', 'Where is it?'])


def test_shards_blocks_and_the_model_in_fp32_and_generates_as_unsharded(tiny_models, mesh):
    path = tiny_models['qwen2_5_vl']
    # the unsharded reference: the bf16-loaded weights in fp32, as the shards will hold them
    unsharded = _refiner(path, dtype='bfloat16').float()
    expected = _greedy(unsharded.vlm)
    stage = _refiner(path, dtype='bfloat16')  # held fp32 after sharding: the bf16 checkpoint cast
    assert not is_sharded(stage)
    sharded = fully_shard_model(stage, mesh, dict(param_dtype='float32'), 'float32')
    assert sharded == [stage.vlm.model] and is_sharded(stage.vlm)
    names = {type(unit).__name__ for unit in fsdp_units(stage)}
    assert any('DecoderLayer' in n for n in names) and any('VisionBlock' in n for n in names)
    config = stage.vlm.model.config
    # the model (root), its vision tower (generate calls it on its own), every block
    assert len(fsdp_units(stage)) == 2 + config.text_config.num_hidden_layers + \
        config.vision_config.depth
    assert stage.vlm.model.model.visual in fsdp_units(stage)
    assert all(isinstance(p, DTensor) and p.dtype == torch.float32 for p in stage.parameters())
    assert getattr(stage.vlm.model, FSDP_MANAGED_ATTR)  # per-block gathers: synced_gpus
    # block by block, and with every unit gathered for the whole rollout: the unsharded tokens
    stepwise = _greedy(stage.vlm)
    with gathered_for_generation(stage.vlm.model):
        assert not getattr(stage.vlm.model, FSDP_MANAGED_ATTR)  # no lockstep needed
        assert not any(isinstance(p, DTensor) for p in stage.vlm.model.parameters())
        gathered = _greedy(stage.vlm)
    assert getattr(stage.vlm.model, FSDP_MANAGED_ATTR)
    assert all(isinstance(p, DTensor) for p in stage.parameters())  # sharded again
    for result in (stepwise, gathered):
        assert result.texts == expected.texts
        assert torch.equal(result.completion_ids, expected.completion_ids)


def test_the_context_does_nothing_without_sharding(tiny_models):
    vlm = _refiner(tiny_models['qwen2_5_vl']).vlm
    with gathered_for_generation(vlm.model):
        assert not is_sharded(vlm)


def test_frozen_models_are_not_sharded_and_bad_settings_are_refused(tiny_models, mesh):
    stage = _refiner(tiny_models['qwen2_5_vl'])
    assert hf_models(stage) == [stage.vlm.model]
    stage.requires_grad_(False)
    with pytest.raises(ValueError, match='no trainable Hugging Face model'):
        fully_shard_model(stage, mesh)
    with pytest.raises(ValueError, match='master_dtype'):
        parse_dtype('int8', 'master_dtype')
    assert parse_dtype('torch.bfloat16', 'x') is torch.bfloat16 and parse_dtype(None, 'x') is None
