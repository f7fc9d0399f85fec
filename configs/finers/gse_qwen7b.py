# GSE (GlobalExplorer) GRPO training with the authors' settings (METHOD.md): the policy, loss and
# sampling of lpr_qwen7b.py with the GSE reward (max 7), 8 prompts (64 rollouts) per optimiser
# step, 200 steps (configs/_base_/schedules/grpo_200it.py).
#   bash tools/dist_train.sh configs/finers/gse_qwen7b.py 8
# Sharded with FSDP (configs/_base_/strategies/fsdp.py): weights, gradients and AdamW states split
# over the GPUs, fp32 master shards, bf16 compute; 8 x 80 GB: tools/analysis_tools/memory_plan.py
# configs/finers/gse_qwen7b.py --gpus 8 (about 33 GB of model states per GPU with the bf16 KL
# reference; plain DDP would need 133 GB).
# The two retrospective terms need `best_region` in every training record: run
# tools/search_best_region.py with the trained refiner first (it writes the annotation below).
_base_ = [
    '../_base_/models/gse_qwen25vl.py', '../_base_/datasets/finers4k.py',
    '../_base_/schedules/grpo_200it.py', '../_base_/default_runtime.py',
    '../_base_/strategies/fsdp.py'
]

# as the authors' code trains (docs/fidelity.md): their training prompts, frame-pixel coordinates,
# their reward rules, veRL's loss aggregation, PIL resizes; protocol = 'finers_mm' is ours
protocol = 'authors'

# the schedule's lr, weight decay and clipping with torch's AdamW on the fp32 master shards (the
# updates land: tests/test_configs/test_config_updates_land.py); FSDP computes in bf16, no AMP
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper',
    optimizer=dict(_base_.optim_wrapper.optimizer, type='AdamW'),
    clip_grad=_base_.optim_wrapper.clip_grad)

train_dataloader = dict(dataset=dict(ann_file='annotations/train_best_region.json'))
# 8 GPUs x 1 prompt = 8 prompts per optimiser step (the authors: 2 GPUs x 4); on 2 GPUs set
# optim_wrapper.accumulative_counts=4 and train_cfg.max_iters=800
# training only: a stage is evaluated through the whole chain (finers_qwen7b_test.py)
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None
