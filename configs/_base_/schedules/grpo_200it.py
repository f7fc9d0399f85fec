# The authors' GRPO optimisation (METHOD.md, "GRPO"): AdamW lr 1e-6 constant, weight decay 1e-2,
# grad clip 1.0, bf16, one optimiser step per rollout batch, 200 steps.
train_cfg = dict(type='IterBasedTrainLoop', max_iters=200, val_interval=200)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=1e-6, weight_decay=1e-2),
    clip_grad=dict(max_norm=1.0))

# constant learning rate: no parameter scheduler
param_scheduler = []

# the rollout batch the learning rate was tuned for: GSE 8 prompts x 8 samples on 2 GPUs
auto_scale_lr = dict(enable=False, base_batch_size=8)
