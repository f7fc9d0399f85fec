# FineRS-7B (finers_qwen7b_test.py: the authors' protocol and weights) on ReasonSeg, each query a
# FineRS segmentation question, scored by LISA's gIoU / cIoU (ignore regions out, both-empty = 1):
#   python tools/test.py configs/benchmarks/reasonseg_finers_qwen7b.py                  (val)
#   python tools/test.py configs/benchmarks/reasonseg_finers_qwen7b.py \
#       --cfg-options test_dataloader.dataset.data_prefix.img=test/                     (test)
#   bash tools/dist_test.sh configs/benchmarks/reasonseg_finers_qwen7b.py none 8
# Keys: test_dataloader.dataset.data_prefix.img ('val/' | 'test/'), .queries ('first': LISA's
# evaluation, the first text of each image | 'all'), .query_types (None: both, reported as
# reasonseg/short_* and reasonseg/long_* | short | long).
# Files: configs/_base_/datasets/reasonseg.py.
# LISA-7B as LISA's paper reports it (Table 1, gIoU / cIoU): val 44.4 / 46.0, test 36.8 / 34.1.
_base_ = ['../finers/finers_qwen7b_test.py', '../_base_/datasets/reasonseg.py']

val_dataloader = dict(dataset=dict(_base_.reasonseg_dataset, _delete_=True))
test_dataloader = val_dataloader
val_evaluator = dict(_base_.reasonseg_evaluator, _delete_=True)
test_evaluator = val_evaluator
