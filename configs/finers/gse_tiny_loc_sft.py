# The explorer's (GSE) supervised training of the quick start's locating chain: the tiny Qwen3-VL
# locator (tiny_cpu.py's `tiny_locator`, 0..1000 coordinates) in the locating frames (`tiny_loc_frames`: the 960 x 540
# image unresized, 128 x 128 regions) on the quick start's synthetic training set; the target is
# the region centred on the GT box (no best_region). tools/misc/train_tiny_locator.py runs it once
# into finers_mm/data/tiny_locator/explorer.
#   python tools/train.py configs/finers/gse_tiny_loc_sft.py \
#       --cfg-options train_dataloader.dataset.data_root=DATA/
_base_ = ['./gse_tiny_sft.py']

frames = _base_.tiny_loc_frames
# the pipelines in these frames (tiny_cpu.py's `tiny_loc_sizes`)
train_pipeline = [
    dict(step, **_base_.tiny_loc_sizes.get(step['type'], {})) for step in _base_.train_pipeline
]
test_pipeline = [
    dict(step, **_base_.tiny_loc_sizes.get(step['type'], {})) for step in _base_.test_pipeline
]
model = dict(region_size=frames['region_size'],
             vlm=dict(type='Qwen3VLAdapter', pretrained=_base_.tiny_locator))
# 4000 steps of 8 at 1e-3 in all, which tools/misc/train_tiny_locator.py splits over its curriculum
# (one run per synthetic set, each with this schedule over its share); lr 1e-3 is the rate at which
# the vision probe's Qwen3-VL locator learnt positions (1e-2 suited the Qwen2.5-VL locator's 1000)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=4000, eta_min=1e-5)
]
train_cfg = dict(max_iters=4000, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=1000, max_keep_ckpts=4))
train_dataloader = dict(batch_size=8, dataset=dict(pipeline=train_pipeline))
