# FineRS-7B on HR-Bench 8K, zero-shot (paper: 58.1). The GSE stage answers (qa_stage='explorer', the
# authors' evaluation); accuracy per option-order cycle, then averaged; per category FSP / FCP
# (HRBenchMetric). The TSV is read lazily (one row's image at a time).
#   python tools/test.py configs/benchmarks/hrbench8k_finers_qwen7b.py
#   bash tools/dist_test.sh configs/benchmarks/hrbench8k_finers_qwen7b.py none 8
_base_ = ['../finers/finers_qwen7b_test.py', '../_base_/datasets/vqa_benchmarks.py']

model = dict(qa_stage='explorer')
test_dataloader = dict(dataset=_base_.hrbench8k_dataset)
val_dataloader = test_dataloader
test_evaluator = dict(type='HRBenchMetric', _delete_=True)
val_evaluator = test_evaluator
