# Copyright (c) finers_mm contributors. All rights reserved.
"""Fully sharded data parallel (torch's FSDP2, ``fully_shard``) for the VLM stages.

Why FSDP2 and not mmengine 0.10.7's ``FSDPStrategy`` (FSDP1, ``MMFullyShardedDataParallel``):

- FSDP1 wraps the whole stage in one root; the rollout calls ``stage.vlm.generate`` (Hugging Face
  ``generate`` on the inner model), which bypasses the root's forward, so the root's own flat
  parameter (embeddings, lm_head, norms, the vision merger) is never gathered. Gathering it with
  ``summon_full_params`` gathers in the full-precision dtype (fp32: 33 GB for the 7B model), and
  a partial gather leaves fp32 embeddings feeding bf16 blocks.
- FSDP2 shards module by module in place: every decoder / vision block and the Hugging Face model
  itself become units whose forward pre-hooks gather their own parameters in the mixed-precision
  dtype. ``generate`` calls the Hugging Face model, so it runs under sharding unchanged, and
  :func:`gathered_for_generation` can keep every unit gathered (bf16) for a whole rollout.
- mmengine's ``FSDPStrategy`` passes ``device_id=LOCAL_RANK`` (a CUDA device), so it cannot run
  on CPU; ``fully_shard`` runs on a CPU mesh with gloo, so the same code is tested here.

Parameters are sharded in ``master_dtype`` (float32: the optimiser steps full-precision shards, so
lr-1e-6 updates land) and gathered in ``mixed_precision.param_dtype`` (bf16 compute), gradients
reduce-scattered in ``reduce_dtype`` (float32).
"""
from contextlib import contextmanager
from typing import Iterable, Iterator, List, Optional, Sequence

import torch
from torch import nn

#: the attribute transformers' ``generate`` reads to turn ``synced_gpus`` on
#: (transformers.distributed.fsdp.is_fsdp_managed_module; set by its own FSDP2 loading too)
FSDP_MANAGED_ATTR = '_is_fsdp_managed_module'
#: where :func:`fully_shard_model` records a unit's configured ``reshard_after_forward``
RESHARD_ATTR = '_finers_reshard_after_forward'


def _fsdp():
    """torch's FSDP2 API (imported lazily: torch.distributed may be absent on some builds)."""
    from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
    return FSDPModule, MixedPrecisionPolicy, fully_shard


def parse_dtype(dtype, name: str) -> Optional[torch.dtype]:
    """A dtype from a config value (``'bfloat16'``, ``'torch.float32'``, a torch.dtype, None).

    Args:
        dtype (str | torch.dtype | None): the value.
        name (str): the config key, for the message.

    Returns:
        torch.dtype | None: the dtype.

    Raises:
        ValueError: not a floating dtype torch knows.
    """
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype).replace('torch.', ''), None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ValueError(f'{name}: {dtype!r} is not a floating torch dtype (e.g. "bfloat16", '
                         '"float32")')
    return value


def hf_models(model: nn.Module) -> List[nn.Module]:
    """The outermost Hugging Face models inside ``model`` (e.g. each VLM adapter's ``.model``).

    Args:
        model (nn.Module): a stage (or any module).

    Returns:
        list[nn.Module]: the ``transformers.PreTrainedModel`` submodules not nested in another.
    """
    from transformers import PreTrainedModel
    found: List[nn.Module] = []
    for _, module in model.named_modules():
        if isinstance(module, PreTrainedModel) and not any(
                module is sub for outer in found for sub in outer.modules()):
            found.append(module)
    return found


def block_classes(models: Iterable[nn.Module], names: Optional[Sequence[str]] = None) -> set:
    """The class names sharded one unit per instance.

    Args:
        models (Iterable[nn.Module]): the Hugging Face models.
        names (Sequence[str], optional): explicit class names; None: each model's
            ``_no_split_modules`` (transformers' blocks: for Qwen2.5-VL the decoder layer and the
            vision block).

    Returns:
        set[str]: class names.
    """
    if names is not None:
        return set(names)
    found = set()
    for model in models:
        found.update(getattr(model, '_no_split_modules', None) or [])
    return found


def fully_shard_model(model: nn.Module, mesh, mixed_precision: Optional[dict] = None,
                      master_dtype: Optional[str] = 'float32',
                      wrap_modules: Optional[Sequence[str]] = None,
                      reshard_after_forward: bool = True) -> List[nn.Module]:
    """Shard every trainable Hugging Face model of ``model`` in place with FSDP2.

    Each block (:func:`block_classes`) becomes a unit, then each Hugging Face model (its
    embeddings, head, norms and whatever else lies outside the blocks). A unit is cast to
    ``master_dtype`` just before it is sharded, so a model loaded in bf16 never exists whole in
    fp32 (the checkpoints are bf16: the cast is exact). Frozen models (every parameter
    ``requires_grad=False``, e.g. a frozen SAM) and the rest of the stage are left alone.

    Args:
        model (nn.Module): the stage.
        mesh (DeviceMesh): a 1-D mesh over the data-parallel ranks.
        mixed_precision (dict, optional): ``MixedPrecisionPolicy`` keys (``param_dtype``,
            ``reduce_dtype``, ``output_dtype``, ``cast_forward_inputs``) with dtypes as strings.
        master_dtype (str, optional): dtype of the sharded parameters; None keeps the loaded one.
        wrap_modules (Sequence[str], optional): block class names (default: ``_no_split_modules``).
        reshard_after_forward (bool): free a block's gathered weights after its forward (ZeRO-3);
            False keeps them to the backward (ZeRO-2-like, more memory).

    Returns:
        list[nn.Module]: the Hugging Face models sharded.

    Raises:
        ValueError: no trainable Hugging Face model to shard, or a bad dtype.
    """
    _, MixedPrecisionPolicy, fully_shard = _fsdp()
    options = dict(mixed_precision or {})
    for key in ('param_dtype', 'reduce_dtype', 'output_dtype'):
        if key in options:
            options[key] = parse_dtype(options[key], f'mixed_precision.{key}')
    policy = MixedPrecisionPolicy(**options)
    master = parse_dtype(master_dtype, 'master_dtype')
    targets = [m for m in hf_models(model) if any(p.requires_grad for p in m.parameters())]
    if not targets:
        raise ValueError(f'{type(model).__name__}: no trainable Hugging Face model to shard '
                         '(FullyShardStrategy shards the VLM of a stage)')
    classes = block_classes(targets, wrap_modules)
    for target in targets:
        blocks = [m for m in target.modules() if type(m).__name__ in classes]
        blocks += encoders(target)
        for block in blocks:
            if master is not None:
                block.to(dtype=master)
            fully_shard(block, mesh=mesh, mp_policy=policy,
                        reshard_after_forward=reshard_after_forward)
            setattr(block, RESHARD_ATTR, reshard_after_forward)
        if master is not None:
            target.to(dtype=master)
        # the root: FSDP2's default (None) keeps it gathered from forward to backward
        fully_shard(target, mesh=mesh, mp_policy=policy, reshard_after_forward=None)
        setattr(target, RESHARD_ATTR, False)
        # FSDP2 makes the first unit to run forward the root; transformers' generate runs the
        # vision encoder (get_image_features) before the model's forward, so the Hugging Face
        # model is made the root now (torch has no public call for it)
        target._get_fsdp_state()._lazy_init()
        # per-block gathers are collectives: every rank must keep stepping generate until all
        # are done (transformers turns synced_gpus on for a module with this attribute)
        setattr(target, FSDP_MANAGED_ATTR, True)
    return targets


def encoders(model: nn.Module) -> List[nn.Module]:
    """The nested Hugging Face models that run only through their own forward: each becomes an
    FSDP unit, so its parameters outside the blocks (a vision tower's patch embedding and merger)
    are gathered when ``generate`` calls it on its own (``get_image_features``). A nested model
    holding the input embeddings is left to the root: its parent calls the embeddings directly.

    Args:
        model (nn.Module): a Hugging Face model.

    Returns:
        list[nn.Module]: e.g. ``[model.model.visual]`` for Qwen2.5-VL.
    """
    from transformers import PreTrainedModel
    embeddings = model.get_input_embeddings() if hasattr(model, 'get_input_embeddings') else None
    return [m for m in model.modules()
            if m is not model and isinstance(m, PreTrainedModel)
            and not any(sub is embeddings for sub in m.modules())]


def fsdp_units(module: nn.Module) -> List[nn.Module]:
    """The FSDP2 units in ``module`` (itself included), outermost first."""
    FSDPModule = _fsdp()[0]
    return [m for m in module.modules() if isinstance(m, FSDPModule)]


def is_sharded(module: nn.Module) -> bool:
    """Whether ``module`` holds FSDP2-sharded parameters."""
    return bool(fsdp_units(module))


@contextmanager
def gathered_for_generation(module: nn.Module) -> Iterator[None]:
    """Keep every FSDP2 unit of ``module`` gathered for a whole rollout, then shard it again.

    Without this, each decoding step gathers every block again (one all-gather of the whole
    model per new token). Inside, the weights are whole on every rank in the mixed-precision
    dtype (bf16: 16.6 GB for the 7B model beside the shards), no forward runs a collective, so
    each rank generates on its own. Outside a sharded run (no FSDP2 unit) it does nothing.

    Args:
        module (nn.Module): e.g. a VLM adapter's Hugging Face model.

    Yields:
        None
    """
    units = fsdp_units(module)
    if not units:
        yield
        return
    root = units[0]
    managed = getattr(root, FSDP_MANAGED_ATTR, False)
    for unit in units:
        unit.set_reshard_after_forward(False, recurse=False)
    handles = [unit.unshard(async_op=True) for unit in units]
    for handle in handles:
        if handle is not None:
            handle.wait()
    # gathered: generate need not step in lockstep (ranks that finish early wait at the next
    # collective instead of running empty decoding steps)
    setattr(root, FSDP_MANAGED_ATTR, False)
    try:
        yield
    finally:
        setattr(root, FSDP_MANAGED_ATTR, managed)
        for unit in units:
            unit.set_reshard_after_forward(getattr(unit, RESHARD_ATTR, True), recurse=False)
        for unit in units:
            unit.reshard()
