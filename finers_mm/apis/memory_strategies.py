# Copyright (c) finers_mm contributors. All rights reserved.
"""How a training strategy spreads the model states over the GPUs: :class:`Sharding` and one
builder per strategy (single GPU, DDP, DeepSpeed ZeRO, FSDP), pure functions of its settings.

:mod:`finers_mm.apis.memory_plan` divides each component by the GPUs it is sharded over;
:mod:`finers_mm.apis.memory_plan_config` reads the settings from a config.
"""
from dataclasses import dataclass


@dataclass
class Sharding:
    """How a training strategy spreads the model states over the GPUs.

    Build one with :func:`single_device`, :func:`ddp`, :func:`deepspeed_zero` or :func:`fsdp`.

    Args:
        name (str): e.g. ``'DeepSpeed ZeRO-2'``.
        world_size (int): GPUs.
        weights (bool): the weights are sharded.
        gradients (bool): the gradients are sharded.
        optimizer (bool): the optimiser states (and master weights) are sharded.
        master_weights (bool): a master copy of the trainable weights is kept (DeepSpeed's
            bf16 / fp16 modes); the optimiser then steps the copies.
        master_grad_partition (bool): the rank's gradient partition is copied to the master dtype
            for the step (DeepSpeed's mixed-precision optimisers).
        master_dtype (str): dtype of the master copy and its gradient partition (float32 unless
            ``bf16_master_weights_and_gradients``).
        offload_optimizer (bool): optimiser states and master weights live in CPU memory.
        offload_params (bool): the weights live in CPU memory (ZeRO-3 offload).
        buffer_bytes (int): communication buffers, bytes.
        buffer_how (str): how they were counted.
        rollout_gather (bool): the sharded weights are gathered whole (in the compute dtype)
            for the rollout's generate (FullyShardStrategy).
    """
    name: str
    world_size: int = 1
    weights: bool = False
    gradients: bool = False
    optimizer: bool = False
    master_weights: bool = False
    master_grad_partition: bool = False
    master_dtype: str = 'float32'
    offload_optimizer: bool = False
    offload_params: bool = False
    buffer_bytes: int = 0
    buffer_how: str = 'none'
    rollout_gather: bool = False

    def shards(self, sharded: bool) -> int:
        """The divisor of a component: the GPUs when it is sharded, else 1."""
        return self.world_size if sharded else 1


def single_device() -> Sharding:
    """One GPU: nothing sharded, no communication."""
    return Sharding('single GPU')


def ddp(world_size: int, grad_bytes: int, gradient_as_bucket_view: bool = False) -> Sharding:
    """Plain data parallel (mmengine's MMDistributedDataParallel): everything replicated.

    Args:
        world_size (int): GPUs.
        grad_bytes (int): bytes of the trainable parameters' gradients.
        gradient_as_bucket_view (bool): DDP's option; without it (the default) the all-reduce
            buckets are a second copy of the gradients.

    Returns:
        Sharding: the strategy.
    """
    if world_size <= 1:
        return single_device()
    buffers = 0 if gradient_as_bucket_view else grad_bytes
    how = ('none (gradient_as_bucket_view)' if gradient_as_bucket_view else
           'all-reduce buckets: a copy of the gradients (not with gradient_as_bucket_view)')
    return Sharding('DDP', world_size, buffer_bytes=buffers, buffer_how=how)


def deepspeed_zero(stage: int, world_size: int, mixed_precision: bool, compute_bytes: int,
                   reduce_bucket_size: float = 5e8,
                   overlap_comm: bool = False, contiguous_gradients: bool = True,
                   max_live_parameters: float = 1e9, offload_optimizer: bool = False,
                   offload_params: bool = False, master_dtype: str = 'float32') -> Sharding:
    """DeepSpeed ZeRO (mmengine's FlexibleRunner + DeepSpeedStrategy).

    Stage 1 shards the optimiser states (and fp32 master weights), stage 2 the gradients too,
    stage 3 the weights too. In bf16 / fp16 mode DeepSpeed casts the module to that dtype and
    steps master copies (fp32 by default) with optimiser states and a copy of the gradient
    partition in the master dtype.

    Args:
        stage (int): ``zero_optimization.stage``, 0 to 3.
        world_size (int): GPUs.
        mixed_precision (bool): ``bf16.enabled`` or ``fp16.enabled``.
        compute_bytes (int): bytes of a gradient / gathered weight element.
        reduce_bucket_size (float): ``zero_optimization.reduce_bucket_size`` (elements).
        overlap_comm (bool): ``zero_optimization.overlap_comm`` (two reduce buckets).
        contiguous_gradients (bool): ``zero_optimization.contiguous_gradients`` (the reduce
            bucket is a preallocated buffer).
        max_live_parameters (float): ``stage3_max_live_parameters`` (gathered weights, stage 3).
        offload_optimizer (bool): ``offload_optimizer.device == 'cpu'`` (or nvme).
        offload_params (bool): ``offload_param.device == 'cpu'`` (stage 3).
        master_dtype (str): the master copy's dtype (``'bfloat16'`` with
            ``zero_optimization.bf16_master_weights_and_gradients``).

    Returns:
        Sharding: the strategy.

    Raises:
        ValueError: a stage outside 0-3.
    """
    if stage not in (0, 1, 2, 3):
        raise ValueError(f'zero_optimization.stage must be 0, 1, 2 or 3, got {stage!r}')
    buckets = (2 if overlap_comm else 1) if (contiguous_gradients and stage >= 1) else 0
    buffers = int(buckets * reduce_bucket_size * compute_bytes)
    how = (f'{buckets} reduce bucket(s) of {reduce_bucket_size:.3g} elements x {compute_bytes} B'
           if buckets else 'none counted')
    if stage == 3:
        buffers += int(max_live_parameters * compute_bytes)
        how += f' + gathered weights (stage3_max_live_parameters {max_live_parameters:.3g})'
    return Sharding(
        f'DeepSpeed ZeRO-{stage}', world_size, weights=stage >= 3, gradients=stage >= 2,
        optimizer=stage >= 1, master_weights=mixed_precision,
        master_grad_partition=mixed_precision, master_dtype=master_dtype,
        offload_optimizer=offload_optimizer,
        offload_params=offload_params and stage == 3, buffer_bytes=buffers,
        buffer_how=how + ' (approx.)')


#: FSDP sharding strategies and what each shards (weights, gradients + optimiser)
FSDP_STRATEGIES = {
    'FULL_SHARD': (True, True),
    'HYBRID_SHARD': (True, True),
    'SHARD_GRAD_OP': (False, True),
    '_HYBRID_SHARD_ZERO2': (False, True),
    'NO_SHARD': (False, False),
}


def fsdp(strategy: str, world_size: int, largest_block: int, compute_bytes: int,
         rollout_gather: bool = False, label: str = 'FSDP') -> Sharding:
    """FSDP (mmengine's FlexibleRunner + FSDPStrategy or finers_mm's FullyShardStrategy, or
    MMFullyShardedDataParallel).

    FSDP shards the parameters in their own dtype (no separate master copy: a model held in
    fp32 keeps fp32 shards and computes in the mixed-precision dtype). The hybrid strategies are
    counted as if the GPUs were one node.

    Args:
        strategy (str): ``sharding_strategy`` (a key of :data:`FSDP_STRATEGIES`).
        world_size (int): GPUs.
        largest_block (int): parameters of the largest wrapped block.
        compute_bytes (int): bytes of a gathered element.
        rollout_gather (bool): the weights are gathered whole for the rollout's generate.
        label (str): the name's prefix (``'FSDP'``, ``'FSDP2'``).

    Returns:
        Sharding: the strategy.

    Raises:
        ValueError: an unknown sharding strategy.
    """
    name = str(strategy).split('.')[-1].upper()
    if name not in FSDP_STRATEGIES:
        raise ValueError(f'unknown FSDP sharding_strategy {strategy!r}; expected one of '
                         f'{sorted(FSDP_STRATEGIES)}')
    weights, rest = FSDP_STRATEGIES[name]
    # the block being computed and the one prefetched are whole on every GPU
    buffers = 2 * largest_block * compute_bytes if weights else 0
    how = (f'2 gathered blocks of {largest_block / 1e6:.0f} M parameters x {compute_bytes} B'
           if weights else 'none counted')
    return Sharding(f'{label} {name}', world_size, weights=weights, gradients=rest,
                    optimizer=rest, buffer_bytes=buffers, buffer_how=how,
                    rollout_gather=rollout_gather and weights)
