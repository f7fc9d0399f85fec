# A tiny, randomly initialised Grounding DINO for selection='text': mmdet's Grounding DINO R-50
# config with a ResNet-18 of 8 base channels, single-layer encoder and decoder (256 wide: mmdet's
# text position embedding is fixed at 256) with small feed-forwards, 20 queries, 128 px input, and a
# tiny local BERT text encoder (`lang_model_name`, a directory written by
#   python projects/mmdet_refiner/tools/build_tiny_detector.py \
#       projects/mmdet_refiner/configs/grounding-dino_tiny.py \
#       work_dirs/tiny_models/mmdet_refiner/grounding-dino_tiny.pth \
#       --text-encoder work_dirs/tiny_models/mmdet_refiner/bert_tiny
# ; nothing is downloaded).
_base_ = 'mmdet::grounding_dino/grounding_dino_r50_scratch_8xb2_1x_coco.py'

lang_model_name = 'work_dirs/tiny_models/mmdet_refiner/bert_tiny'
dims = 256  # mmdet 3.3's text position embedding has 256 features, whatever the config
model = dict(
    num_queries=20,
    language_model=dict(name=lang_model_name, max_tokens=64),
    backbone=dict(depth=18, base_channels=8, init_cfg=None),
    neck=dict(in_channels=[16, 32, 64], out_channels=dims, norm_cfg=dict(type='GN', num_groups=32)),
    encoder=dict(
        num_layers=1,
        num_cp=0,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=dims, num_heads=2),
            ffn_cfg=dict(embed_dims=dims, feedforward_channels=64)),
        text_layer_cfg=dict(
            self_attn_cfg=dict(num_heads=2, embed_dims=dims),
            ffn_cfg=dict(embed_dims=dims, feedforward_channels=64)),
        fusion_layer_cfg=dict(v_dim=dims, l_dim=dims, embed_dim=64, num_heads=2)),
    decoder=dict(
        num_layers=1,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=dims, num_heads=2),
            cross_attn_text_cfg=dict(embed_dims=dims, num_heads=2),
            cross_attn_cfg=dict(embed_dims=dims, num_heads=2),
            ffn_cfg=dict(embed_dims=dims, feedforward_channels=64))),
    positional_encoding=dict(num_feats=dims // 2),
    bbox_head=dict(num_classes=1, contrastive_cfg=dict(max_text_len=64)),
    test_cfg=dict(max_per_img=20))

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='FixScaleResize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'text',
                    'custom_entities')),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
