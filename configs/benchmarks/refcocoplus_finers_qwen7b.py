# FineRS-7B on RefCOCO+ (splits val, testA, testB), as refcoco_finers_qwen7b.py:
#   python tools/test.py configs/benchmarks/refcocoplus_finers_qwen7b.py \
#       --cfg-options test_dataloader.dataset.dataset.split=testA
# cIoU reported by LISA-7B (LISA paper, Table 2): val 62.4, testA 67.4, testB 56.5.
_base_ = ['./refcoco_finers_qwen7b.py']

val_dataloader = dict(
    dataset=dict(
        dataset=dict(ann_file='refcoco+/instances.json', split_file='refcoco+/refs(unc).p')))
test_dataloader = val_dataloader
