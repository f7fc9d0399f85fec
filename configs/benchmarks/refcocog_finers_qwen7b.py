# FineRS-7B on RefCOCOg, UMD split (splits val, test), as refcoco_finers_qwen7b.py:
#   python tools/test.py configs/benchmarks/refcocog_finers_qwen7b.py \
#       --cfg-options test_dataloader.dataset.dataset.split=test
# cIoU reported by LISA-7B (LISA paper, Table 2): val(U) 66.4, test(U) 68.5.
_base_ = ['./refcoco_finers_qwen7b.py']

val_dataloader = dict(
    dataset=dict(
        dataset=dict(ann_file='refcocog/instances.json', split_file='refcocog/refs(umd).p')))
test_dataloader = val_dataloader
