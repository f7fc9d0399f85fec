# Copyright (c) finers_mm contributors. All rights reserved.
"""FullyShardStrategy: mmengine's FlexibleRunner with torch's FSDP2 (``fully_shard``).

Why not mmengine's ``FSDPStrategy``: see :mod:`finers_mm.models.vlm.sharding`. Checkpoints are
mmengine's usual single file, written by rank 0: the FULL model state dict (the same keys as an
unsharded or DDP run, so ``load_from``, ``tools/misc/export_stage.py`` and ``tools/test.py`` read
it unchanged) and the full optimiser state keyed by parameter name (torch's
``torch.distributed.checkpoint.state_dict``).
"""
import os.path as osp
import re
from typing import Callable, List, Optional, Sequence, Union

import torch
from mmengine.device import get_device
from mmengine.dist import get_world_size, is_main_process
from mmengine.model import BaseDataPreprocessor
from mmengine.optim import BaseOptimWrapper
from mmengine._strategy import DDPStrategy
from torch import nn

from finers_mm.models.vlm.sharding import fsdp_units, fully_shard_model
from finers_mm.registry import STRATEGIES

#: bf16 compute, float32 gradient reduction (the sharded parameters are ``master_dtype``)
DEFAULT_MIXED_PRECISION = dict(param_dtype='bfloat16', reduce_dtype='float32')


def _state_dict_options(**kwargs):
    from torch.distributed.checkpoint.state_dict import StateDictOptions
    return StateDictOptions(**kwargs)


@STRATEGIES.register_module()
class FullyShardStrategy(DDPStrategy):
    """Shard the stage's VLM with FSDP2 over every rank (ZeRO-3: weights, gradients and optimiser
    states), full-precision shards stepped by the optimiser, bf16 compute.

    The model is not wrapped: ``runner.model`` stays the stage (``is_model_wrapper`` is False), so
    hooks reach it directly; the sharded modules gather themselves in their forward, and the
    rollout's ``generate`` runs under sharding (``GRPOHook`` keeps the weights gathered for it,
    :func:`~finers_mm.models.vlm.sharding.gathered_for_generation`).

    Args:
        mixed_precision (dict, optional): FSDP2 ``MixedPrecisionPolicy`` keys, dtypes as strings.
            Defaults to :data:`DEFAULT_MIXED_PRECISION`.
        master_dtype (str, optional): dtype of the sharded parameters the optimiser steps
            ('float32'); None keeps the dtype the adapter loaded.
        wrap_modules (Sequence[str], optional): class names sharded one unit per instance;
            default: the model's ``_no_split_modules`` (decoder layers and vision blocks).
        reshard_after_forward (bool): free each block's gathered weights after its forward.
        **kwargs: :class:`mmengine._strategy.DDPStrategy`'s (``work_dir``, ``env_kwargs``, ...).
    """

    def __init__(self, *, mixed_precision: Optional[dict] = None,
                 master_dtype: Optional[str] = 'float32',
                 wrap_modules: Optional[Sequence[str]] = None,
                 reshard_after_forward: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.mixed_precision = dict(DEFAULT_MIXED_PRECISION if mixed_precision is None
                                    else mixed_precision)
        self.master_dtype = master_dtype
        self.wrap_modules = None if wrap_modules is None else list(wrap_modules)
        self.reshard_after_forward = bool(reshard_after_forward)

    def _wrap_model(self, model: nn.Module) -> nn.Module:
        """Shard the stage's VLM in place; move the rest to this rank's device."""
        from torch.distributed.device_mesh import init_device_mesh
        device = get_device()
        for module in model.modules():
            if isinstance(module, BaseDataPreprocessor):
                module.to(device)
        mesh = init_device_mesh(device, (get_world_size(),))
        self.sharded = fully_shard_model(
            model, mesh, self.mixed_precision, self.master_dtype, self.wrap_modules,
            self.reshard_after_forward)
        # whatever is not sharded (a frozen mask head, buffers) is replicated on the device
        model = model.to(device)
        local = sum(_local_numel(p) for p in model.parameters())
        total = sum(p.numel() for p in model.parameters())
        self.logger.info(
            f'FullyShardStrategy: {len(fsdp_units(model))} FSDP units over {get_world_size()} '
            f'ranks; this rank holds {local:,} of {total:,} parameters '
            f'(master {self.master_dtype}, compute {self.mixed_precision.get("param_dtype")})')
        return model

    def build_optim_wrapper(self, optim_wrapper: Union[BaseOptimWrapper, dict],
                            model: Optional[nn.Module] = None) -> BaseOptimWrapper:
        """The optimiser over the sharded parameters (DTensors), built after sharding.

        Raises:
            ValueError: ``AmpOptimWrapper``: FSDP2's mixed precision already computes in bf16;
                autocast on top would only add casts (and a loss scaler cannot see sharded
                gradients).
        """
        if isinstance(optim_wrapper, dict) and str(optim_wrapper.get('type', '')).endswith(
                'AmpOptimWrapper'):
            raise ValueError(
                'FullyShardStrategy computes in mixed_precision.param_dtype already: use '
                "optim_wrapper type 'OptimWrapper' (AmpOptimWrapper is for unsharded runs)")
        return super().build_optim_wrapper(optim_wrapper, model)

    # --- checkpoints: full state dicts, written by rank 0 ---------------------------------------

    def model_state_dict(self) -> dict:
        """The full model state dict on rank 0 (CPU), an empty dict elsewhere (a collective)."""
        from torch.distributed.checkpoint.state_dict import get_model_state_dict
        return get_model_state_dict(
            self.model, options=_state_dict_options(full_state_dict=True, cpu_offload=True))

    def optim_state_dict(self) -> dict:
        """The full optimiser state keyed by parameter name on rank 0 (a collective)."""
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict
        return get_optimizer_state_dict(
            self.model, self.optim_wrapper.optimizer,
            options=_state_dict_options(full_state_dict=True, cpu_offload=True))

    def save_checkpoint(self, filename: str, *, save_optimizer: bool = True,
                        save_param_scheduler: bool = True, extra_ckpt: Optional[dict] = None,
                        callback: Optional[Callable] = None) -> None:
        """Gather the full state dicts on rank 0 (every rank takes part) and write one file there,
        as an unsharded run writes it; the ``before_save_checkpoint`` hooks run on rank 0."""
        state_dict = self.model_state_dict()
        optimizer = self.optim_state_dict() if (
            save_optimizer and hasattr(self, 'optim_wrapper')) else None
        if not is_main_process():
            return
        from mmengine.runner.checkpoint import save_checkpoint
        checkpoint = self._checkpoint_body(state_dict, optimizer, save_param_scheduler,
                                           extra_ckpt)
        if callback is not None:
            callback(checkpoint)
        save_checkpoint(checkpoint, filename)

    def _checkpoint_body(self, state_dict: dict, optimizer: Optional[dict],
                         save_param_scheduler: bool, extra_ckpt: Optional[dict]) -> dict:
        import time

        import mmengine
        checkpoint = dict(state_dict=state_dict)
        if optimizer is not None:
            checkpoint['optimizer'] = optimizer
        if save_param_scheduler and hasattr(self, 'param_schedulers'):
            checkpoint['param_schedulers'] = self.scheduler_state_dict()
        extra = dict(extra_ckpt or {})
        extra.setdefault('meta', {}).update(
            seed=self.seed, time=time.strftime('%Y%m%d_%H%M%S', time.localtime()),
            mmengine=mmengine.__version__)
        checkpoint.update(extra)
        return checkpoint

    def load_checkpoint(self, filename: str, *, map_location: Union[str, Callable] = 'cpu',
                        strict: bool = False, revise_keys: list = [(r'^module.', '')],
                        callback: Optional[Callable] = None) -> dict:
        """Every rank reads the checkpoint (memory-mapped when it is a local file, so the ranks of
        a node share one copy in the page cache) and keeps its shard of each tensor."""
        self.logger.info(f'Load checkpoint from {filename}')
        checkpoint = _read_checkpoint(filename)
        if callback is not None:
            callback(checkpoint)
        self.load_model_state_dict(checkpoint.pop('state_dict'), strict=strict,
                                   revise_keys=revise_keys)
        return checkpoint

    def load_model_state_dict(self, state_dict: dict, *, strict: bool = False,
                              revise_keys: list = [(r'^module.', '')]) -> None:
        """Load a full (unsharded) model state dict into the sharded model."""
        from torch.distributed.checkpoint.state_dict import set_model_state_dict
        for pattern, replacement in revise_keys:
            state_dict = {re.sub(pattern, replacement, k): v for k, v in state_dict.items()}
        own = self.model.state_dict()
        if not strict:  # mmengine's non-strict load: keys the model does not have are skipped
            state_dict = {k: v for k, v in state_dict.items() if k in own}
        set_model_state_dict(self.model, state_dict,
                             options=_state_dict_options(full_state_dict=True, strict=strict))

    def load_optim_state_dict(self, state_dict: dict) -> None:
        """Load a full optimiser state dict (keyed by parameter name) into the sharded one."""
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict
        set_optimizer_state_dict(self.model, self.optim_wrapper.optimizer, state_dict,
                                 options=_state_dict_options(full_state_dict=True))


def _local_numel(param: torch.Tensor) -> int:
    """Elements this rank holds of a (maybe sharded, DTensor) parameter."""
    return param.to_local().numel() if hasattr(param, 'to_local') else param.numel()


def _read_checkpoint(filename: str) -> dict:
    """A checkpoint on every rank: a local file memory-mapped, anything else with mmengine."""
    if osp.isfile(filename):
        # mmengine checkpoints hold python objects (message hub, config): not weights_only
        return torch.load(filename, map_location='cpu', mmap=True, weights_only=False)
    from mmengine.runner.checkpoint import _load_checkpoint
    return _load_checkpoint(filename, map_location='cpu')


__all__: List[str] = ['FullyShardStrategy', 'DEFAULT_MIXED_PRECISION']
