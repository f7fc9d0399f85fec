# FineRS-7B (finers_qwen7b_test.py: the authors' protocol and weights) on RefCOCO through mmdet's
# own RefCocoDataset, each referring expression a FineRS segmentation question, scored by mmdet's
# RefSegMetric (cIoU, mIoU):
#   python tools/test.py configs/benchmarks/refcoco_finers_qwen7b.py                      (val)
#   python tools/test.py configs/benchmarks/refcoco_finers_qwen7b.py \
#       --cfg-options test_dataloader.dataset.dataset.split=testA                        (testA)
#   bash tools/dist_test.sh configs/benchmarks/refcoco_finers_qwen7b.py none 8
# RefCOCO+ / RefCOCOg: refcocoplus_finers_qwen7b.py / refcocog_finers_qwen7b.py. Keys:
# test_dataloader.dataset.dataset.split, .text_mode ('select_first', mmdet's | 'original', every
# sentence as LISA). Files: configs/_base_/datasets/refcoco.py.
# cIoU reported by LISA-7B (LISA paper, Table 2): RefCOCO val 74.1, testA 76.5, testB 71.1.
_base_ = ['../finers/finers_qwen7b_test.py', '../_base_/datasets/refcoco.py']

val_dataloader = dict(dataset=dict(_base_.refcoco_dataset, _delete_=True))
test_dataloader = val_dataloader
val_evaluator = dict(_base_.refcoco_evaluator, _delete_=True)
test_evaluator = val_evaluator
