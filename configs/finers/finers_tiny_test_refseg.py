# The tiny chain of finers_tiny_test.py scored by FineRSMetric AND by mmdet's RefSegMetric (cIoU /
# mIoU of mmdet's RefCOCO configs), on the same predictions:
#   python tools/test.py configs/finers/finers_tiny_test_refseg.py
#
# FineRSRefSegMetric is RefSegMetric with one change (finers_mm/evaluation/refseg_metric.py): a
# sample without a predicted mask (FineRSDetector's 0 instances) is scored as an all-False mask,
# where plain RefSegMetric raises (mmdet 3.3: "cannot reshape tensor of 0 elements"); a sample's K
# masks count as their union. Its cIoU is FineRSMetric's cIoU; its mIoU is FineRSMetric's gIoU with
# empty_rule='zero' (the same whenever no GT is empty, as in FineRS-4k).
_base_ = ['./finers_tiny_test.py']

# 'gt_masks' also packs the GT mask (the same object as gt_instances.masks) in the metainfo, where
# mmdet's RefCOCO pipelines put it and plain RefSegMetric reads it: only needed to add plain
# RefSegMetric or another metric reading data_sample['gt_masks'] (FineRSRefSegMetric falls back to
# gt_instances.masks). With it, `tools/test.py --out` writes one full-size bitmap per sample.
test_pipeline = _base_.test_pipeline
test_pipeline[-1]['meta_keys'] = (
    'img_path', 'img_id', 'ann_index', 'sample_idx', 'ori_shape', 'img_shape', 'question',
    'question_type', 'options', 'options_raw', 'answer', 'attribute', 'area_percent',
    'size_bucket', 'best_region', 'region', 'explorer_frame', 'region_size', 'refiner_frame', 'crop_window', 'gt_bbox_explorer',
    'gt_region_explorer', 'best_region_explorer', 'gt_bbox_refiner', 'gt_points_refiner',
    'gt_masks')
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = [
    dict(type='FineRSMetric'),  # finers/gIoU, finers/cIoU, ... (empty_rule='one')
    dict(type='FineRSRefSegMetric', metric=['cIoU', 'mIoU']),  # cIoU, mIoU, as RefSegMetric's
]
test_evaluator = val_evaluator
