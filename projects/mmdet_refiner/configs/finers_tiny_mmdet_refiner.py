# FineRS with an mmdet detector as the refiner: the tiny chain of configs/finers/finers_tiny_test.py
# (tiny Qwen2.5-VL explorer, tiny SAM) with a tiny random RTMDet in place of the VLM refiner. Build
# the tiny models, then run from the repository root (projects/mmdet_refiner/README.md):
#   python tools/misc/build_tiny_models.py work_dirs/tiny_models
#   python projects/mmdet_refiner/tools/build_tiny_detector.py \
#       projects/mmdet_refiner/configs/rtmdet_tiny_1cls.py \
#       work_dirs/tiny_models/mmdet_refiner/rtmdet_tiny_1cls.pth
#   python tools/test.py projects/mmdet_refiner/configs/finers_tiny_mmdet_refiner.py
# For a real detector, point model.refiner.detector / .checkpoint at its mmdet config and weights.
_base_ = ['../../../configs/finers/finers_tiny_test.py']

custom_imports = dict(
    imports=['finers_mm', 'projects.mmdet_refiner.mmdet_refiner'], allow_failed_imports=False)

model = dict(
    refiner=dict(
        _delete_=True,
        type='MMDetRefiner',
        detector='projects/mmdet_refiner/configs/rtmdet_tiny_1cls.py',
        checkpoint='work_dirs/tiny_models/mmdet_refiner/rtmdet_tiny_1cls.pth',
        selection='score',  # class-agnostic: the highest-scoring box of each crop
        points='box'))  # two points along the box's longer axis, at 1/4 and 3/4
