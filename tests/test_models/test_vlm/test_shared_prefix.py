# Copyright (c) finers_mm contributors. All rights reserved.
"""The shared-prompt log-prob forward (finers_mm.models.vlm.shared_prefix) equals the repeated-prompt
forward (finers_mm.models.vlm.logprobs) in log-probs, entropies, a GRPO-style loss and the gradients
of every trainable parameter: tiny Qwen2-VL / Qwen2.5-VL / Qwen3-VL, float32, dropout off, 2 prompts
of different lengths (left padding), n = 3 completions of different lengths (right padding)."""
import numpy as np
import pytest
import torch

from finers_mm.models.vlm.logprobs import completion_token_logprobs
from finers_mm.models.vlm.shared_prefix import completion_positions, shared_prompt_logprobs
from finers_mm.registry import MODELS
from finers_mm.testing.tiny_models import ADAPTER_TYPES

N = 3
LENGTHS = [7, 3, 5, 1, 6, 4]  # completion lengths, prompt-major: 3 for prompt 0, 3 for prompt 1
TOL = 1e-5


def _rgb(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _completions(vocab: int):
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(10, min(vocab, 200), (len(LENGTHS), max(LENGTHS)), generator=generator)
    mask = torch.zeros_like(ids)
    for row, length in enumerate(LENGTHS):
        mask[row, :length] = 1
    return ids.masked_fill(mask == 0, 0), mask


def _loss_and_grads(adapter, share: bool, inputs, ids, mask):
    """log-probs, entropies, a clipped-ratio GRPO-style loss with an entropy bonus, and the grads."""
    params = [p for p in adapter.model.parameters() if p.requires_grad]
    adapter.model.zero_grad(set_to_none=True)
    if share:
        logps, entropies = shared_prompt_logprobs(adapter.model, dict(inputs), ids, mask,
                                                  temperature=0.7, return_entropy=True)
    else:
        logps, entropies = completion_token_logprobs(
            adapter.model, adapter.repeat_prompt_inputs(inputs, N), ids, mask, temperature=0.7,
            return_entropy=True)
    advantages = torch.linspace(-1, 1, ids.shape[0])[:, None]
    ratio = torch.exp(logps - logps.detach() + 0.1 * mask)
    loss = (-(torch.minimum(ratio * advantages, ratio.clamp(0.8, 1.2) * advantages) * mask).sum()
            - 1e-2 * (entropies * mask).sum()) / mask.sum()
    loss.backward()
    grads = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params]
    return logps.detach(), entropies.detach(), loss.detach(), grads


@pytest.mark.parametrize('family,lora,checkpointing', [
    ('qwen2_5_vl', False, False), ('qwen2_5_vl', True, False), ('qwen2_5_vl', True, True),
    ('qwen2_5_vl', False, True), ('qwen2_vl', False, False), ('qwen2_vl', True, True),
    ('qwen3_vl', False, False)])
def test_shared_prompt_equals_repeated_prompt(model_dirs, family, lora, checkpointing):
    adapter = MODELS.build(dict(type=ADAPTER_TYPES[family], pretrained=model_dirs[family],
                                lora=dict(r=4) if lora else None,
                                gradient_checkpointing=checkpointing))
    adapter.train()  # checkpointing acts in training mode only; dropout is 0 in the tiny models
    inputs = adapter.build_inputs([_rgb(56, 84, 0), _rgb(112, 56, 1)],
                                  ['short', 'a much longer prompt with more words in it'])
    assert not inputs['attention_mask'].all()  # the shorter prompt is left-padded
    ids, mask = _completions(adapter.model.config.get_text_config().vocab_size)
    expected = _loss_and_grads(adapter, False, inputs, ids, mask)
    shared = _loss_and_grads(adapter, True, inputs, ids, mask)
    for name, want, got in zip(('logps', 'entropies', 'loss'), expected[:3], shared[:3]):
        torch.testing.assert_close(got, want, atol=TOL, rtol=0, msg=name)
    assert (expected[0] != 0).sum() == mask.sum()  # every completion token was scored
    assert len(expected[3]) > 0 and any(g.abs().max() > 1e-3 for g in expected[3])
    for want, got in zip(expected[3], shared[3]):
        torch.testing.assert_close(got, want, atol=TOL, rtol=0)


def test_adapter_switch_and_single_completion(model_dirs):
    """``share_prompt`` picks the path; both agree under no_grad; n = 1 uses the plain forward."""
    adapters = [MODELS.build(dict(type='Qwen25VLAdapter', pretrained=model_dirs['qwen2_5_vl'],
                                  share_prompt=share)) for share in (True, False)]
    assert adapters[0].share_prompt and not adapters[1].share_prompt
    inputs = adapters[0].build_inputs([_rgb(56, 84, 0), _rgb(112, 56, 1)], ['a b c', 'a'])
    ids, mask = _completions(1000)
    with torch.no_grad():
        shared, plain = (a.completion_logprobs(inputs, ids, mask) for a in adapters)
        torch.testing.assert_close(shared, plain, atol=TOL, rtol=0)
        single = adapters[0].completion_logprobs(inputs, ids[::N], mask[::N])
    torch.testing.assert_close(single, plain[::N], atol=TOL, rtol=0)


def test_completion_positions_continue_after_the_prompt():
    # prompt 0 left-padded by 2 (positions 0 there), an image making the max position 5 at
    # index 3; prompt 1 unpadded with max 3: completions continue at 6 and 4
    positions = torch.tensor([[0, 0, 0, 5, 2], [0, 1, 2, 3, 3]])[None].expand(3, -1, -1)
    prompt_mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    completion_mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0]])
    got = completion_positions(positions, prompt_mask, completion_mask, n=2)
    expected = torch.tensor([[6, 7, 0], [6, 0, 0], [4, 5, 6], [0, 0, 0]])
    assert got.shape == (3, 4, 3)
    assert torch.equal(got, expected[None].expand(3, -1, -1))
