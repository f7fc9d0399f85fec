# A tiny, randomly initialised RTMDet for the tests and the smoke run: mmdet's RTMDet-tiny config
# with 1/3 of its widths (widen_factor 0.125), one class, BN instead of SyncBN, exp_on_reg, 128 px
# input and score_thr 0 so every crop gets boxes. Its weights come from
#   python projects/mmdet_refiner/tools/build_tiny_detector.py \
#       projects/mmdet_refiner/configs/rtmdet_tiny_1cls.py \
#       work_dirs/tiny_models/mmdet_refiner/rtmdet_tiny_1cls.pth
# Any real mmdet detector config (and its checkpoint) takes this file's place. The same tiny
# detector (config, builder, checkpoint path) is projects/reasoning_proposer's.
_base_ = 'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py'

norm_cfg = dict(type='BN')
model = dict(
    backbone=dict(widen_factor=0.125, norm_cfg=norm_cfg, init_cfg=None),
    neck=dict(in_channels=[32, 64, 128], out_channels=32, norm_cfg=norm_cfg),
    # exp_on_reg: positive box sides even with random weights, so no box is dropped as empty
    bbox_head=dict(
        num_classes=1, in_channels=32, feat_channels=32, norm_cfg=norm_cfg, exp_on_reg=True),
    test_cfg=dict(nms_pre=200, score_thr=0.0, max_per_img=20))

metainfo = dict(classes=('object', ))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='Pad', size=(128, 128), pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
test_dataloader = dict(dataset=dict(metainfo=metainfo, pipeline=test_pipeline))
