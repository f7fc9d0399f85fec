# LPR supervised warm-up with the tiny local models on the bundled synthetic data, on CPU.
#   python tools/train.py configs/finers/lpr_tiny_sft.py
# The quick start runs it on its generated training set, then GRPO (lpr_tiny.py) from the export.
# A randomly initialised tiny model: a high learning rate with warm-up and cosine decay, 16
# prompts per step. It learns the answer layout, not the coordinates (GRPO's part).
_base_ = ['./lpr_tiny.py']

model = dict(train_mode='sft')
custom_hooks = []
optim_wrapper = dict(optimizer=dict(lr=1e-2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=250, eta_min=1e-5)
]
train_dataloader = dict(batch_size=16)
train_cfg = dict(max_iters=250, val_interval=250)
default_hooks = dict(checkpoint=dict(interval=250))
