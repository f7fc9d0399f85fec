# Copyright (c) finers_mm contributors. All rights reserved.
"""finers_mm.apis.memory_plan and memory_strategies: the per-GPU arithmetic on hand-computed
cases, the sharding division of each strategy, LoRA, and issue 14's 7B figures."""
import json

import pytest

from finers_mm.apis.memory_components import layer_saved_values, plan_memory
from finers_mm.apis.memory_plan import (BUFFERS, GB, MODEL_STATES, ROLLOUT, TRAINING,
                                        Architecture, ParamCounts, Workload, cast_counts,
                                        counts_bytes, dtype_bytes, format_parameters,
                                        format_plan)
from finers_mm.apis.memory_strategies import ddp, deepspeed_zero, fsdp, single_device

#: Qwen2.5-VL-7B-Instruct, counted on the meta device from its public config.json
QWEN7B_PARAMS = 8_292_166_656

#: a small hand-checkable model: 1000 parameters in bf16
COUNTS = ParamCounts(vision=100, language=800, lm_head=100, trainable={'bfloat16': 1000},
                     largest_block=50)
ARCH = Architecture(hidden=8, layers=2, intermediate=16, kv_heads=2, head_dim=4, vocab=50,
                    vision_hidden=4, vision_depth=2, vision_intermediate=8)
#: 4 completions of 10 prompt + 6 new tokens, an image of 12 patches per completion
WORK = Workload(sequences=4, prompt_tokens=10, new_tokens=6, image_patches=12, image_copies=4)


def _plan(sharding, counts=COUNTS, work=WORK, state_bytes=None, weights=None, trainable=None,
          reference=None, gpu_memory=80 * GB):
    weights = weights or dict(counts.trainable, **counts.frozen)
    trainable = counts.trainable if trainable is None else trainable
    state_bytes = state_bytes or {'bfloat16': 4, 'float32': 8}
    return plan_memory(counts, ARCH, work, sharding, weights, trainable, 'AdamW', state_bytes,
                       reference=reference, gpu_memory=gpu_memory)


def _rows(plan):
    return {c.name.split(' (')[0]: c.bytes for c in plan.components}


def test_dtype_bytes_and_counts():
    assert dtype_bytes('bfloat16') == 2 and dtype_bytes('torch.float32') == 4
    with pytest.raises(ValueError, match='unknown dtype'):
        dtype_bytes('float8')
    assert counts_bytes({'bfloat16': 10, 'float32': 3}) == 32
    assert cast_counts({'bfloat16': 10, 'float32': 3}, 'float32') == {'float32': 13}
    assert cast_counts({}, 'float32') == {}
    assert layer_saved_values(8, 16) == 10 * 8 + 4 * 16


def test_every_component_by_hand_under_ddp():
    plan = _plan(ddp(2, grad_bytes=2000))
    rows = _rows(plan)
    assert rows['weights'] == 1000 * 2
    assert rows['gradients'] == 1000 * 2
    assert rows['optimiser states'] == 1000 * 4  # AdamW: 2 bf16 states
    assert rows['KL reference policy'] == 1000 * 2
    # checkpointed layer inputs: sequences x tokens x hidden x bytes x layers
    assert rows['activations'] == 4 * 16 * 8 * 2 * 2
    assert rows['activations, vision tower'] == 4 * 12 * 4 * 2 * 2
    # one decoder layer's saved tensors (10 h + 4 i per token) beat a vision block's here
    assert rows['one layer recomputed'] == 4 * 16 * (80 + 64) * 2
    assert rows['logits'] == 4 * 6 * 50 * 4  # completions only, float32
    assert rows['rollout KV cache'] == 2 * 2 * 2 * 4 * 16 * 4 * 2
    assert rows['communication buffers'] == 2000  # DDP's buckets copy the gradients
    assert plan.model_states == 2000 + 2000 + 4000 + 2000
    training = 2048 + 768 + 18432 + 4800
    assert plan.phase_bytes(TRAINING) == training and plan.phase_bytes(ROLLOUT) == 4096
    assert plan.peak == 10000 + 2000 + training
    assert plan.fits
    assert not _plan(ddp(2, grad_bytes=2000), gpu_memory=plan.peak - 1).fits


def test_single_gpu_has_no_buffers_and_bucket_views_remove_ddps():
    assert _rows(_plan(single_device()))['communication buffers'] == 0
    assert ddp(1, grad_bytes=2000).name == 'single GPU'
    assert _rows(_plan(ddp(2, 2000, gradient_as_bucket_view=True)))['communication buffers'] == 0


def _model_state_rows(sharding):
    rows = _rows(_plan(sharding))
    return {k: rows.get(k) for k in ('weights', 'gradients', 'optimiser states', 'master weights',
                                     'KL reference policy')}


@pytest.mark.parametrize('stage, weights, grads, optim', [
    (0, 2000, 2000 + 4000, 8000),
    (1, 2000, 2000 + 1000, 2000),
    (2, 2000, 500 + 1000, 2000),
    (3, 500, 500 + 1000, 2000),
])
def test_zero_stages_divide_the_right_components(stage, weights, grads, optim):
    """bf16 mode on 4 GPUs: fp32 master (4 B) and fp32 AdamW states (8 B) divided from stage 1,
    the bf16 gradients from stage 2 (plus their fp32 partition), the weights at stage 3; the
    reference is never sharded."""
    rows = _model_state_rows(deepspeed_zero(stage, 4, mixed_precision=True, compute_bytes=2))
    master = 4000 // (4 if stage >= 1 else 1)
    assert rows == {'weights': weights, 'gradients': grads, 'optimiser states': optim,
                    'master weights': master, 'KL reference policy': 2000}


def test_zero_without_mixed_precision_has_no_master_copy():
    rows = _model_state_rows(deepspeed_zero(2, 4, mixed_precision=False, compute_bytes=2))
    assert rows['master weights'] is None
    assert rows['gradients'] == 500 and rows['optimiser states'] == 1000


def test_zero_offload_and_half_precision_master():
    offloaded = _rows(_plan(deepspeed_zero(3, 4, True, 2, offload_optimizer=True,
                                           offload_params=True)))
    assert offloaded['weights'] == offloaded['optimiser states'] == 0
    assert offloaded['master weights'] == 0
    half = _plan(deepspeed_zero(2, 4, True, 2, master_dtype='bfloat16'),
                 state_bytes={'bfloat16': 4})
    rows = _rows(half)
    assert rows['master weights'] == 1000 * 2 // 4
    assert rows['gradients'] == 1000 * 2 // 4 * 2  # bf16 grads / 4 + their bf16 partition
    assert rows['optimiser states'] == 1000 * 4 // 4


def test_zero_buckets():
    assert deepspeed_zero(2, 8, True, 2, overlap_comm=True).buffer_bytes == 2 * 5e8 * 2
    assert deepspeed_zero(1, 8, True, 2).buffer_bytes == 5e8 * 2
    assert deepspeed_zero(1, 8, True, 2, contiguous_gradients=False).buffer_bytes == 0
    assert deepspeed_zero(3, 8, True, 2).buffer_bytes == 5e8 * 2 + 1e9 * 2
    with pytest.raises(ValueError, match='0, 1, 2 or 3'):
        deepspeed_zero(4, 8, True, 2)


@pytest.mark.parametrize('strategy, weights, rest', [
    ('FULL_SHARD', 500, True), ('ShardingStrategy.SHARD_GRAD_OP', 2000, True),
    ('NO_SHARD', 2000, False)])
def test_fsdp_strategies(strategy, weights, rest):
    sharding = fsdp(strategy, 4, largest_block=50, compute_bytes=2)
    rows = _model_state_rows(sharding)
    assert rows['weights'] == weights
    assert rows['gradients'] == (500 if rest else 2000)
    assert rows['optimiser states'] == (1000 if rest else 4000)
    assert rows['master weights'] is None  # FSDP shards the parameters in their own dtype
    assert sharding.buffer_bytes == (2 * 50 * 2 if weights == 500 else 0)
    with pytest.raises(ValueError, match='FULL_SHARD'):
        fsdp('HALF_SHARD', 4, 50, 2)


def test_lora_reference_is_free_and_adapters_step_in_their_dtype():
    counts = ParamCounts(vision=100, language=800, lm_head=100, adapters=40,
                         trainable={'float32': 40}, frozen={'bfloat16': 1000},
                         vision_trains=False)
    rows = _rows(_plan(single_device(), counts=counts))
    assert rows['weights'] == 40 * 4 + 1000 * 2
    assert rows['gradients'] == 40 * 4
    assert rows['optimiser states'] == 40 * 8  # AdamW states in fp32 for fp32 adapters
    assert rows['KL reference policy'] == 0
    assert 'activations, vision tower' not in rows  # a frozen tower keeps nothing for backward


def test_reference_dtype_is_the_adapters_and_none_without_kl():
    """DeepSpeed casts the policy, not the reference built from the adapter's dtype."""
    plan = _plan(single_device(), reference={'float32': 1000})
    assert _rows(plan)['KL reference policy'] == 4000
    no_kl = Workload(**dict(vars(WORK), uses_reference=False))
    assert _rows(_plan(single_device(), work=no_kl))['KL reference policy'] == 0


def test_without_checkpointing_every_layer_keeps_its_tensors():
    work = Workload(**dict(vars(WORK), gradient_checkpointing=False))
    rows = _rows(_plan(single_device(), work=work))
    assert rows['activations'] == 4 * 16 * (80 + 64) * 2 * 2
    assert rows['activations, vision tower'] == 4 * 12 * (40 + 32) * 2 * 2
    assert 'one layer recomputed' not in rows


def test_sft_has_no_rollout():
    work = Workload(**dict(vars(WORK), rollout=False, uses_reference=False))
    plan = _plan(single_device(), work=work)
    assert 'rollout KV cache' not in _rows(plan)
    assert plan.phase_bytes(ROLLOUT) == 0


def test_issue_14_figures_for_qwen25_vl_7b():
    """Plain DDP, bf16 weights and AdamW: 16.6 + 16.6 + 33.2 + 16.6 = 83 GB of model states;
    ZeRO-2 on 8 GPUs in bf16 mode: 16.6 + 6.2 + 12.4 (fp32 states + master) + 16.6 = ~52."""
    counts = ParamCounts(vision=0, language=QWEN7B_PARAMS, lm_head=0,
                         trainable={'bfloat16': QWEN7B_PARAMS})
    plain = _plan(ddp(8, QWEN7B_PARAMS * 2), counts=counts)
    assert plain.model_states / GB == pytest.approx(83, rel=0.01)
    assert _rows(plain)['optimiser states'] / GB == pytest.approx(33.2, rel=0.01)
    zero2 = _plan(deepspeed_zero(2, 8, True, 2), counts=counts)
    rows = _rows(zero2)
    assert rows['gradients'] / GB == pytest.approx(6.2, rel=0.01)
    assert (rows['optimiser states'] + rows['master weights']) / GB == pytest.approx(12.4, rel=0.01)
    assert zero2.model_states / GB == pytest.approx(16.6 + 6.2 + 12.4 + 16.6, rel=0.01)


def test_tables_and_json():
    plan = _plan(ddp(2, 2000))
    text = format_plan(plan, 'demo')
    assert 'demo' in text and 'peak' in text and 'GB = 1e9 bytes' in text
    for phase in (MODEL_STATES, TRAINING, ROLLOUT, BUFFERS):
        assert phase in text
    data = json.loads(json.dumps(plan.to_dict()))
    assert data['totals']['peak']['bytes'] == plan.peak
    assert data['fits'] is True and len(data['components']) == len(plan.components)
    table = format_parameters(ParamCounts(vision=1, language=2, lm_head=0, lm_head_tied=True,
                                          trainable={'bfloat16': 3}), 'meta device')
    assert 'tied' in table and 'LoRA' not in table
