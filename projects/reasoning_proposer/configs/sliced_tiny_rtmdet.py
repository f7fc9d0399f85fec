# The baseline of the benchmark: the SAME tiny RTMDet run on overlapping 512 px tiles over the whole
# image (SAHI-style sliced inference, finers_mm/structures/tiling.py), merged with mmcv's
# batched NMS, scored the same way. Same data and evaluator as
# finers_tiny_reasoning_proposer.py.
_base_ = ['./finers_tiny_reasoning_proposer.py']

model = dict(
    _delete_=True,
    type='SlicedDetector',
    detector={{_base_.model.detector}},  # the same detector config and checkpoint
    tile_size=512,
    overlap_ratio=0.2,
    nms=dict(type='nms', iou_threshold=0.5),
    max_per_img=100)
