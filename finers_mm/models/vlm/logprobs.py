# Copyright (c) finers_mm contributors. All rights reserved.
"""Per-token log-probs (and entropies) of given completions after their prompts, in one forward."""
from typing import TYPE_CHECKING, Dict, Tuple, Union

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def completion_token_logprobs(model: 'PreTrainedModel', prompt_inputs: Dict[str, torch.Tensor],
                              completion_ids: torch.Tensor, completion_mask: torch.Tensor,
                              temperature: float = 1.0, return_entropy: bool = False
                              ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Log-probs of ``completion_ids`` appended to their prompts, under ``model``.

    Only the logits of the completion positions are computed (``logits_to_keep``). Gradients flow,
    through the entropies too.

    Args:
        model (transformers.PreTrainedModel): an image-text-to-text model.
        prompt_inputs (dict[str, torch.Tensor]): the N prompts, ONE ROW PER COMPLETION (repeated
            already), on the model's device: left-padded ``input_ids`` / ``attention_mask``
            (N, P), the image tensors and, where the processor gives it, ``mm_token_type_ids``
            (N, P). Not modified.
        completion_ids (torch.Tensor): (N, T) completion tokens, on the model's device.
        completion_mask (torch.Tensor): (N, T) 1 on the completions' tokens, same device.
        temperature (float): divides the logits (the sampling temperature).
        return_entropy (bool): also return each step's next-token entropy (of the tempered
            logits, from the same float32 logits by trl's ``selective_log_softmax_and_entropy``).

    Returns:
        torch.Tensor | tuple[torch.Tensor, torch.Tensor]: (N, T) float32 log-probs, 0 where
        ``completion_mask`` is 0; with ``return_entropy`` also the (N, T) float32 entropies in
        nats, 0 where ``completion_mask`` is 0.
    """
    inputs = dict(prompt_inputs)
    length = completion_ids.shape[1]
    inputs['input_ids'] = torch.cat([inputs['input_ids'], completion_ids], dim=1)
    inputs['attention_mask'] = torch.cat(
        [inputs['attention_mask'], completion_mask.to(inputs['attention_mask'].dtype)], dim=1)
    if 'mm_token_type_ids' in inputs:  # completions are text
        types = inputs['mm_token_type_ids']
        inputs['mm_token_type_ids'] = torch.cat([types, types.new_zeros(completion_ids.shape)],
                                                dim=1)
    logits = model(**inputs, use_cache=False, logits_to_keep=length + 1).logits
    return completion_logprobs_from_logits(logits[:, :-1], completion_ids, completion_mask,
                                           temperature, return_entropy)


def completion_logprobs_from_logits(logits: torch.Tensor, completion_ids: torch.Tensor,
                                    completion_mask: torch.Tensor, temperature: float = 1.0,
                                    return_entropy: bool = False
                                    ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Masked log-probs (and entropies) of the completion tokens from the logits predicting them.

    Args:
        logits (torch.Tensor): (N, T, V) logits, row t predicting ``completion_ids[:, t]``.
        completion_ids (torch.Tensor): (N, T) completion tokens.
        completion_mask (torch.Tensor): (N, T) 1 on the completions' tokens.
        temperature (float): divides the logits.
        return_entropy (bool): also return the entropies (trl's
            ``selective_log_softmax_and_entropy``).

    Returns:
        torch.Tensor | tuple[torch.Tensor, torch.Tensor]: (N, T) float32 log-probs, 0 where
        ``completion_mask`` is 0; with ``return_entropy`` also the (N, T) float32 entropies.
    """
    from trl.trainer.utils import selective_log_softmax, selective_log_softmax_and_entropy
    logits = logits.float()
    mask = completion_mask.to(torch.float32)
    if not return_entropy:
        return selective_log_softmax(logits, completion_ids, temperature) * mask
    logprobs, entropies = selective_log_softmax_and_entropy(logits, completion_ids,
                                                            temperature=temperature)
    return logprobs * mask, entropies * mask
