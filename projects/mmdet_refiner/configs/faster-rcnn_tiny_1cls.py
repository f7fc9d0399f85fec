# A tiny, randomly initialised two-stage detector: mmdet's Faster R-CNN R-50-FPN config with a
# ResNet-18 of 8 base channels, one class, 128 px input and score_thr 0 (unit tests: a two-stage
# detector behind the same refiner interface).
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'

model = dict(
    backbone=dict(depth=18, base_channels=8, init_cfg=None),
    neck=dict(in_channels=[8, 16, 32, 64], out_channels=16),
    rpn_head=dict(in_channels=16, feat_channels=16),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=16),
        bbox_head=dict(in_channels=16, fc_out_channels=32, num_classes=1)),
    test_cfg=dict(
        rpn=dict(nms_pre=100, max_per_img=50),
        rcnn=dict(score_thr=0.0, max_per_img=20)))

metainfo = dict(classes=('object', ))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
test_dataloader = dict(dataset=dict(metainfo=metainfo, pipeline=test_pipeline))
