# Copyright (c) finers_mm contributors. All rights reserved.
"""The names of the policy's weights as an inference engine loads them: the checkpoint's.

An inference engine (vLLM) loads a model from its checkpoint on disk, so the names its
``load_weights`` takes are the checkpoint's (vLLM maps them to its own modules with the model's
``hf_to_vllm_mapper``). Our policy names its weights as the loaded transformers model does, which
is not always the checkpoint's: transformers 5 renames Qwen2-VL / Qwen2.5-VL checkpoints
(``model.layers.*`` -> ``model.language_model.layers.*``, ``visual.*`` -> ``model.visual.*``)
when loading and reverts the renaming when saving; peft's LoRA wrap adds ``base_model.model.``
and ``.base_layer`` and LoRA's own ``lora_A`` / ``lora_B`` weights.

:func:`checkpoint_names` maps each parameter of the transformers model to its checkpoint name
with transformers' own reverse conversion (the one ``save_pretrained`` applies), so the names
are those of the checkpoint vLLM was started from. :func:`iter_engine_weights` walks the policy
(LoRA merged first, as trl does) and yields ``(checkpoint name, tensor)``.
"""
from contextlib import contextmanager
from typing import TYPE_CHECKING, Dict, Iterator, Tuple

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel

#: what peft's LoRA wrap adds to a name: a prefix, and the wrapped layer's attribute
PEFT_PREFIX = 'base_model.model.'
PEFT_BASE_LAYER = '.base_layer'
#: peft ``modules_to_save``: the trained copy's infix, and the frozen original's
PEFT_SAVED_COPY = 'modules_to_save.default.'
PEFT_ORIGINAL = 'original_module'


def base_model(model: torch.nn.Module) -> 'PreTrainedModel':
    """The transformers model under a peft wrap (the model itself without one)."""
    return model.get_base_model() if hasattr(model, 'get_base_model') else model


def checkpoint_names(model: 'PreTrainedModel') -> Dict[str, str]:
    """The checkpoint name of every parameter of a transformers model.

    Uses ``transformers.core_model_loading.revert_weight_conversion``, what ``save_pretrained``
    applies, one name at a time (renamings only: a model whose conversion merges or splits
    tensors, e.g. fused MoE experts, is refused).

    Args:
        model (transformers.PreTrainedModel): the model as loaded (the base model of a peft
            wrap: the LoRA layers peft injected are read as the layers they wrap).

    Returns:
        dict[str, str]: transformers name (``named_parameters()`` without peft's additions) ->
        checkpoint name (tied weights once).

    Raises:
        ValueError: a conversion that is not a one-to-one renaming.
    """
    from transformers.core_model_loading import revert_weight_conversion

    names = {}
    for name, _ in model.named_parameters():
        name, is_base = policy_name(name)  # LoRA injected in place: its layers' base weights
        if not is_base:
            continue
        reverted = list(revert_weight_conversion(model, {name: torch.empty(0)}))
        if len(reverted) != 1:
            raise ValueError(
                f'{type(model).__name__}: transformers converts the weight {name!r} to '
                f'{reverted} when saving, not by renaming it; syncing such a model to an '
                'inference engine is not supported (use the HFRolloutEngine).')
        names[name] = reverted[0]
    return names


def policy_name(name: str, adapter_prefix: str = 'lora_') -> Tuple[str, bool]:
    """The transformers name of a parameter of a (maybe peft-wrapped) policy.

    Args:
        name (str): a ``named_parameters()`` name of the policy.
        adapter_prefix (str): peft's tuner prefix (``PeftModel.prefix``, 'lora_' for LoRA).

    Returns:
        tuple[str, bool]: the name without peft's additions, and whether the parameter is the
        base model's (False for LoRA's own weights and the frozen originals of
        ``modules_to_save``, which an engine never receives).
    """
    if adapter_prefix in name or PEFT_ORIGINAL in name:
        return name, False
    name = name[len(PEFT_PREFIX):] if name.startswith(PEFT_PREFIX) else name
    return name.replace(PEFT_BASE_LAYER, '').replace(PEFT_SAVED_COPY, ''), True


@contextmanager
def merged_lora(model: torch.nn.Module) -> Iterator[None]:
    """LoRA merged into the base weights inside the context (nothing without peft); unmerged on
    exit, so training goes on with the adapters apart."""
    if not hasattr(model, 'merge_adapter'):
        yield
        return
    model.merge_adapter()
    try:
        yield
    finally:
        model.unmerge_adapter()


def iter_engine_weights(model: torch.nn.Module,
                        names: Dict[str, str]) -> Iterator[Tuple[str, torch.Tensor]]:
    """``(checkpoint name, tensor)`` of every base weight of the policy, LoRA merged.

    Call inside :func:`merged_lora` for a peft policy. The tensors are the parameters' own data
    (no copy): load them before the next optimiser step.

    Args:
        model (torch.nn.Module): the policy, a transformers model or its peft wrap.
        names (dict[str, str]): :func:`checkpoint_names` of its base model.

    Yields:
        tuple[str, torch.Tensor]: checkpoint name and weight.

    Raises:
        KeyError: a parameter whose name the map does not know (the map belongs to another
            model).
    """
    adapter_prefix = getattr(model, 'prefix', 'lora_')
    for name, param in model.named_parameters():
        plain, is_base = policy_name(name, adapter_prefix)
        if not is_base:
            continue
        if plain not in names:
            raise KeyError(f'the policy parameter {name!r} (as {plain!r}) has no checkpoint '
                           'name: the name map was made for another model')
        yield names[plain], param.data
