# Copyright (c) finers_mm contributors. All rights reserved.
"""The arithmetic of ``benchmarks/gpu_check.py``: pure functions of numbers, no torch, no GPU.

- the memory bandwidth of a card from its name (:data:`CARD_BANDWIDTH`);
- the HBM bound of a decode step: one step reads every weight it multiplies by (the decoder
  layers, the final norm, the lm_head; not the vision tower, and only one embedding row per
  sequence) and the keys/values of every cached position, so at best it takes
  ``bytes read / bandwidth`` seconds and yields one token per sequence;
- the extrapolation of a measured peak to the full depth with the memory plan's difference.
"""
from typing import Dict, Optional, Sequence, Tuple

#: peak memory bandwidth (bytes/s) of the cards the check knows, by substrings of
#: ``torch.cuda.get_device_name()`` (all must appear, case-insensitive); the first match wins, so
#: the more specific names come first. Vendors' datasheet figures; any other card: a measured copy
#: bandwidth (``gpu_check.py``).
CARD_BANDWIDTH: Tuple[Tuple[Tuple[str, ...], float], ...] = (
    (('H100', 'PCIe'), 2.0e12),
    (('H100', 'NVL'), 3.9e12),
    (('H100',), 3.35e12),  # SXM (HBM3)
    (('H200',), 4.8e12),
    (('A100', '80GB'), 2.0e12),
)


def card_bandwidth(name: str) -> Optional[float]:
    """The datasheet memory bandwidth of a card.

    Args:
        name (str): the device name, e.g. ``'NVIDIA H100 80GB HBM3'``.

    Returns:
        float | None: bytes per second, or None for a card not in :data:`CARD_BANDWIDTH`.
    """
    upper = name.upper()
    for parts, bandwidth in CARD_BANDWIDTH:
        if all(part.upper() in upper for part in parts):
            return bandwidth
    return None


def kv_bytes_per_token(layers: int, kv_heads: int, head_dim: int, element_bytes: int) -> int:
    """Bytes of the keys and values one token leaves in the cache, over all layers.

    Args:
        layers (int): decoder layers.
        kv_heads (int): key/value heads.
        head_dim (int): width of a head.
        element_bytes (int): bytes of one cached element (2 for bf16).

    Returns:
        int: ``2 x layers x kv_heads x head_dim x element_bytes``.
    """
    return 2 * layers * kv_heads * head_dim * element_bytes


def mean_decode_context(prompt_tokens: int, new_tokens: int) -> float:
    """The mean number of cached positions a decode step reads.

    The prefill yields the first token; decode step ``k`` (``k = 1 .. T - 1``) attends to the
    ``P + k`` positions before the token it yields, so the mean over the steps is ``P + T / 2``.

    Args:
        prompt_tokens (int): ``P``, tokens of the prompt.
        new_tokens (int): ``T``, tokens of a completion (>= 2: one decode step at least).

    Returns:
        float: ``P + T / 2``.
    """
    if new_tokens < 2:
        raise ValueError(f'a decode needs at least 2 new tokens (the prefill yields the first), '
                         f'got {new_tokens}')
    return prompt_tokens + new_tokens / 2


def decode_bytes_per_step(weight_bytes: float, kv_per_token: float, sequences: int,
                          context: float) -> float:
    """Bytes one decode step reads from memory.

    Args:
        weight_bytes (float): the weights one step multiplies by (see the module docstring).
        kv_per_token (float): cache bytes of one position (:func:`kv_bytes_per_token`).
        sequences (int): sequences decoded together (a group of n samples, times the prompts).
        context (float): cached positions per sequence.

    Returns:
        float: ``weight_bytes + sequences x context x kv_per_token``.
    """
    return weight_bytes + sequences * context * kv_per_token


def hbm_bound_tokens_per_s(weight_bytes: float, kv_per_token: float, sequences: int,
                           prompt_tokens: int, new_tokens: int, bandwidth: float) -> float:
    """The most tokens per second a decode can yield when reading memory is all it does.

    Args:
        weight_bytes (float): the weights one step reads.
        kv_per_token (float): cache bytes of one position.
        sequences (int): sequences decoded together; each step yields one token per sequence.
        prompt_tokens (int): tokens of each prompt.
        new_tokens (int): tokens of each completion.
        bandwidth (float): memory bandwidth, bytes per second.

    Returns:
        float: ``sequences x bandwidth / bytes per step`` at the mean context
        (:func:`mean_decode_context`).
    """
    if bandwidth <= 0 or sequences < 1:
        raise ValueError(f'need bandwidth > 0 and sequences >= 1, got {bandwidth} and '
                         f'{sequences}')
    step = decode_bytes_per_step(weight_bytes, kv_per_token, sequences,
                                 mean_decode_context(prompt_tokens, new_tokens))
    return sequences * bandwidth / step


def decode_weight_bytes(named_sizes: Sequence[Tuple[str, int]], sequences: int,
                        hidden: int, element_bytes: int) -> int:
    """The weight bytes one decode step reads, from the model's parameters.

    Args:
        named_sizes (Sequence[tuple[str, int]]): ``(parameter name, bytes)`` of every parameter
            of the model (a tied lm_head listed once, as ``named_parameters`` lists it).
        sequences (int): sequences decoded together (each reads one embedding row).
        hidden (int): width of an embedding row.
        element_bytes (int): bytes of an embedding element.

    Returns:
        int: every parameter outside the vision tower and the token embeddings, plus one
        embedding row per sequence.
    """
    read = sum(size for name, size in named_sizes
               if 'visual' not in name.split('.') and 'embed_tokens' not in name.split('.'))
    return read + sequences * hidden * element_bytes


def extrapolate_to_depth(measured: float, plan_reduced: float, plan_full: float) -> float:
    """A measurement at reduced depth carried to the full depth by the memory plan's difference.

    What the plan gets wrong at the reduced depth (allocator rounding, workspaces, temporaries it
    does not model) it gets about as wrong at the full depth; what changes with the depth (weights,
    gradients, optimiser states, checkpointed activations, KV cache) the plan counts exactly.

    Args:
        measured (float): the quantity measured at the reduced depth (bytes).
        plan_reduced (float): the plan's value at the reduced depth.
        plan_full (float): the plan's value at the full depth.

    Returns:
        float: ``measured + plan_full - plan_reduced``.
    """
    return measured + plan_full - plan_reduced


def fraction(part: Optional[float], whole: Optional[float]) -> Optional[float]:
    """``part / whole``, or None when either is missing or ``whole`` is 0."""
    if part is None or not whole:
        return None
    return part / whole


def sum_present(values: Sequence[Optional[float]]) -> Optional[float]:
    """The sum of the values that are not None; None when all are."""
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def max_present(values: Sequence[Optional[float]]) -> Optional[float]:
    """The largest of the values that are not None; None when all are."""
    present = [v for v in values if v is not None]
    return max(present) if present else None


def gb(value: Optional[float]) -> Optional[float]:
    """Bytes in GB (1e9, as the memory plan prints), rounded to 3 decimals; None stays None."""
    return None if value is None else round(value / 1e9, 3)


def phase_totals(phases: Dict[str, Dict[str, Optional[float]]],
                 names: Sequence[str]) -> Dict[str, Optional[float]]:
    """The seconds and the peak of some phases of one iteration taken together.

    Args:
        phases (dict): phase name -> ``seconds`` and ``peak_bytes`` (None off a GPU).
        names (Sequence[str]): the phases to take (absent ones are skipped).

    Returns:
        dict: ``seconds`` (sum) and ``peak_bytes`` (max, None off a GPU).
    """
    taken = [phases[name] for name in names if name in phases]
    return dict(seconds=sum_present([p['seconds'] for p in taken]),
                peak_bytes=max_present([p['peak_bytes'] for p in taken]))
