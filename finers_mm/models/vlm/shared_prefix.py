# Copyright (c) finers_mm contributors. All rights reserved.
"""Log-probs of a GRPO group's n completions with their prompt computed ONCE (a shared KV prefix).

:func:`~.logprobs.completion_token_logprobs` takes one row per completion: the n completions of a
prompt each carry a copy of the prompt (and its image through the vision tower), so a group's
prompt runs n times. Here each of the B distinct prompts runs once (with its image), its keys and
values are recorded, repeated n times along the batch, and the B*n completions run against them.
The prompt's forward keeps its graph: gradients of the completions' log-probs flow back through
the shared keys/values into the prompt's tokens and image (``repeat_interleave`` sums them).

Equal to the unshared forward (same positions, same mask, same logits up to float summation
order), also under gradient checkpointing: the caches below never change once written, so the
checkpointed layers may keep them (``_can_checkpoint_with_cache``) and replay identically.
"""
from contextlib import contextmanager
from typing import TYPE_CHECKING, Dict, Iterator, List, Tuple, Union

import torch

from .logprobs import completion_logprobs_from_logits

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def _cache_classes():
    """The two read-once cache layers (built lazily: transformers is imported only when used)."""
    from transformers.cache_utils import DynamicLayer

    class RecordingLayer(DynamicLayer):
        """Keeps the first keys/values it sees and hands every update back unchanged, so the
        prompt's forward attends exactly as without a cache; reports length 0 (nothing past)."""

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:  # a checkpoint replay must not overwrite the original
                self.dtype, self.device = key_states.dtype, key_states.device
                self.keys, self.values = key_states, value_states
                self.is_initialized = True
            return key_states, value_states

        def get_seq_length(self) -> int:
            return 0

        def get_mask_sizes(self, query_length: int) -> Tuple[int, int]:
            return query_length, 0

    class PrefixLayer(DynamicLayer):
        """A fixed prefix (B*n, heads, P, d) that every update is appended to WITHOUT storing,
        so a checkpoint replay of the completions' forward sees the same prefix."""

        def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
            super().__init__()
            self.dtype, self.device = keys.dtype, keys.device
            self.keys, self.values = keys, values
            self.is_initialized = True

        def update(self, key_states, value_states, *args, **kwargs):
            return (torch.cat([self.keys, key_states], dim=-2),
                    torch.cat([self.values, value_states], dim=-2))

    return RecordingLayer, PrefixLayer


@contextmanager
def _checkpoint_keeps_cache(model: torch.nn.Module) -> Iterator[None]:
    """Let gradient-checkpointed layers keep ``past_key_values`` inside the context.

    transformers drops the cache in checkpointed training layers because a cache that appends
    would be appended twice by the backward replay; ours never changes once written.
    """
    layers = [m for m in model.modules() if hasattr(type(m), '_can_checkpoint_with_cache')]
    for layer in layers:
        layer._can_checkpoint_with_cache = True
    try:
        yield
    finally:
        for layer in layers:
            del layer._can_checkpoint_with_cache  # back to the class attribute


def rope_module(model: torch.nn.Module) -> torch.nn.Module:
    """The module computing the multimodal rope positions (``get_rope_index``), through peft."""
    for module in model.modules():
        if hasattr(module, 'get_rope_index'):
            return module
    raise TypeError(f'{type(model).__name__} has no get_rope_index: sharing a prompt between '
                    'its completions needs a Qwen-VL style model (multimodal rope)')


def prompt_rope_positions(model: torch.nn.Module,
                          prompt_inputs: Dict[str, torch.Tensor]) -> torch.Tensor:
    """Rope positions of the prompts as the model's own ``get_rope_index`` numbers them.

    Args:
        model (torch.nn.Module): a Qwen-VL model (or its peft wrapper).
        prompt_inputs (dict[str, torch.Tensor]): ``input_ids`` / ``attention_mask`` (B, P),
            ``mm_token_type_ids`` and ``image_grid_thw`` (B, 3) (``video_grid_thw`` if any).

    Returns:
        torch.Tensor: (3, B, P) long positions (temporal, height, width).
    """
    rope_args = {key: prompt_inputs[key] for key in
                 ('mm_token_type_ids', 'image_grid_thw', 'video_grid_thw') if key in prompt_inputs}
    positions, _ = rope_module(model).get_rope_index(
        prompt_inputs['input_ids'], attention_mask=prompt_inputs['attention_mask'], **rope_args)
    return positions


def first_completion_position(prompt_positions: torch.Tensor,
                              prompt_mask: torch.Tensor) -> torch.Tensor:
    """Rope position of the first token after each prompt: its largest attended position + 1.

    Args:
        prompt_positions (torch.Tensor): (3, B, P) positions of the prompts (``get_rope_index``).
        prompt_mask (torch.Tensor): (B, P) attention mask of the prompts.

    Returns:
        torch.Tensor: (3, B) long.
    """
    return prompt_positions.masked_fill(prompt_mask[None] == 0, -1).amax(dim=-1) + 1


def completion_positions(prompt_positions: torch.Tensor, prompt_mask: torch.Tensor,
                         completion_mask: torch.Tensor, n: int) -> torch.Tensor:
    """Rope positions of the completions, as the unshared forward computes them.

    The model numbers the ATTENDED tokens of a row in order (text: +1 per token, on all three
    rope axes) and gives masked tokens position 0; completions are text after the prompt, so
    their attended tokens continue from the prompt's largest position + 1.

    Args:
        prompt_positions (torch.Tensor): (3, B, P) positions of the prompts (``get_rope_index``).
        prompt_mask (torch.Tensor): (B, P) attention mask of the prompts.
        completion_mask (torch.Tensor): (B*n, T) 1 on the completions' tokens, prompt-major.
        n (int): completions per prompt.

    Returns:
        torch.Tensor: (3, B*n, T) long positions.
    """
    start = first_completion_position(prompt_positions, prompt_mask).repeat_interleave(n, dim=1)
    attended = completion_mask.long()
    steps = (attended.cumsum(dim=-1) - 1).clamp(min=0)
    return ((start[..., None] + steps[None]) * attended[None]).long()


def shared_prompt_logprobs(model: 'PreTrainedModel', prompt_inputs: Dict[str, torch.Tensor],
                           completion_ids: torch.Tensor, completion_mask: torch.Tensor,
                           temperature: float = 1.0, return_entropy: bool = False
                           ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Log-probs of n completions per prompt, each prompt (and its image) forwarded ONCE.

    Same result as :func:`~.logprobs.completion_token_logprobs` on the prompts repeated n times.

    Args:
        model (transformers.PreTrainedModel): a Qwen-VL image-text-to-text model (or its peft
            wrapper).
        prompt_inputs (dict[str, torch.Tensor]): the B DISTINCT prompts on the model's device:
            left-padded ``input_ids`` / ``attention_mask`` (B, P), ``pixel_values``,
            ``image_grid_thw`` (B, 3) and ``mm_token_type_ids`` (B, P). Not modified.
        completion_ids (torch.Tensor): (B*n, T) completion tokens, prompt-major (prompt i's at
            rows ``i * n .. i * n + n - 1``).
        completion_mask (torch.Tensor): (B*n, T) 1 on the completions' tokens.
        temperature (float): divides the logits.
        return_entropy (bool): also return each step's next-token entropy.

    Returns:
        torch.Tensor | tuple[torch.Tensor, torch.Tensor]: (B*n, T) float32 log-probs, 0 off the
        mask; with ``return_entropy`` also the (B*n, T) float32 entropies, 0 off the mask.
    """
    recording_layer, prefix_layer = _cache_classes()
    from transformers.cache_utils import Cache
    prompt_ids, prompt_mask = prompt_inputs['input_ids'], prompt_inputs['attention_mask']
    num_prompts, length = prompt_ids.shape[0], completion_ids.shape[1]
    n = completion_ids.shape[0] // num_prompts
    positions = prompt_rope_positions(model, prompt_inputs)
    recorded = Cache(layer_class_to_replicate=recording_layer)
    with _checkpoint_keeps_cache(model):
        # The prompt's last position predicts the first completion token: keep only its logits.
        first = model(**prompt_inputs, position_ids=positions, past_key_values=recorded,
                      use_cache=True, logits_to_keep=1).logits
        layers: List = [prefix_layer(layer.keys.repeat_interleave(n, dim=0),
                                     layer.values.repeat_interleave(n, dim=0))
                        for layer in recorded.layers]
        mask = torch.cat([prompt_mask.repeat_interleave(n, dim=0),
                          completion_mask.to(prompt_mask.dtype)], dim=1)
        rest = model(input_ids=completion_ids, attention_mask=mask,
                     position_ids=completion_positions(positions, prompt_mask, completion_mask, n),
                     past_key_values=Cache(layers=layers), use_cache=True,
                     logits_to_keep=length).logits
    # Token t of a completion is predicted by the position before it: the prompt's last
    # position for t = 0, completion token t - 1 after that (its last logits predict nothing).
    logits = torch.cat([first.repeat_interleave(n, dim=0), rest[:, :-1]], dim=1)
    return completion_logprobs_from_logits(logits, completion_ids, completion_mask, temperature,
                                           return_entropy)
