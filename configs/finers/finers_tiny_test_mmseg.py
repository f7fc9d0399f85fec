# The tiny FineRS chain of finers_tiny_test.py with an mmseg mask head instead of SAM: only the
# model.mask_head block differs. The segmentor is a tiny SegFormer with random weights (tests only);
# any mmseg segmentor fits: its model config dict, or the path of an mmseg config file with
# `checkpoint` its local weights, e.g.
#   mask_head=dict(_delete_=True, type='MMSegMaskHead', segmentor='path/to/segformer_config.py',
#                  checkpoint='path/to/segformer.pth', foreground_class=12, scale=(2048, 512))
#   python tools/test.py configs/finers/finers_tiny_test_mmseg.py
_base_ = ['./finers_tiny_test.py']

model = dict(
    mask_head=dict(
        _delete_=True,
        type='MMSegMaskHead',
        segmentor=dict(
            type='EncoderDecoder',
            data_preprocessor=dict(
                type='SegDataPreProcessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                bgr_to_rgb=True),
            backbone=dict(type='MixVisionTransformer', embed_dims=8, num_layers=[1, 1, 1, 1]),
            decode_head=dict(
                type='SegformerHead',
                in_channels=[8, 16, 32, 64],
                in_index=[0, 1, 2, 3],
                channels=16,
                num_classes=2),
            test_cfg=dict(mode='whole')),
        foreground_class=1))
