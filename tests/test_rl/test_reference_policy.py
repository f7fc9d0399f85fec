# Copyright (c) finers_mm contributors. All rights reserved.
"""ReferencePolicy's log-probs: the same in chunks of prompts as in one forward, for the frozen copy
of a full fine-tune and for the LoRA-disabled policy (its lifecycle over load_from and resume is
tested through the runner in test_grpo_training.py)."""
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

from finers_mm.registry import MODELS
from finers_mm.rl.reference import ReferencePolicy

PROMPTS = ['Please find the tiny red car.', 'Where is the boat?', 'Find the small flag.']
IMAGES = [np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
          for seed, shape in enumerate([(224, 392, 3), (112, 112, 3), (168, 308, 3)])]


def _stage(tiny_models, **vlm):
    init_default_scope('finers_mm')
    return MODELS.build(dict(type='LocalRefiner', vlm=dict(
        type='Qwen25VLAdapter', pretrained=tiny_models['qwen2_5_vl'],
        generation=dict(max_new_tokens=8), **vlm)))


@pytest.mark.parametrize('lora', [False, True])
def test_chunked_reference_logprobs_equal_one_forward(tiny_models, lora):
    model = _stage(tiny_models, **(dict(lora=dict(r=4, alpha=8)) if lora else {}))
    with torch.no_grad():  # move the policy away from its reference
        for name, param in model.vlm.named_parameters():
            if param.requires_grad and ('lora_B' in name or not lora):
                param.add_(0.02)
    torch.manual_seed(0)
    generation = model.vlm.generate(IMAGES, PROMPTS, do_sample=True, num_return_sequences=2)
    frozen = None if lora else model.build_reference('pretrained')
    results = []
    for micro_batch in (2, 4, 64):  # 1, 2 and all 3 prompts a forward
        reference = ReferencePolicy(micro_batch=micro_batch)
        reference.frozen = frozen
        results.append(reference.logprobs(model, generation, temperature=0.7))
    for chunked in results[:2]:
        np.testing.assert_allclose(chunked, results[-1], atol=1e-5)
    assert results[-1].shape == generation.completion_ids.shape
    with torch.no_grad():
        policy = model.vlm.completion_logprobs(generation.prompt_inputs, generation.completion_ids,
                                               generation.completion_mask, temperature=0.7)
    assert not torch.allclose(policy, results[-1], atol=1e-4)  # the reference is not the policy
