# The tiny FineRS chain (finers_tiny_test.py) on ReasonSeg, for tests and a CPU smoke run:
#   python tools/misc/build_tiny_models.py work_dirs/tiny_models
#   python tools/test.py configs/benchmarks/reasonseg_finers_tiny.py \
#       --cfg-options test_dataloader.dataset.data_root=<folder holding val/>
# The dataset block is reasonseg_finers_qwen7b.py's (configs/_base_/datasets/reasonseg.py).
_base_ = ['../finers/finers_tiny_test.py', '../_base_/datasets/reasonseg.py']

val_dataloader = dict(dataset=dict(_base_.reasonseg_dataset, _delete_=True))
test_dataloader = val_dataloader
val_evaluator = dict(_base_.reasonseg_evaluator, _delete_=True)
test_evaluator = val_evaluator
