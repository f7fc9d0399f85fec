# The high-resolution VQA benchmarks of the FineRS paper (zero-shot): V*, HR-Bench 4K / 8K and
# MME-RealWorld, read from their published files (finers_mm/datasets/benchmarks/, README table
# "Public benchmarks"). A benchmark config lists this file after its model config and picks one
# dataset and its metric:
#   test_dataloader = dict(dataset=_base_.vstar_dataset)
#   test_evaluator = dict(type='VStarMetric', _delete_=True)
# Only new names here (no key of the FineRS-4k dataset base), so both bases merge.

# No GT mask (VQA questions): FineRS-4k's test pipeline without LoadFineRSMask. The explorer view
# and the original image go to the chain; the frame sizes come from the config's `frames`
# (finers_mm's loader sets them). 'benchmark' carries each benchmark's own fields (subset,
# category, cycle, task) to its metric; the other keys are PackFineRSInputs' defaults.
vqa_test_pipeline = [
    dict(type='LoadFineRSImage'),
    dict(type='ExplorerView'),
    dict(
        type='PackFineRSInputs',
        views=('explorer', 'original'),
        meta_keys=('img_path', 'img_id', 'ann_index', 'sample_idx', 'ori_shape', 'img_shape',
                   'question', 'question_type', 'options', 'options_raw', 'answer', 'attribute',
                   'area_percent', 'size_bucket', 'best_region', 'region', 'explorer_frame',
                   'region_size', 'benchmark')),
]

# V* (craigwu/vstar_bench): <data_root>/test_questions.jsonl, direct_attributes/, relative_position/
# (image + JSON of the same name). Options shuffled per question with shuffle_seed (the files list
# the correct one first).
vstar_dataset = dict(
    _delete_=True,
    type='VStarDataset',
    data_root='data/vstar_bench/',
    ann_file='test_questions.jsonl',
    shuffle_seed=0,
    test_mode=True,
    pipeline=vqa_test_pipeline)

# HR-Bench (DreamMr/HR-Bench): the TSVs with base64 images (or the parquet variant: point
# ann_file at the .parquet file or a folder of shards). Images decoded lazily, one row at a time.
hrbench4k_dataset = dict(
    _delete_=True,
    type='HRBenchDataset',
    data_root='data/HR-Bench/',
    ann_file='hr_bench_4k.tsv',
    test_mode=True,
    pipeline=vqa_test_pipeline)
hrbench8k_dataset = dict(hrbench4k_dataset, ann_file='hr_bench_8k.tsv')

# MME-RealWorld (yifanzhang114/MME-RealWorld): <data_root>/MME_RealWorld.json and the unpacked image
# folders; each record's "Image" is relative to data_prefix['img'].
mme_realworld_dataset = dict(
    _delete_=True,
    type='MMERealWorldDataset',
    data_root='data/MME-RealWorld/',
    ann_file='MME_RealWorld.json',
    data_prefix=dict(img=''),
    test_mode=True,
    pipeline=vqa_test_pipeline)
