# GSE supervised warm-up (cold start) before GRPO: as lpr_qwen7b_sft.py, on the explorer.
#   bash tools/dist_train.sh configs/finers/gse_qwen7b_sft.py 4
# then GRPO from it: --cfg-options load_from=work_dirs/gse_qwen7b_sft/iter_500.pth
_base_ = ['./gse_qwen7b.py']

model = dict(train_mode='sft')
custom_hooks = []
optim_wrapper = dict(optimizer=dict(lr=1e-5))
train_dataloader = dict(batch_size=4)
train_cfg = dict(max_iters=500, val_interval=500)
