# Copyright (c) finers_mm contributors. All rights reserved.
"""What generation gives and how a call's settings are made: the generation result, the
completion mask after the first end-of-sequence token, and the per-call generation config."""
import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Optional, Sequence

import torch

if TYPE_CHECKING:
    from transformers import BatchFeature, GenerationConfig

#: generation settings of a config; every other ``GenerationConfig`` field may be added too
DEFAULT_GENERATION = dict(max_new_tokens=1024, do_sample=False, temperature=1.0, top_p=1.0,
                          top_k=0, num_return_sequences=1)
#: settings that only apply when sampling (dropped for greedy decoding)
SAMPLING_KEYS = ('temperature', 'top_p', 'top_k')


@dataclass
class GenerationResult:
    """Completions of a batch of prompts, ``n = num_return_sequences`` per prompt, prompt-major.

    Row ``i * n + j`` is sample ``j`` of prompt ``i``.

    Attributes:
        texts (list[str]): (B*n) decoded completions, special tokens skipped.
        completion_ids (torch.LongTensor): (B*n, T) completion token ids (the prompt excluded),
            right-padded with the pad id after the first end-of-sequence token (kept).
        completion_mask (torch.LongTensor): (B*n, T) 1 for the completion's tokens up to and
            including its first end-of-sequence token, 0 for padding.
        prompt_inputs (transformers.BatchFeature): the B prompts as fed to the model (left-padded
            ``input_ids``/``attention_mask`` (B, P), ``pixel_values``, ``image_grid_thw`` ...),
            for :meth:`~finers_mm.models.vlm.BaseVLMAdapter.completion_logprobs`.
        num_return_sequences (int): n.
        mean_logprobs (torch.Tensor, optional): (B*n,) float32 mean per-token log-prob of each
            completion under the model (temperature 1, the completion's masked tokens, eos
            included): the completion's confidence score. Only with ``generate(...,
            with_scores=True)``, else None.
    """
    texts: List[str]
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    prompt_inputs: 'BatchFeature'
    num_return_sequences: int
    mean_logprobs: Optional[torch.Tensor] = None


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-row mean of ``values`` (N, T) over ``mask`` (N, T) (a row without tokens gives 0).

    Args:
        values (torch.Tensor): (N, T) e.g. per-token log-probs.
        mask (torch.Tensor): (N, T) 1 on the tokens to average.

    Returns:
        torch.Tensor: (N,) float32.
    """
    mask = mask.to(torch.float32)
    return (values.to(torch.float32) * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def completion_mask_after_eos(completion_ids: torch.Tensor,
                              eos_token_ids: Sequence[int]) -> torch.Tensor:
    """Mask of the tokens up to and including each row's first end-of-sequence token.

    Args:
        completion_ids (torch.Tensor): (N, T) token ids.
        eos_token_ids (Sequence[int]): ids that end a completion.

    Returns:
        torch.LongTensor: (N, T) 1 up to and including the first eos (everywhere if none), else 0.
    """
    is_eos = torch.isin(completion_ids, torch.as_tensor(list(eos_token_ids),
                                                        device=completion_ids.device)).long()
    eos_before = is_eos.cumsum(dim=1) - is_eos
    return (eos_before == 0).long()


def build_generation_config(model_config: 'GenerationConfig', settings: dict,
                            owner: str) -> 'GenerationConfig':
    """The generation config of one call: the model's token ids with ``settings`` over them.

    Args:
        model_config (transformers.GenerationConfig): the loaded model's config (token ids
            only, see :mod:`.loading`); not modified.
        settings (dict): ``GenerationConfig`` fields of the call (the adapter's ``generation``
            with the call's overrides).
        owner (str): the adapter's class name, for the message.

    Returns:
        transformers.GenerationConfig: Validated; sampling-only fields dropped when greedy.

    Raises:
        ValueError: a setting that is no ``GenerationConfig`` field.
    """
    settings = dict(settings)
    if not settings.get('do_sample'):
        for key in SAMPLING_KEYS:
            settings.pop(key, None)
    config = copy.deepcopy(model_config)
    unknown = config.update(**settings)
    if unknown:
        raise ValueError(f'{owner}: unknown generation settings {sorted(unknown)}')
    config.validate(strict=True)
    return config
