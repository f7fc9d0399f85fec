# LPR supervised warm-up (cold start) before GRPO: cross-entropy on GT-formatted answers
# (<think> template + the GT answer JSON in the model's coordinates), same data, tools and hooks.
#   bash tools/dist_train.sh configs/finers/lpr_qwen7b_sft.py 4
# then GRPO from it: --cfg-options load_from=work_dirs/lpr_qwen7b_sft/iter_500.pth
_base_ = ['./lpr_qwen7b.py']

model = dict(train_mode='sft')
custom_hooks = []
optim_wrapper = dict(optimizer=dict(lr=1e-5), accumulative_counts=1)
train_dataloader = dict(batch_size=4)
train_cfg = dict(max_iters=500, val_interval=500)
