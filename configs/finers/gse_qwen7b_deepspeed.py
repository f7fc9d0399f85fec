# GSE full fine-tune sharded with DeepSpeed ZeRO-2 through mmengine's FlexibleRunner, the
# alternative to gse_qwen7b.py's FSDP: optimiser states and gradients are sharded, the weights stay
# whole (bf16) on every GPU, so the rollout's generate runs as usual. Needs `pip install
# deepspeed`; not measured here (no GPU in this project's CI).
#   bash tools/dist_train.sh configs/finers/gse_qwen7b_deepspeed.py 8
_base_ = ['./gse_qwen7b.py']

runner_type = 'FlexibleRunner'
# the schedule's bf16, AdamW and gradient clipping, applied by DeepSpeed
strategy = dict(
    _delete_=True,
    type='DeepSpeedStrategy',
    fp16=dict(enabled=False),
    bf16=dict(enabled=True),
    zero_optimization=dict(stage=2, overlap_comm=True, contiguous_gradients=True),
    gradient_clipping=_base_.optim_wrapper.clip_grad.max_norm)
# Precision: in bf16 mode ZeRO-1/2 keeps an fp32 master copy of this rank's partition (DeepSpeed
# 0.19 stage_1_and_2.py: `master_weights_and_grads_dtype` is fp32 unless the zero_optimization
# keys `bf16_master_weights_and_gradients` / `fp16_master_weights_and_gradients` ask otherwise) and
# the optimiser steps those fp32 copies, so the updates land with torch's AdamW; the bf16 weights
# are rounded from them after each step. KahanAdamW is not needed here, and ZeRO refuses an
# optimiser outside its tested list without `zero_allow_untested_optimizer`: the schedule's lr and
# weight decay with torch's AdamW.
optim_wrapper = dict(
    _delete_=True, type='DeepSpeedOptimWrapper',
    optimizer=dict(_base_.optim_wrapper.optimizer, type='AdamW'))
