# FineRS as a proposer for an mmdet detector: the tiny Qwen2.5-VL explorer of
# configs/finers/finers_tiny_test.py proposes the region a question points at, a tiny random RTMDet
# runs on the native-resolution crop window around it, and its boxes come back in full-image pixels,
# scored by mmdet's CocoMetric (FineRSCocoMetric, bbox). From the repository root
# (projects/reasoning_proposer/README.md):
#   python tools/misc/build_tiny_models.py work_dirs/tiny_models
#   python projects/mmdet_refiner/tools/build_tiny_detector.py \
#       projects/mmdet_refiner/configs/rtmdet_tiny_1cls.py \
#       work_dirs/tiny_models/mmdet_refiner/rtmdet_tiny_1cls.pth
#   python tools/misc/finers_to_coco.py finers_mm/data/synthetic/annotations/train.json \
#       finers_mm/data/synthetic/images work_dirs/reasoning_proposer/synthetic_coco.json
#   python tools/test.py projects/reasoning_proposer/configs/finers_tiny_reasoning_proposer.py
# For a real detector, point model.detector.config / .checkpoint at its mmdet config and weights.
_base_ = ['../../../configs/finers/finers_tiny_test.py']

custom_imports = dict(
    imports=['finers_mm', 'projects.reasoning_proposer.reasoning_proposer'],
    allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='ReasoningProposerDetector',
    explorer={{_base_.model.explorer}},
    detector=dict(
        # the tiny RTMDet of projects/mmdet_refiner (its config, builder and checkpoint path)
        config='projects/mmdet_refiner/configs/rtmdet_tiny_1cls.py',
        checkpoint='work_dirs/tiny_models/mmdet_refiner/rtmdet_tiny_1cls.pth'),
    crop_min_side={{_base_.frames.crop_min_side}},
    num_regions=1,
    nms=dict(type='nms', iou_threshold=0.5),
    max_per_img=100)

coco_ann_file = 'work_dirs/reasoning_proposer/synthetic_coco.json'
test_evaluator = dict(
    _delete_=True, type='FineRSCocoMetric', metric='bbox', ann_file=coco_ann_file)
val_evaluator = test_evaluator
# the FineRS visualisation hook draws masks; this model predicts boxes only
default_hooks = dict(visualization=dict(_delete_=True, type='mmdet.DetVisualizationHook'))
