# Copyright (c) finers_mm contributors. All rights reserved.
"""Generation with each prompt prefilled once for its n samples (finers_mm.models.vlm
.shared_generation) gives the same tokens as Hugging Face ``generate`` on the prompts repeated n
times: greedy token for token, sampling token for token under the same seed (the same
``torch.multinomial`` draws in the same order), on tiny Qwen2-VL / Qwen2.5-VL / Qwen3-VL, with 2
prompts of different image sizes and lengths (left padding), n = 4, LoRA and gradient
checkpointing; one sample per prompt and ``share_prompt=False`` keep ``generate``."""
import numpy as np
import pytest
import torch

from finers_mm.models.vlm import base as vlm_base
from finers_mm.models.vlm.loading import VISION_TOKEN_ID_KEYS
from finers_mm.models.vlm.shared_generation import can_share_generation, shared_prompt_generate
from finers_mm.registry import MODELS
from finers_mm.testing.tiny_models import ADAPTER_TYPES

N = 4
#: a GSE-like (wide frame, short question) and an LPR-like (square crop, long question) prompt
IMAGES = [(56, 112), (84, 84)]
PROMPTS = ['where is the flag?',
           'Please find the small red car next to the bridge with bbox and points in JSON format']


def _rgb(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _adapters(model_dirs, family, **kwargs):
    """The adapter with share_prompt True and False, the same weights (LoRA's B made non-zero, so
    the adapters change the logits)."""
    adapters = {share: MODELS.build(dict(type=ADAPTER_TYPES[family], pretrained=model_dirs[family],
                                         share_prompt=share, **kwargs))
                for share in (True, False)}
    if kwargs.get('lora'):
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for name, param in adapters[True].model.named_parameters():
                if 'lora_B' in name:
                    param.copy_(0.5 * torch.randn(param.shape, generator=generator))
    adapters[False].model.load_state_dict(adapters[True].model.state_dict())
    return adapters


def _inputs(adapter):
    inputs = adapter.build_inputs([_rgb(h, w, i) for i, (h, w) in enumerate(IMAGES)], PROMPTS)
    assert not inputs['attention_mask'].all()  # the shorter prompt is left-padded
    return inputs


def _sample(adapter, inputs, seed=0, **overrides):
    torch.manual_seed(seed)
    return adapter.generate_from_inputs(inputs, do_sample=True, num_return_sequences=N,
                                        **overrides)


@pytest.mark.parametrize('family,lora,checkpointing', [
    ('qwen2_5_vl', False, False), ('qwen2_5_vl', True, True), ('qwen2_vl', False, False),
    ('qwen3_vl', False, False)])
def test_greedy_equals_generate_on_repeated_prompts(model_dirs, family, lora, checkpointing):
    adapter = _adapters(model_dirs, family, lora=dict(r=4) if lora else None,
                        gradient_checkpointing=checkpointing)[True]
    inputs = _inputs(adapter)
    config = adapter._generation_config(max_new_tokens=24)  # greedy: HF allows one sequence
    model = adapter.model.eval()
    with torch.no_grad():
        shared = shared_prompt_generate(model, dict(inputs), config, n=N)
        repeated = model.generate(**adapter.repeat_prompt_inputs(inputs, N),
                                  generation_config=config)
    expected = repeated[:, inputs['input_ids'].shape[1]:]
    assert shared.shape == expected.shape == (2 * N, 24)
    assert torch.equal(shared, expected)
    assert not torch.equal(expected[0], expected[N])  # the two prompts' answers differ
    assert len(set(expected[0].tolist())) > 1  # not one token repeated


@pytest.mark.parametrize('family,lora,checkpointing', [
    ('qwen2_5_vl', False, False), ('qwen2_5_vl', True, True), ('qwen2_vl', True, False),
    ('qwen3_vl', False, False)])
def test_sampling_with_a_seed_gives_the_same_tokens(model_dirs, family, lora, checkpointing):
    """Identical tokens (the same RNG draws); their log-probs then agree to 1e-5 as well."""
    adapters = _adapters(model_dirs, family, lora=dict(r=4) if lora else None,
                         gradient_checkpointing=checkpointing)
    for adapter in adapters.values():
        adapter.train()  # generate_from_inputs must switch to eval itself (and back)
    inputs = _inputs(adapters[True])
    shared, repeated = (_sample(adapters[s], inputs, max_new_tokens=20, with_scores=True)
                        for s in (True, False))
    assert adapters[True].model.training  # restored
    assert torch.equal(shared.completion_ids, repeated.completion_ids)
    assert torch.equal(shared.completion_mask, repeated.completion_mask)
    assert shared.texts == repeated.texts
    torch.testing.assert_close(shared.mean_logprobs, repeated.mean_logprobs, atol=1e-5, rtol=0)
    # the n samples of a prompt differ: this is sampling, with the prompt's cache shared
    assert len({tuple(row) for row in shared.completion_ids[:N].tolist()}) > 1


def test_sampling_settings_mean_the_same(model_dirs):
    """temperature, top-k, top-p, min_new_tokens, eos and the suppressed vision tokens act as in
    ``generate``: the same tokens under each setting, and settings that must change them do."""
    adapters = _adapters(model_dirs, 'qwen2_5_vl')
    inputs = _inputs(adapters[True])
    config = adapters[True].model.config
    vision = [getattr(config, key) for key in VISION_TOKEN_ID_KEYS]
    results = {}
    for name, settings in dict(plain={}, hot=dict(temperature=3.0),
                               nucleus=dict(temperature=0.7, top_p=0.8, top_k=20),
                               long=dict(min_new_tokens=16)).items():
        got = [_sample(adapters[s], inputs, seed=0, max_new_tokens=16, **settings)
               for s in (True, False)]
        assert torch.equal(got[0].completion_ids, got[1].completion_ids), name
        results[name] = got[0]
        assert not torch.isin(got[0].completion_ids, torch.tensor(vision)).any(), name
    assert not torch.equal(results['plain'].completion_ids, results['hot'].completion_ids)
    assert not torch.equal(results['plain'].completion_ids, results['nucleus'].completion_ids)
    assert (results['plain'].completion_mask.sum(1) < 16).any()  # eos ends some samples early
    assert (results['long'].completion_mask.sum(1) == 16).all()  # ... but not before 16 tokens


def test_one_sample_beams_and_share_prompt_off_keep_generate(model_dirs, monkeypatch):
    adapters = _adapters(model_dirs, 'qwen2_5_vl')
    model = adapters[True].model
    make = adapters[True]._generation_config
    assert can_share_generation(model, make(do_sample=True, num_return_sequences=N))
    assert not can_share_generation(model, make(do_sample=True))  # n = 1: nothing to share
    assert not can_share_generation(model, make(num_beams=N, num_return_sequences=N))
    inputs = _inputs(adapters[True])
    single = [adapters[s].generate_from_inputs(inputs, max_new_tokens=8) for s in (True, False)]
    assert torch.equal(single[0].completion_ids, single[1].completion_ids)

    def refuse(*args, **kwargs):
        raise AssertionError('the shared path ran')

    monkeypatch.setattr(vlm_base, 'shared_prompt_generate', refuse)
    _sample(adapters[False], inputs, max_new_tokens=4)  # share_prompt=False: generate
    adapters[True].generate_from_inputs(inputs, max_new_tokens=4)  # n = 1: generate
    with pytest.raises(AssertionError, match='the shared path ran'):
        _sample(adapters[True], inputs, max_new_tokens=4)


def test_synced_gpus_steps_until_every_rank_is_done(model_dirs, tmp_path):
    """``synced_gpus`` (a sharded model: every rank must forward until all are done) on a
    one-rank gloo group gives the same tokens as without."""
    import torch.distributed as dist
    adapter = _adapters(model_dirs, 'qwen2_5_vl')[True]
    inputs = _inputs(adapter)
    config = adapter._generation_config(do_sample=True, num_return_sequences=N, max_new_tokens=12)
    model = adapter.model.eval()
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/store', rank=0, world_size=1)
    try:
        got = []
        for synced in (False, True):
            torch.manual_seed(0)
            got.append(shared_prompt_generate(model, dict(inputs), config, synced_gpus=synced))
    finally:
        dist.destroy_process_group()
    assert torch.equal(got[0], got[1])
    assert (got[0] == config.pad_token_id).any()  # some rows ended early and were padded
