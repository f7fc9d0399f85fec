# Copyright (c) finers_mm contributors. All rights reserved.
"""A stage's GRPO step is the same with the prompt shared by its group (``vlm.share_prompt=True``,
the default) as with one prompt copy per completion: reference log-probs (ReferencePolicy, the
LoRA-disabled policy and the frozen copy), the GRPO loss and its logged terms, and the gradient of
every trainable parameter, on a sampled rollout of the tiny Qwen2.5-VL (3 prompts, n = 3)."""
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

from finers_mm.registry import MODELS
from finers_mm.rl.reference import ReferencePolicy
from finers_mm.rl.rollout import Rollout

PROMPTS = ['Please find the tiny red car.', 'Where is the boat?', 'Find the small flag.']
IMAGES = [np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
          for seed, shape in enumerate([(224, 392, 3), (112, 112, 3), (168, 308, 3)])]
N = 3
TOL = 1e-5


@pytest.mark.parametrize('lora', [False, True])
def test_grpo_step_equal_with_and_without_sharing(tiny_models, lora):
    init_default_scope('finers_mm')
    model = MODELS.build(dict(type='LocalRefiner', grpo_loss=dict(type='GRPOLoss', kl_coef=0.04, entropy_coef=1e-2),
                              vlm=dict(type='Qwen25VLAdapter',
                                       pretrained=tiny_models['qwen2_5_vl'],
                                       generation=dict(max_new_tokens=8),
                                       lora=dict(r=4, alpha=8) if lora else None)))
    with torch.no_grad():  # move the policy away from its reference
        for name, param in model.vlm.named_parameters():
            if param.requires_grad and ('lora_B' in name or not lora):
                param.add_(0.02)
    torch.manual_seed(0)
    generation = model.vlm.generate(IMAGES, PROMPTS, do_sample=True, num_return_sequences=N)
    assert generation.completion_mask.sum(1).unique().numel() > 1  # completions of several lengths
    frozen = None if lora else model.build_reference('pretrained')
    params = [p for p in model.parameters() if p.requires_grad]
    results = {}
    for share in (False, True):
        model.vlm.share_prompt = share
        if frozen is not None:
            frozen.share_prompt = share
        reference = ReferencePolicy(micro_batch=2 * N)  # chunks of 2 and 1 prompts
        reference.frozen = frozen
        ref_logps = reference.logprobs(model, generation, temperature=0.7)
        rollout = Rollout(prompt_inputs=generation.prompt_inputs,
                          completion_ids=generation.completion_ids,
                          completion_mask=generation.completion_mask,
                          advantages=torch.linspace(-1, 1, len(PROMPTS) * N), ref_logps=ref_logps,
                          old_logps=None, rewards=np.zeros(len(PROMPTS) * N), reward_terms={},
                          invalid=np.zeros(len(PROMPTS) * N, bool), num_generations=N,
                          temperature=0.7, max_completion_length=8)
        model.zero_grad(set_to_none=True)
        logged = model.grpo_loss(rollout)
        logged['loss'].backward()
        results[share] = (ref_logps, {k: v.detach() for k, v in logged.items()},
                          [torch.zeros_like(p) if p.grad is None else p.grad.clone()
                           for p in params])
    (ref0, logged0, grads0), (ref1, logged1, grads1) = results[False], results[True]
    torch.testing.assert_close(ref1, ref0, atol=TOL, rtol=0)
    assert set(logged0) == set(logged1) and 'kl' in logged0
    for key in logged0:
        torch.testing.assert_close(logged1[key], logged0[key], atol=TOL, rtol=0, msg=key)
    assert any(g.abs().max() > 1e-4 for g in grads0)
    for want, got in zip(grads0, grads1):
        torch.testing.assert_close(got, want, atol=TOL, rtol=0)
