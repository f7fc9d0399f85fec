# FineRS-7B on the FineRS-4k test split: Qwen2.5-VL-7B explorer and refiner, SAM vit_h.
#   python tools/test.py configs/finers/finers_qwen7b_test.py            (weights from the paths below)
#   bash tools/dist_test.sh configs/finers/finers_qwen7b_test.py none 8
# Fill the checkpoint paths in configs/_base_/models/finers_qwen25vl.py (or override them here) and
# put FineRS-4k under data/FineRS-4k/ (configs/_base_/datasets/finers4k.py). Paper (test split):
# gIoU 55.1, cIoU 46.5, MVQA 83.3, OVQA 56.7.
_base_ = [
    '../_base_/models/finers_qwen25vl.py', '../_base_/datasets/finers4k.py',
    '../_base_/default_runtime.py'
]

model = dict(
    explorer=dict(region_size={{_base_.frames.region_size}}),
    refiner=dict(frame_size={{_base_.frames.refiner_size}}),
    crop_min_side={{_base_.frames.crop_min_side}})

# inference only
train_dataloader = None
train_cfg = None
optim_wrapper = None
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
val_dataloader = dict(batch_size=8)
test_dataloader = dict(batch_size=8)

# an empty GT and an empty prediction together count as IoU 1 (FineRS-4k has no empty GT)
test_evaluator = dict(type='FineRSMetric', empty_rule='one', answer_stage='refiner')
val_evaluator = test_evaluator

visualizer = dict(type='FineRSVisualizer', vis_backends=[dict(type='LocalVisBackend')],
                  name='visualizer')
# one drawing per question (several questions share an image): tools/test.py --show-dir DIR
default_hooks = dict(
    logger=dict(interval=50), visualization=dict(type='FineRSVisualizationHook'))
