# The tiny FineRS chain (finers_tiny_test.py) on RefCOCO-format files, for tests and a CPU smoke
# run:
#   python tools/misc/build_tiny_models.py work_dirs/tiny_models
#   python tools/test.py configs/benchmarks/refcoco_finers_tiny.py \
#       --cfg-options test_dataloader.dataset.dataset.data_root=<folder holding refcoco/>
# The dataset block is refcoco_finers_qwen7b.py's (configs/_base_/datasets/refcoco.py).
_base_ = ['../finers/finers_tiny_test.py', '../_base_/datasets/refcoco.py']

val_dataloader = dict(dataset=dict(_base_.refcoco_dataset, _delete_=True))
test_dataloader = val_dataloader
val_evaluator = dict(_base_.refcoco_evaluator, _delete_=True)
test_evaluator = val_evaluator
