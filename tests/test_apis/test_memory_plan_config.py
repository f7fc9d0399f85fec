# Copyright (c) finers_mm contributors. All rights reserved.
"""finers_mm.apis.memory_plan_model / memory_plan_config: parameter counts on the meta device
against the tiny models actually built, the shipped public configs, image tokens against the
processor, the strategy and optimiser read from a config, bad input."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from finers_mm.apis.memory_plan_config import (optimizer_state_bytes, plan_config,
                                               read_sharding)
from finers_mm.apis.memory_plan_model import (SHIPPED_MODEL_CONFIGS, architecture,
                                              count_parameters, find_model_config, image_patches,
                                              load_model_config, pixel_budget)
from finers_mm.models.vlm.loading import wrap_lora
from finers_mm.testing import config_path
from finers_mm.utils.run_config import load_config

#: the tiny families and their transformers classes
FAMILIES = {'qwen2_5_vl': 'Qwen2_5_VLForConditionalGeneration',
            'qwen2_vl': 'Qwen2VLForConditionalGeneration'}
LORA = dict(r=4, alpha=8)
QWEN7B = osp.join(SHIPPED_MODEL_CONFIGS, 'Qwen2.5-VL-7B-Instruct', 'config.json')
QWEN3B = osp.join(SHIPPED_MODEL_CONFIGS, 'Qwen2.5-VL-3B-Instruct', 'config.json')
#: issue 14's setting of gse_qwen7b.py, pinned whatever the config becomes: plain DDP, bf16
#: weights, torch's AdamW
PLAIN_DDP = {'runner_type': 'Runner', 'strategy': None, 'model.vlm.dtype': 'bfloat16',
             'optim_wrapper.optimizer.type': 'AdamW'}


@pytest.fixture(scope='module', autouse=True)
def _scope():
    init_default_scope('finers_mm')


def _loaded(directory: str, family: str):
    import transformers
    return getattr(transformers, FAMILIES[family]).from_pretrained(directory,
                                                                   local_files_only=True)


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_meta_count_equals_the_built_tiny_model(tiny_models, family):
    model = _loaded(tiny_models[family], family)
    hf_config = load_model_config(osp.join(tiny_models[family], 'config.json'))
    counts = count_parameters(hf_config, FAMILIES[family], dtype='float32')
    assert counts.total == sum(p.numel() for p in model.parameters())
    assert counts.vision == sum(p.numel() for p in model.model.visual.parameters())
    assert counts.lm_head == model.lm_head.weight.numel()  # the tiny models do not tie it
    assert counts.trainable == {'float32': counts.total} and counts.frozen == {}
    assert counts.vision_trains and counts.adapters == 0
    layer = model.model.language_model.layers[0]
    assert counts.largest_block >= sum(p.numel() for p in layer.parameters())


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_meta_lora_count_equals_peft_on_the_built_tiny_model(tiny_models, family):
    model = wrap_lora(_loaded(tiny_models[family], family), LORA)
    hf_config = load_model_config(osp.join(tiny_models[family], 'config.json'))
    counts = count_parameters(hf_config, FAMILIES[family], dtype='float32', lora=LORA)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert counts.adapters == counts.num_trainable == trainable > 0
    assert counts.total == sum(p.numel() for p in model.parameters())
    assert not counts.vision_trains  # LoRA targets the language model only


def test_bf16_lora_adapters_are_float32_as_peft_keeps_them():
    counts = count_parameters(load_model_config(QWEN7B), FAMILIES['qwen2_5_vl'], 'bfloat16',
                              lora=dict(r=64, alpha=128))
    assert set(counts.trainable) == {'float32'} and set(counts.frozen) == {'bfloat16'}
    assert counts.frozen['bfloat16'] == 8_292_166_656


def test_shipped_public_configs():
    """Qwen2.5-VL-7B: 8.29 B (7.62 B language model with lm_head, 0.68 B vision), not tied;
    3B: 3.75 B with the lm_head tied to the embeddings."""
    seven = count_parameters(load_model_config(QWEN7B), FAMILIES['qwen2_5_vl'])
    assert seven.total == 8_292_166_656
    assert (seven.vision, seven.language, seven.lm_head) == (676_550_144, 7_070_619_136,
                                                             544_997_376)
    assert not seven.lm_head_tied
    three = count_parameters(load_model_config(QWEN3B), FAMILIES['qwen2_5_vl'])
    assert three.total == 3_754_622_976 and three.lm_head == 0 and three.lm_head_tied
    arch = architecture(load_model_config(QWEN7B))
    assert (arch.hidden, arch.layers, arch.kv_heads, arch.head_dim, arch.vocab) == \
        (3584, 28, 4, 128, 152064)
    assert (arch.vision_hidden, arch.vision_depth) == (1280, 32)


@pytest.mark.parametrize('frame', [(1920, 1080), (512, 512), (640, 360)])
def test_image_patches_equal_the_processor(tiny_models, frame):
    from transformers import AutoProcessor
    directory = tiny_models['qwen2_5_vl']
    low, high, source = pixel_budget({}, osp.join(directory, 'config.json'))
    assert source.endswith('processor_config.json')
    processor = AutoProcessor.from_pretrained(directory, local_files_only=True)
    image = np.zeros((frame[1], frame[0], 3), np.uint8)
    grid = processor.image_processor(images=[image], return_tensors='pt')['image_grid_thw']
    patches, tokens = image_patches(frame, 14, 2, (low, high))
    assert patches == int(grid.prod()) and tokens == patches // 4


def test_image_tokens_at_the_7b_pixel_budget():
    """1920x1080 -> 1932x1092 -> 10,764 patches, 2,691 tokens (issue 14 measured 10,764)."""
    low, high, source = pixel_budget({}, QWEN7B)
    assert (low, high) == (3136, 12845056) and 'public' in source
    assert image_patches((1920, 1080), 14, 2, (low, high)) == (10764, 2691)
    budget = pixel_budget(dict(max_pixels=1920 * 1080), QWEN7B)
    assert budget[1] == 1920 * 1080 and budget[2] == 'model.vlm.min_pixels / max_pixels'


def test_find_model_config_order_and_errors(tmp_path, tiny_models):
    local = find_model_config(tiny_models['qwen2_5_vl'])
    assert local.source == 'model.vlm.pretrained'
    shipped = find_model_config('checkpoints/Qwen2.5-VL-7B-Instruct')
    assert shipped.path == QWEN7B and 'shipped' in shipped.source
    given = find_model_config('checkpoints/Qwen2.5-VL-7B-Instruct', tiny_models['qwen2_vl'])
    assert given.source == '--model-config' and given.path.startswith(tiny_models['qwen2_vl'])
    with pytest.raises(FileNotFoundError) as error:
        find_model_config(str(tmp_path / 'Qwen9-VL'))
    assert 'config.json' in str(error.value) and '--model-config' in str(error.value)
    assert str(tmp_path / 'Qwen9-VL') in str(error.value)
    with pytest.raises(FileNotFoundError, match='--model-config'):
        find_model_config('x', str(tmp_path))  # a folder without config.json
    broken = tmp_path / 'config.json'
    broken.write_text('{"model_type": ')
    with pytest.raises(ValueError, match=str(broken)):
        load_model_config(str(broken))


class _Counted(torch.optim.AdamW):
    """An optimiser that states its own size, with an option that changes it."""

    @staticmethod
    def state_bytes_per_param(param_dtype, state_dtype='float32'):
        return 2 * getattr(torch, state_dtype).itemsize + param_dtype.itemsize


def test_optimizer_state_bytes():
    assert optimizer_state_bytes(dict(type='AdamW'), 'bfloat16') == 4
    assert optimizer_state_bytes(dict(type='AdamW'), 'float32') == 8
    assert optimizer_state_bytes(dict(type='Adam', amsgrad=True), 'float32') == 12
    assert optimizer_state_bytes(dict(type='SGD', momentum=0.9), 'float32') == 4
    assert optimizer_state_bytes(dict(type='SGD'), 'float32') == 0
    assert optimizer_state_bytes(dict(type=_Counted), 'bfloat16') == 10
    assert optimizer_state_bytes(dict(type=_Counted, state_dtype='bfloat16'), 'bfloat16') == 6
    with pytest.raises(ValueError, match='state_bytes_per_param'):
        optimizer_state_bytes(dict(type='LBFGS'), 'float32')


def _sharding(cfg, gpus=8):
    return read_sharding(cfg, gpus, count_parameters(load_model_config(QWEN3B),
                                                     FAMILIES['qwen2_5_vl']), 100, 2)


def test_read_sharding_from_configs():
    zero = load_config(config_path('finers', 'gse_qwen7b_deepspeed.py'),
                       {'strategy.zero_optimization.stage': 2, 'strategy.bf16.enabled': True})
    sharding, cast, notes = _sharding(zero)
    assert sharding.name == 'DeepSpeed ZeRO-2' and cast == 'bfloat16' and not notes
    assert sharding.master_weights and sharding.gradients and not sharding.weights
    stage3 = Config(dict(runner_type='FlexibleRunner', strategy=dict(
        type='DeepSpeedStrategy', config=dict(zero_optimization=dict(stage=3)))))
    assert _sharding(stage3)[0].weights
    full = Config(dict(runner_type='FlexibleRunner', strategy=dict(type='FSDPStrategy')))
    assert _sharding(full)[0].name == 'FSDP FULL_SHARD'
    wrapped = Config(dict(model_wrapper_cfg=dict(type='MMFullyShardedDataParallel',
                                                 sharding_strategy='SHARD_GRAD_OP')))
    assert _sharding(wrapped)[0].name == 'FSDP SHARD_GRAD_OP'
    ignored = Config(dict(strategy=dict(type='DeepSpeedStrategy')))
    sharding, _, notes = _sharding(ignored)
    assert sharding.name == 'DDP' and "ignores it" in notes[0]
    assert _sharding(Config(dict()), gpus=1)[0].name == 'single GPU'


def _plan(name, options=None, gpus=8, model_config=None):
    cfg = load_config(config_path('finers', name), options)
    return plan_config(cfg, gpus, name, model_config=model_config)


def test_plan_of_the_7b_configs():
    plain = _plan('gse_qwen7b.py', PLAIN_DDP)
    assert plain.counts.total == 8_292_166_656
    assert plain.plan.model_states / 1e9 == pytest.approx(83, rel=0.01)
    assert plain.settings['image_patches'] == 10764 and plain.settings['num_generations'] == 8
    lora = _plan('lpr_qwen7b_lora.py', gpus=1)
    rows = {c.name.split(' (')[0]: c.bytes for c in lora.plan.components}
    assert rows['KL reference policy'] == 0 and lora.settings['num_generations'] == 4
    assert lora.settings['new_tokens'] == 512 and lora.settings['frame'] == [512, 512]


def test_plan_refuses_bad_input(tiny_models):
    with pytest.raises(ValueError, match='is a .qwen2_vl. model'):
        _plan('gse_qwen7b.py', model_config=tiny_models['qwen2_vl'])
    with pytest.raises(ValueError, match='has no `vlm`'):
        plan_config(load_config(config_path('finers', 'finers_qwen7b_test.py')), 1,
                    'finers_qwen7b_test.py')
    with pytest.raises(ValueError, match='--gpus'):
        _plan('gse_qwen7b.py', gpus=0)


def test_deepspeed_casts_the_policy_not_the_reference():
    """bf16 mode casts the policy DeepSpeed wraps; the frozen reference is built from the
    adapter's dtype."""
    report = _plan('gse_qwen7b_deepspeed.py', {
        'model.vlm.dtype': 'float32', 'strategy.bf16.enabled': True,
        'strategy.zero_optimization.stage': 2, 'optim_wrapper.optimizer.type': 'AdamW'})
    rows = {c.name.split(' (')[0]: c.bytes for c in report.plan.components}
    assert rows['weights'] == 8_292_166_656 * 2
    assert rows['KL reference policy'] == 8_292_166_656 * 4
    assert report.settings['cast'] == 'bfloat16'
    assert report.settings['optimizer_state_bytes'] == {'float32': 8}


def test_the_registered_kahan_adamw_states_its_size():
    """finers_mm's compensated AdamW is found by name in OPTIMIZERS and sizes itself."""
    from finers_mm.registry import OPTIMIZERS
    kahan = OPTIMIZERS.get('KahanAdamW')
    assert optimizer_state_bytes(dict(type='KahanAdamW'), 'bfloat16') == \
        kahan.state_bytes_per_param(torch.bfloat16) > 4


#: issue 14: the full fine-tunes' model states per GPU must leave >= 24 GB of an 80 GB card
MODEL_STATES_BUDGET = 56e9
N_7B = 8_292_166_656


@pytest.mark.parametrize('name,gpus,expected_gb', [('gse_qwen7b.py', 8, 33.17),
                                                   ('lpr_qwen7b.py', 4, 49.75)])
def test_the_7b_full_fine_tunes_shard_by_default(name, gpus, expected_gb):
    """FSDP2 from the config: fp32 shards of the weights, gradients and AdamW states / GPUs, the
    bf16 KL reference whole on each GPU, the weights gathered in bf16 for the rollout."""
    report = _plan(name, gpus=gpus)
    rows = {c.name.split(' (')[0]: c.bytes for c in report.plan.components}
    assert report.settings['strategy'] == 'FSDP2 FULL_SHARD'
    assert report.settings['cast'] == 'float32' and report.settings['compute_dtype'] == 'bfloat16'
    assert rows['weights'] == N_7B * 4 // gpus and rows['gradients'] == N_7B * 4 // gpus
    assert rows['optimiser states'] == N_7B * 8 // gpus
    assert rows['KL reference policy'] == N_7B * 2
    assert rows['weights gathered for the rollout'] == N_7B * 2
    assert report.plan.model_states <= MODEL_STATES_BUDGET
    assert report.plan.model_states / 1e9 == pytest.approx(expected_gb, abs=0.01)
    assert report.plan.fits  # peak within 80 GB
    # the same config unsharded: what issue 14 measured (bf16 weights, KahanAdamW, DDP)
    ddp = _plan(name, {'runner_type': 'Runner', 'strategy': None,
                       'optim_wrapper.optimizer.type': 'KahanAdamW'}, gpus=gpus)
    assert ddp.plan.model_states / 1e9 == pytest.approx(132.7, abs=0.1)


def test_the_3b_twins_shard_as_the_7b_configs():
    for name, gpus in (('gse_qwen3b.py', 8), ('lpr_qwen3b.py', 4)):
        report = _plan(name, gpus=gpus)
        assert report.settings['strategy'] == 'FSDP2 FULL_SHARD'
        assert report.plan.model_states < _plan(name.replace('3b', '7b'), gpus=gpus
                                                ).plan.model_states


def test_read_sharding_of_fully_shard_strategy():
    base = dict(runner_type='FlexibleRunner', strategy=dict(type='finers_mm.FullyShardStrategy'))
    sharding, cast, _ = _sharding(Config(base))
    assert sharding.name == 'FSDP2 FULL_SHARD' and cast == 'float32'
    assert sharding.weights and sharding.optimizer and sharding.rollout_gather
    kept = Config(dict(base, strategy=dict(base['strategy'], reshard_after_forward=False,
                                           master_dtype=None)))
    sharding, cast, _ = _sharding(kept)
    assert sharding.name == 'FSDP2 SHARD_GRAD_OP' and cast is None
    assert not sharding.weights and not sharding.rollout_gather


@pytest.mark.parametrize('name,peak_gb', [('gse_qwen7b_lora.py', 37.63),
                                          ('lpr_qwen7b_lora.py', 29.60)])
def test_the_lora_configs_on_one_40gb_card_at_the_authors_group(name, peak_gb):
    """Issue 14's question: n = 8 samples of 1024 tokens, one 40 GB card, no sharding."""
    cfg = load_config(config_path('finers', name), {
        'custom_hooks.0.num_generations': 8, 'model.vlm.generation.max_new_tokens': 1024})
    report = plan_config(cfg, 1, name, gpu_memory_gb=40)
    assert report.settings['strategy'] == 'single GPU'
    assert report.plan.peak / 1e9 == pytest.approx(peak_gb, abs=0.01) and report.plan.fits
