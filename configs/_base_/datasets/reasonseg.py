# ReasonSeg (LISA) as FineRS segmentation questions: the dataset block of
# configs/benchmarks/reasonseg_finers_*.py. Names are prefixed (reasonseg_*) so a config can list
# this file beside a base that already defines the FineRS-4k dataloaders; the child assigns them.
#
# LISA's release (github.com/dvlab-research/LISA#dataset, Google Drive "ReasonSeg"): unpack it so
# that each split folder holds <name>.jpg + <name>.json:
#   data/reason_seg/ReasonSeg/{train,val,test}/
# val: 200 images; test: 779 (LISA's "short query" / "long query" subsets are its is_sentence).
reasonseg_data_root = 'data/reason_seg/ReasonSeg/'
reasonseg_backend_args = None

# The explorer's frame comes from the config's `frames` (finers_mm's loader sets it); LISA's label
# map is rasterised in LoadReasonSegMask, its ignore region travels to the metric in the metainfo.
reasonseg_test_pipeline = [
    dict(type='LoadFineRSImage', backend_args=reasonseg_backend_args),
    dict(type='LoadReasonSegMask'),
    dict(type='ExplorerView'),
    dict(
        type='PackFineRSInputs',
        views=('explorer', 'original'),
        meta_keys=('img_path', 'img_id', 'ann_index', 'ann_id', 'sample_idx', 'ori_shape',
                   'img_shape', 'question', 'question_type', 'options', 'answer',
                   'explorer_frame', 'region_size', 'gt_bbox_explorer', 'json_path',
                   'text_index', 'is_sentence', 'query_type', 'gt_ignore_mask')),
]
# split: data_prefix=dict(img='val/' | 'test/'); queries: 'first' (LISA's evaluation: each image's
# first text) | 'all'; query_types: None (both, each reported by the metric) | ['short'] | ['long']
reasonseg_dataset = dict(
    type='ReasonSegDataset',
    data_root=reasonseg_data_root,
    data_prefix=dict(img='val/'),
    queries='first',
    query_types=None,
    test_mode=True,
    pipeline=reasonseg_test_pipeline,
    backend_args=reasonseg_backend_args)
# The hub's parquet mirror (Ricky06662/ReasonSeg_val, ReasonSeg_test: one query per image, no
# ignore region, no is_sentence): swap the dataset for
#   dict(type='ReasonSegParquetDataset', ann_file='data/ReasonSeg_val/data/', test_mode=True,
#        pipeline=reasonseg_test_pipeline)
reasonseg_parquet_dataset = dict(
    type='ReasonSegParquetDataset',
    ann_file='data/ReasonSeg_val/data/',
    test_mode=True,
    pipeline=reasonseg_test_pipeline)

# gIoU / cIoU as LISA computes them (ignore pixels out, both-empty = 1), overall and short / long
reasonseg_evaluator = dict(type='ReasonSegMetric')
