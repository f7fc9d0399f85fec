# GSE supervised warm-up with the tiny local models on the bundled synthetic data, on CPU.
#   python tools/train.py configs/finers/gse_tiny_sft.py
# The quick start runs it on its generated training set, then GRPO (gse_tiny.py) from the export.
# A randomly initialised tiny model: a high learning rate with warm-up and cosine decay, 8
# prompts per step. It learns the answer layout, not the coordinates (GRPO's part). 300 steps: at
# 200 the explorer still wrote unterminated numbers on 9 of the 12 bundled questions (invalid 75 %,
# 0 % after 300); the refiner's 250 + 100 steps beside it take longer, so the quick start is no
# longer for it.
_base_ = ['./gse_tiny.py']

model = dict(train_mode='sft')
custom_hooks = []
optim_wrapper = dict(optimizer=dict(lr=3e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=300, eta_min=1e-5)
]
train_dataloader = dict(batch_size=8)
train_cfg = dict(max_iters=300, val_interval=300)
default_hooks = dict(checkpoint=dict(interval=300))
