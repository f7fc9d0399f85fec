# FineRS-7B on the FineRS-4k test split: Qwen2.5-VL-7B explorer and refiner, SAM vit_h.
#   python tools/test.py configs/finers/finers_qwen7b_test.py     (weights from the paths below)
#   bash tools/dist_test.sh configs/finers/finers_qwen7b_test.py none 8
# Fill the checkpoint paths in configs/_base_/models/finers_qwen25vl.py (or override them here) and
# put FineRS-4k under data/FineRS-4k/ (configs/_base_/datasets/finers4k.py). Paper (test split):
# gIoU 55.1, cIoU 46.5, MVQA 83.3, OVQA 56.7.
_base_ = [
    '../_base_/models/finers_qwen25vl.py', '../_base_/datasets/finers4k.py',
    '../_base_/default_runtime.py'
]

# inference only
train_dataloader = train_cfg = optim_wrapper = None
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
val_dataloader = dict(batch_size=8)
test_dataloader = dict(batch_size=8)
default_hooks = dict(logger=dict(interval=50))
