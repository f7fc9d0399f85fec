# Copyright (c) finers_mm contributors. All rights reserved.
"""Each component of the per-GPU memory plan, and :func:`plan_memory` which adds them up.

The formulas are listed in :mod:`finers_mm.apis.memory_plan`; every function is pure arithmetic
of counts and settings, in bytes.
"""
from typing import Dict, List, Optional

from .memory_plan import (BUFFERS, GB, LAYER_SAVED_HIDDEN, LAYER_SAVED_INTERMEDIATE,
                          MODEL_STATES, ROLLOUT, TRAINING, Architecture, Component, MemoryPlan,
                          ParamCounts, Workload, cast_counts, counts_bytes, dtype_bytes)
from .memory_strategies import Sharding


def _billions(count: int) -> str:
    if count >= 1e9:
        return f'{count / 1e9:.3g}e9'
    return f'{count / 1e6:.3g}e6' if count >= 1e5 else f'{count:,}'


def _per(shards: int) -> str:
    return f' / {shards}' if shards > 1 else ''


def _dtypes(by_dtype: Dict[str, int]) -> str:
    return ' + '.join(f'{_billions(n)} x {dtype_bytes(d)} B ({d})' for d, n in by_dtype.items()
                      if n) or '0'


def weights_component(weights: Dict[str, int], sharding: Sharding) -> Component:
    """The policy's weights.

    Args:
        weights (dict[str, int]): all parameters by the dtype they are held in.
        sharding (Sharding): the strategy.

    Returns:
        Component: the row.
    """
    if sharding.offload_params:
        return Component('weights', MODEL_STATES, 0, 'offloaded to CPU (offload_param)')
    shards = sharding.shards(sharding.weights)
    return Component('weights', MODEL_STATES, counts_bytes(weights) // shards,
                     _dtypes(weights) + _per(shards))


def gradients_component(trainable: Dict[str, int], sharding: Sharding) -> Component:
    """The gradients of the trainable parameters (in their dtype, as torch keeps them).

    Args:
        trainable (dict[str, int]): trainable parameters by the dtype they are held in.
        sharding (Sharding): the strategy.

    Returns:
        Component: the row.
    """
    shards = sharding.shards(sharding.gradients)
    size = counts_bytes(trainable) // shards
    how = _dtypes(trainable) + _per(shards)
    if sharding.master_grad_partition:
        # the mixed-precision optimiser steps a master-dtype copy of the rank's gradient partition
        total, b = sum(trainable.values()), dtype_bytes(sharding.master_dtype)
        partition = sharding.shards(sharding.optimizer)  # as the master weights it updates
        size += total * b // partition
        how += f' + {sharding.master_dtype} partition {_billions(total)} x {b} B{_per(partition)}'
    return Component('gradients', MODEL_STATES, size, how)


def optimizer_component(trainable: Dict[str, int], state_bytes: Dict[str, int], name: str,
                        sharding: Sharding) -> Component:
    """The optimiser states.

    Args:
        trainable (dict[str, int]): trainable parameters by the dtype the optimiser steps
            (float32 under master weights).
        state_bytes (dict[str, int]): state bytes per parameter of each of those dtypes.
        name (str): the optimiser's name, for the row.
        sharding (Sharding): the strategy.

    Returns:
        Component: the row.
    """
    label = f'optimiser states ({name})'
    if sharding.offload_optimizer:
        return Component(label, MODEL_STATES, 0, 'offloaded to CPU (offload_optimizer)')
    shards = sharding.shards(sharding.optimizer)
    size = sum(n * state_bytes[d] for d, n in trainable.items()) // shards
    how = ' + '.join(f'{_billions(n)} x {state_bytes[d]} B' for d, n in trainable.items() if n)
    return Component(label, MODEL_STATES, size, (how or '0') + _per(shards))


def master_component(num_trainable: int, sharding: Sharding) -> Optional[Component]:
    """Master weights (DeepSpeed's mixed precision), or None without them.

    Args:
        num_trainable (int): trainable parameters.
        sharding (Sharding): the strategy.

    Returns:
        Component | None: the row.
    """
    if not sharding.master_weights:
        return None
    name = f'master weights ({sharding.master_dtype})'
    if sharding.offload_optimizer:
        return Component(name, MODEL_STATES, 0, 'offloaded to CPU (offload_optimizer)')
    shards, b = sharding.shards(sharding.optimizer), dtype_bytes(sharding.master_dtype)
    return Component(name, MODEL_STATES, num_trainable * b // shards,
                     f'{_billions(num_trainable)} x {b} B{_per(shards)}')


def reference_component(counts: ParamCounts, reference: Dict[str, int], workload: Workload
                        ) -> Component:
    """The frozen KL reference policy.

    Args:
        counts (ParamCounts): the parameters (``adapters`` > 0: LoRA).
        reference (dict[str, int]): the parameters of a frozen copy by the dtype it holds them
            in (the adapter's dtype: a strategy's cast applies to the policy only).
        workload (Workload): whether the loss uses a reference.

    Returns:
        Component: the row (0 without a KL term, or with LoRA).
    """
    name = 'KL reference policy'
    if not workload.uses_reference:
        return Component(name, MODEL_STATES, 0, 'none (no KL term)')
    if counts.adapters:
        return Component(name, MODEL_STATES, 0, 'none: the base with its LoRA adapters off')
    return Component(name, MODEL_STATES, counts_bytes(reference),
                     f'a frozen full copy: {_dtypes(reference)}, replicated')


def layer_saved_values(hidden: int, intermediate: int) -> int:
    """Values per token one decoder layer keeps for its backward (approximate, see
    :data:`LAYER_SAVED_HIDDEN`)."""
    return LAYER_SAVED_HIDDEN * hidden + LAYER_SAVED_INTERMEDIATE * intermediate


def activation_components(arch: Architecture, workload: Workload, vision_trains: bool
                          ) -> List[Component]:
    """Activations kept for the backward of the loss forward.

    With gradient checkpointing, each layer's input is kept (``sequences x tokens x hidden x b``
    per layer) and one layer's full activations exist again while its backward recomputes it.
    Without it, every layer keeps all its saved tensors.

    Args:
        arch (Architecture): the model's sizes.
        workload (Workload): the iteration.
        vision_trains (bool): the vision tower has trainable parameters (a frozen tower under
            a frozen input keeps nothing for the backward).

    Returns:
        list[Component]: the language model's activations, the vision tower's, and (with
        checkpointing) the recomputed layer.
    """
    b = dtype_bytes(workload.compute_dtype)
    rows = []
    seq, tokens = workload.sequences, workload.tokens
    images, patches = workload.image_copies, workload.image_patches
    if workload.gradient_checkpointing:
        rows.append(Component(
            'activations (checkpointed layer inputs)', TRAINING,
            seq * tokens * arch.hidden * b * arch.layers,
            f'{seq} seq x {tokens} tok x {arch.hidden} x {b} B x {arch.layers} layers'))
        if vision_trains and images and patches:
            rows.append(Component(
                'activations, vision tower', TRAINING,
                images * patches * arch.vision_hidden * b * arch.vision_depth,
                f'{images} images x {patches} patches x {arch.vision_hidden} x {b} B x '
                f'{arch.vision_depth} blocks'))
        per_layer = layer_saved_values(arch.hidden, arch.intermediate)
        recompute = seq * tokens * per_layer * b
        how = f'{seq} seq x {tokens} tok x {per_layer} values x {b} B'
        if vision_trains and images and patches:
            vision = images * patches * layer_saved_values(arch.vision_hidden,
                                                           arch.vision_intermediate) * b
            if vision > recompute:
                recompute, how = vision, f'a vision block: {images} x {patches} patches x ' \
                    f'{layer_saved_values(arch.vision_hidden, arch.vision_intermediate)} x {b} B'
        rows.append(Component('one layer recomputed (backward)', TRAINING, recompute, how))
        return rows
    per_layer = layer_saved_values(arch.hidden, arch.intermediate)
    rows.append(Component(
        'activations (no checkpointing, approx.)', TRAINING,
        seq * tokens * per_layer * b * arch.layers,
        f'{seq} seq x {tokens} tok x {per_layer} values x {b} B x {arch.layers} layers'))
    if vision_trains and images and patches:
        vision = layer_saved_values(arch.vision_hidden, arch.vision_intermediate)
        rows.append(Component(
            'activations, vision tower (approx.)', TRAINING,
            images * patches * vision * b * arch.vision_depth,
            f'{images} images x {patches} patches x {vision} values x {b} B x '
            f'{arch.vision_depth} blocks'))
    return rows


def logits_component(arch: Architecture, workload: Workload) -> Component:
    """The float32 logits of the completion positions, for the log-softmax.

    Args:
        arch (Architecture): the vocabulary.
        workload (Workload): sequences and completion length.

    Returns:
        Component: the row.
    """
    seq, new = workload.sequences, workload.new_tokens
    return Component('logits (float32, completions)', TRAINING, seq * new * arch.vocab * 4,
                     f'{seq} seq x {new} tok x {arch.vocab} vocab x 4 B')


def kv_cache_component(arch: Architecture, workload: Workload) -> Optional[Component]:
    """The rollout's KV cache: the group's n sequences of prompt + new tokens, or None without
    a rollout.

    Args:
        arch (Architecture): layers, KV heads, head width.
        workload (Workload): sequences, tokens, dtype.

    Returns:
        Component | None: the row.
    """
    if not workload.rollout:
        return None
    b = dtype_bytes(workload.compute_dtype)
    seq, tokens = workload.sequences, workload.tokens
    return Component(
        'rollout KV cache', ROLLOUT,
        2 * arch.layers * arch.kv_heads * arch.head_dim * tokens * seq * b,
        f'2 x {arch.layers} layers x {arch.kv_heads} kv heads x {arch.head_dim} x {tokens} tok '
        f'x {seq} seq x {b} B')


def rollout_gather_component(counts: ParamCounts, arch: Architecture, workload: Workload,
                             sharding: Sharding) -> Optional[Component]:
    """The weights gathered whole for the rollout's generate (FSDP2, FullyShardStrategy), or None.

    Args:
        counts (ParamCounts): the parameters.
        arch (Architecture): unused (the signature of the other rows).
        workload (Workload): the rollout and its compute dtype.
        sharding (Sharding): the strategy.

    Returns:
        Component | None: the row.
    """
    if not (workload.rollout and sharding.rollout_gather and sharding.world_size > 1):
        return None
    total = counts.total
    b = dtype_bytes(workload.compute_dtype)
    return Component('weights gathered for the rollout', ROLLOUT, total * b,
                     f'{_billions(total)} x {b} B, whole on every GPU while it generates')


def plan_memory(counts: ParamCounts, arch: Architecture, workload: Workload, sharding: Sharding,
                weights: Dict[str, int], trainable: Dict[str, int],
                optimizer_name: str, state_bytes: Dict[str, int],
                reference: Optional[Dict[str, int]] = None,
                gpu_memory: float = 80 * GB) -> MemoryPlan:
    """The per-GPU budget of a training run.

    Args:
        counts (ParamCounts): the parameters.
        arch (Architecture): the model's sizes.
        workload (Workload): one iteration on one GPU.
        sharding (Sharding): the strategy.
        weights (dict[str, int]): all parameters by the dtype they are held in (after any cast
            of the strategy).
        trainable (dict[str, int]): trainable parameters by the dtype they are held in.
        optimizer_name (str): the optimiser, for the row's name.
        state_bytes (dict[str, int]): optimiser state bytes per parameter of each dtype the
            optimiser steps (float32 under master weights, else the dtypes of ``trainable``).
        reference (dict[str, int], optional): the frozen reference copy's parameters by dtype.
            Defaults to ``weights``.
        gpu_memory (float): memory of one GPU, bytes.

    Returns:
        MemoryPlan: every component, the totals, whether it fits.
    """
    stepped = cast_counts(trainable, sharding.master_dtype) if sharding.master_weights \
        else trainable
    rows = [weights_component(weights, sharding),
            gradients_component(trainable, sharding),
            optimizer_component(stepped, state_bytes, optimizer_name, sharding),
            master_component(sum(trainable.values()), sharding),
            reference_component(counts, weights if reference is None else reference, workload)]
    rows += activation_components(arch, workload, counts.vision_trains)
    rows += [logits_component(arch, workload), kv_cache_component(arch, workload),
             rollout_gather_component(counts, arch, workload, sharding),
             Component('communication buffers', BUFFERS, sharding.buffer_bytes,
                       sharding.buffer_how)]
    notes = [
        'GB = 1e9 bytes. Peak = model states + buffers + max(training step, rollout): the '
        "rollout's KV cache is freed before the loss forward.",
        "Not counted: the CUDA context and allocator fragmentation (~1-3 GB), the model's own "
        'low-precision logits and their gradient beside the float32 copy, image tensors.']
    return MemoryPlan([row for row in rows if row is not None], gpu_memory, notes)
