# The refiner's (LPR) supervised training of the quick start's locating chain: the larger tiny
# Qwen2.5-VL (tiny_cpu.py's `tiny_locator`) in the locating frames (`tiny_loc_frames`, 256 x 256
# crops) on the quick start's synthetic training set. tools/misc/train_tiny_locator.py runs it
# once (the shipped weights, finers_mm/data/tiny_locator/refiner); lpr_tiny_loc.py is its GRPO.
#   python tools/train.py configs/finers/lpr_tiny_loc_sft.py \
#       --cfg-options train_dataloader.dataset.data_root=DATA/
_base_ = ['./lpr_tiny_sft.py']

frames = _base_.tiny_loc_frames
model = dict(vlm=dict(pretrained=_base_.tiny_locator))
# 2000 steps of 8 crops at 1e-2 (300 steps at 3e-3 or 1e-2 learn the answer layout, not the digits)
optim_wrapper = dict(optimizer=dict(lr=1e-2))
train_dataloader = dict(batch_size=8)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=2000, eta_min=1e-5)
]
train_cfg = dict(max_iters=2000, val_interval=2000)
default_hooks = dict(checkpoint=dict(interval=500, max_keep_ckpts=2))
