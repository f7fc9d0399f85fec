# FineRS-4k dataset settings (one sample per (image, question) record of the authors' JSON).
#
# The frames and sizes of the coarse-to-fine chain, the ONE place they are set (METHOD.md):
# explorer_size: the whole image is resized to this (w, h) frame for GSE; region_size: side of
# the GSE region in that frame; refiner_size: the LPR frame (w, h) the crop is resized to;
# crop_min_side: smallest side of the square crop in original pixels. A child config (or
# --cfg-options frames.region_size=...) may change them: finers_mm's config loader (every tool)
# sets the pipelines' and the models' sizes from the final `frames`
# (finers_mm/utils/frames_config.py).
frames = dict(
    explorer_size=(1920, 1080), region_size=256, refiner_size=(512, 512), crop_min_side=512)

dataset_type = 'FineRS4kDataset'
# Assumed layout (the release's layout is not documented):
# <data_root>/annotations/{train,val,test}.json in the authors' format, every record's image_path
# relative to <data_root>/images/. Another layout is a one-line change of `data_root`,
# `data_prefix` or `ann_files`.
data_root = 'data/FineRS-4k/'
data_prefix = dict(img='images/')
ann_files = dict(
    train='annotations/train.json', val='annotations/val.json', test='annotations/test.json')

# Files on another backend, e.g. petrel:
# backend_args = dict(backend='petrel', path_mapping=dict({'data/': 's3://bucket/data/'}))
backend_args = None

# Training samples carry both views: the explorer view (GSE, regressed to best_region) and a random
# refiner crop around the GT (LPR). The protocol picks the GT points (finers_mm: the centres of the
# two largest inscribed circles; authors: their jittered box centre) and the resize (cv2 linear /
# PIL bilinear): set `method=` / `resize=` here to fix one whatever the protocol.
train_pipeline = [
    dict(type='LoadFineRSImage', backend_args=backend_args),
    dict(type='LoadFineRSMask'),
    dict(type='SampleGTPoints'),
    dict(
        type='ExplorerView',
        frame_size=frames['explorer_size'],
        region_size=frames['region_size']),
    dict(
        type='RefinerCrop',
        frame_size=frames['refiner_size'],
        min_side=frames['crop_min_side'],
        mode='random'),
    dict(type='PackFineRSInputs'),
]
# At test time the refiner crop comes from the explorer's predicted region (inside the model, from
# the packed original image); the GT mask is loaded for the metrics only.
test_pipeline = [
    dict(type='LoadFineRSImage', backend_args=backend_args),
    dict(type='LoadFineRSMask'),
    dict(
        type='ExplorerView',
        frame_size=frames['explorer_size'],
        region_size=frames['region_size']),
    # 'original': the full-resolution image the model crops for the refiner
    dict(type='PackFineRSInputs', views=('explorer', 'original')),
]

# GRPO: a batch is a batch of prompts, one per GPU per iteration; the training configs accumulate
# iterations up to the authors' prompts per optimiser step. Restrict the tasks with
# filter_cfg=dict(question_types=('segmentation', 'multiple_choice', 'open')).
train_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=ann_files['train'],
        data_prefix=data_prefix,
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=ann_files['val'],
        data_prefix=data_prefix,
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = dict(
    val_dataloader, dataset=dict(val_dataloader['dataset'], ann_file=ann_files['test']))

# gIoU / cIoU (per size bucket), MVQA / OVQA accuracy of the whole chain; an empty GT and an empty
# prediction together count as IoU 1 (FineRS-4k has no empty GT); every figure in percent. MVQA /
# OVQA judge the answers by the protocol's rule, MVQA_<other> / OVQA_<other> by the other rule
val_evaluator = dict(type='FineRSMetric', empty_rule='one')
test_evaluator = val_evaluator
