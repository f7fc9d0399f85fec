# Fully sharded data parallel (torch's FSDP2) through mmengine's FlexibleRunner: every rank holds
# 1/N of the weights, gradients and optimiser states (ZeRO-3). The parameters are sharded in
# float32 (the optimiser steps full-precision shards: lr-1e-6 updates land with torch's AdamW),
# gathered block by block in bf16 for compute, gradients reduce-scattered in float32. Blocks: the
# model's `_no_split_modules` (Qwen2.5-VL: decoder layers and vision blocks), then the whole
# Hugging Face model. The rollout keeps the weights gathered (bf16) while it generates.
# finers_mm/engine/strategies/fully_shard.py says why FSDP2 and not mmengine's FSDPStrategy.
# A config using it steps a plain OptimWrapper (FSDP computes in bf16 already: no AMP).
runner_type = 'FlexibleRunner'
strategy = dict(
    type='finers_mm.FullyShardStrategy',  # FlexibleRunner builds it in mmengine's scope
    mixed_precision=dict(param_dtype='bfloat16', reduce_dtype='float32'),
    master_dtype='float32',
    reshard_after_forward=True)
