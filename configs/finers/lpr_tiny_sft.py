# LPR supervised warm-up with the tiny local models on the bundled synthetic data, on CPU.
#   python tools/train.py configs/finers/lpr_tiny_sft.py
_base_ = ['./lpr_tiny.py']

model = dict(train_mode='sft')
custom_hooks = []
optim_wrapper = dict(optimizer=dict(lr=2e-3))
train_dataloader = dict(batch_size=4)
train_cfg = dict(max_iters=20, val_interval=20)
default_hooks = dict(checkpoint=dict(interval=20))
