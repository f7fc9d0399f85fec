# RefCOCO / RefCOCO+ / RefCOCOg through mmdet's own RefCocoDataset, one FineRS segmentation question
# per referring expression: the dataset block of configs/benchmarks/refcoco*_finers_*.py. Names are
# prefixed (refcoco_*) so a config can list this file beside the FineRS-4k dataloaders' base.
#
# Files as mmdet lays them out (mmdet docs, "RefCOCO"): COCO train2014 images and the refer
# annotations converted to instances.json:
#   data/coco/train2014/*.jpg
#   data/coco/refcoco/{instances.json, refs(unc).p}     splits val, testA, testB
#   data/coco/refcoco+/{instances.json, refs(unc).p}    splits val, testA, testB
#   data/coco/refcocog/{instances.json, refs(umd).p}    splits val, test
refcoco_data_root = 'data/coco/'
refcoco_backend_args = None

# mmdet's LoadAnnotations rasterises the COCO polygons (pycocotools, the benchmark's raster);
# RefExpressionToQuestion turns the expression into the question; 'gt_masks' is packed where
# RefSegMetric reads it. The image is read RGB by finers_mm's reader (mmdet's LoadImageFromFile
# gives BGR, which the VLM and SAM do not expect).
refcoco_test_pipeline = [
    dict(type='LoadFineRSImage', backend_args=refcoco_backend_args),
    dict(
        type='LoadAnnotations',
        with_mask=True,
        with_bbox=False,
        with_seg=False,
        with_label=False),
    dict(type='RefExpressionToQuestion'),
    dict(type='ExplorerView'),
    dict(
        type='PackFineRSInputs',
        views=('explorer', 'original'),
        meta_keys=('img_path', 'img_id', 'sample_idx', 'expression_index', 'ori_shape',
                   'img_shape', 'question', 'question_type', 'options', 'answer',
                   'explorer_frame', 'region_size', 'gt_bbox_explorer', 'text', 'gt_masks')),
]
# text_mode: 'select_first' (mmdet's RefCOCO configs: the first sentence of each referred object)
# or 'original' (every sentence, as LISA's evaluation); never 'random' (unseeded in mmdet)
refcoco_dataset = dict(
    type='RefCocoQuestions',
    dataset=dict(
        type='RefCocoDataset',
        data_root=refcoco_data_root,
        data_prefix=dict(img_path='train2014/'),
        ann_file='refcoco/instances.json',
        split_file='refcoco/refs(unc).p',
        split='val',
        text_mode='select_first',
        test_mode=True,
        pipeline=refcoco_test_pipeline))

# mmdet's RefSegMetric (cIoU, mIoU, percent); FineRSRefSegMetric only scores a sample without a
# predicted mask (FineRS's "not found" / invalid answer) as an all-background mask, where plain
# RefSegMetric raises (mmdet 3.3)
refcoco_evaluator = dict(type='FineRSRefSegMetric', metric=['cIoU', 'mIoU'])
