# The authors' GRPO optimisation (METHOD.md, "GRPO"): AdamW lr 1e-6 constant, weight decay 1e-2,
# grad clip 1.0, bf16, one optimiser step per rollout batch, 200 steps.
# Precision: the weights are bf16 (model.vlm.dtype) and AmpOptimWrapper only autocasts the forward
# (bf16 compute); it keeps no fp32 master copy. bf16 resolves a weight of 0.02 to 1.2e-4, so a
# plain AdamW step of ~1e-6 rounds away (tiny model, 5 steps: 2.3 % of the elements an fp32 run
# changes move, 0.16x its update norm). KahanAdamW (finers_mm/engine/optimizers/kahan_adamw.py)
# lands them as the authors' AnyPrecisionAdamW does: fp32 moments and update, and a bf16
# compensation buffer per bf16 weight carrying each step's rounding error to the next (99.99 %,
# 1.00x); on fp32 parameters (LoRA adapters) it is torch's AdamW exactly. Optimiser state: 10
# bytes per bf16 parameter (KahanAdamW.state_bytes_per_param). Checked for every 7B/3B config by
# tests/test_configs/test_config_updates_land.py.
train_cfg = dict(type='IterBasedTrainLoop', max_iters=200, val_interval=200)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(type='KahanAdamW', lr=1e-6, weight_decay=1e-2),
    clip_grad=dict(max_norm=1.0))

# constant learning rate: no parameter scheduler
param_scheduler = []

# the rollout batch the learning rate was tuned for: GSE 8 prompts x 8 samples on 2 GPUs
auto_scale_lr = dict(enable=False, base_batch_size=8)
