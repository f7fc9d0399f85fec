# Copyright (c) finers_mm contributors. All rights reserved.
"""Generation of n samples per prompt with each prompt (and its image) prefilled ONCE.

``model.generate(num_return_sequences=n)`` repeats every prompt n times before anything runs,
``pixel_values`` included: the vision tower and the prompt's prefill (~2,800 tokens for a GSE
frame under Qwen2.5-VL-7B's budget) run n times for identical results. Here the B distinct
prompts are prefilled once, the keys/values of the cache are repeated n times along the batch
(prompt-major, as ``generate`` orders samples), and the B*n samples are decoded from them.

The decode loop is transformers' own ``_sample`` loop (5.x) with its parts taken from the model:
the same logits processors and stopping criteria built from the same ``GenerationConfig``
(``_get_logits_processor`` / ``_get_stopping_criteria``: temperature, top-k, top-p, the
suppressed vision tokens, ``min_new_tokens``, repetition penalty ... and eos), the same
float32 scores, one ``torch.multinomial`` over the (B*n, V) probabilities per step (so a seeded
run draws the same random numbers as ``generate``) or the argmax, pad after eos, and the same
stop. Only the rope positions differ in HOW they are made: ``generate`` keeps them as state on
the model (``rope_deltas``, set by its prefill), which a prefill done here would not set for the
B*n rows; they are passed explicitly instead, computed as the unshared forward computes them
(:func:`~.shared_prefix.first_completion_position`: generated tokens continue from the prompt's
largest position + 1).

Greedy and beam-free decoding only (:data:`SHARED_MODES`); other modes (beam search, assisted
decoding) go through ``generate`` with the prompts repeated.
"""
import copy
from typing import TYPE_CHECKING, Dict, Optional

import torch

from .shared_prefix import first_completion_position, prompt_rope_positions

if TYPE_CHECKING:
    from transformers import GenerationConfig, PreTrainedModel

#: ``GenerationMode`` values (their string values) this loop decodes exactly as ``generate``
SHARED_MODES = ('greedy_search', 'sample')


def _hf_model(model: torch.nn.Module) -> 'PreTrainedModel':
    """The transformers model under a peft wrapper (LoRA layers live inside it)."""
    return model.get_base_model() if hasattr(model, 'get_base_model') else model


def can_share_generation(model: torch.nn.Module, config: 'GenerationConfig') -> bool:
    """Whether :func:`shared_prompt_generate` decodes ``config`` exactly as ``generate`` would.

    Args:
        model (torch.nn.Module): the model (or its peft wrapper).
        config (transformers.GenerationConfig): the call's generation config.

    Returns:
        bool: True for greedy decoding and multinomial sampling (no beams, no assistant), more
        than one sample per prompt and a multimodal-rope (Qwen-VL) model.
    """
    mode = config.get_generation_mode()
    return (config.num_return_sequences > 1 and str(getattr(mode, 'value', mode)) in SHARED_MODES
            and any(hasattr(m, 'get_rope_index') for m in model.modules()))


def _prepare_config(hf_model: 'PreTrainedModel', config: 'GenerationConfig', batch_size: int,
                    prompt_length: int, device: torch.device) -> 'GenerationConfig':
    """The config as ``generate`` prepares it (defaults, special-token tensors, max/min length
    counted from the prompt length)."""
    has_default_max = config.max_length is None and hf_model.generation_config.max_length is None
    has_default_min = config.min_length is None and hf_model.generation_config.min_length is None
    config, _ = hf_model._prepare_generation_config(copy.deepcopy(config))
    hf_model._prepare_special_tokens(config, True, device=device, batch_size=batch_size)
    return hf_model._prepare_generated_length(
        config, has_default_max_length=has_default_max, has_default_min_length=has_default_min,
        model_input_name='input_ids', input_ids_length=prompt_length, inputs_tensor=None)


@torch.no_grad()
def shared_prompt_generate(model: torch.nn.Module, prompt_inputs: Dict[str, torch.Tensor],
                           config: 'GenerationConfig', n: Optional[int] = None,
                           synced_gpus: bool = False) -> torch.Tensor:
    """Decode ``config.num_return_sequences`` samples per prompt, each prompt prefilled once.

    Same tokens as ``model.generate(**prompt_inputs, generation_config=config)`` up to float
    summation order in the logits (greedy: identical unless two logits tie within rounding;
    sampling: the same random draws in the same order).

    Args:
        model (torch.nn.Module): a Qwen-VL image-text-to-text model (or its peft wrapper), in eval
            mode.
        prompt_inputs (dict[str, torch.Tensor]): the B prompts on the model's device: left-padded
            ``input_ids`` / ``attention_mask`` (B, P), ``pixel_values``, ``image_grid_thw``
            (B, 3), ``mm_token_type_ids`` (B, P).
        config (transformers.GenerationConfig): the call's config
            (:func:`can_share_generation` must hold); not modified.
        n (int, optional): samples per prompt. Defaults to None: ``config.num_return_sequences``
            (given apart for greedy decoding, whose config HF only allows with one sequence:
            n greedy copies of a prompt, e.g. to compare with the repeated prompts).
        synced_gpus (bool): keep stepping until every rank is done (``generate``'s flag for
            models sharded across ranks, e.g. ZeRO-3). Defaults to False.

    Returns:
        torch.LongTensor: (B*n, T) generated tokens without the prompt, prompt-major; after a
        row's end (eos) its tokens are the pad id, as ``generate`` writes them.
    """
    from transformers import DynamicCache
    from transformers.generation.stopping_criteria import StoppingCriteriaList

    hf_model = _hf_model(model)
    prompt_ids, prompt_mask = prompt_inputs['input_ids'], prompt_inputs['attention_mask']
    num_prompts, prompt_length = prompt_ids.shape
    n = config.num_return_sequences if n is None else int(n)
    device = prompt_ids.device
    config = _prepare_config(hf_model, config, num_prompts * n, prompt_length, device)
    input_ids = prompt_ids.repeat_interleave(n, dim=0)
    attention_mask = prompt_mask.repeat_interleave(n, dim=0)
    processors = hf_model._get_logits_processor(
        generation_config=config, input_ids_seq_length=prompt_length,
        encoder_input_ids=prompt_ids, device=device,
        model_kwargs=dict(attention_mask=attention_mask))
    criteria = hf_model._get_stopping_criteria(generation_config=config,
                                               stopping_criteria=StoppingCriteriaList())
    pad_token = config._pad_token_tensor
    has_eos_criterion = any(hasattr(criterion, 'eos_token_id') for criterion in criteria)

    # Prefill: the B prompts with their images, once; only the last position's logits are needed.
    positions = prompt_rope_positions(model, prompt_inputs)
    cache = DynamicCache(config=hf_model.config)
    logits = model(**prompt_inputs, position_ids=positions, past_key_values=cache,
                   use_cache=True, logits_to_keep=1).logits[:, -1]
    logits = logits.to(dtype=torch.float32).repeat_interleave(n, dim=0)
    cache.batch_repeat_interleave(n)
    # every generated token is attended, so step t sits at the prompt's next position + t
    next_position = first_completion_position(positions, prompt_mask).repeat_interleave(n, dim=1)

    unfinished = torch.ones(input_ids.shape[0], dtype=torch.long, device=device)
    this_peer_finished = False
    step = 0
    while True:
        if not this_peer_finished:  # a finished rank under synced_gpus only keeps forwarding
            scores = processors(input_ids, logits)
            if config.do_sample:
                next_tokens = torch.multinomial(torch.softmax(scores, dim=-1),
                                                num_samples=1).squeeze(1)
            else:
                next_tokens = torch.argmax(scores, dim=-1)
            if has_eos_criterion:
                next_tokens = next_tokens * unfinished + pad_token * (1 - unfinished)
            input_ids = torch.cat([input_ids, next_tokens[:, None]], dim=-1)
            unfinished = unfinished & ~criteria(input_ids, None)
            this_peer_finished = bool(unfinished.max() == 0)
        if not hf_model._has_unfinished_sequences(this_peer_finished, synced_gpus, device):
            break
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(
            (attention_mask.shape[0], 1))], dim=-1)
        logits = model(input_ids=input_ids[:, -1:], attention_mask=attention_mask,
                       position_ids=(next_position + step)[..., None], past_key_values=cache,
                       use_cache=True).logits[:, -1].to(dtype=torch.float32)
        step += 1
    return input_ids[:, prompt_length:]
