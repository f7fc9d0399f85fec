# FineRS-7B on V* Bench, zero-shot (paper: 77.5). The GSE stage answers (qa_stage='explorer', the
# authors' evaluation); accuracy per subset and overall (VStarMetric).
#   python tools/test.py configs/benchmarks/vstar_finers_qwen7b.py
#   bash tools/dist_test.sh configs/benchmarks/vstar_finers_qwen7b.py none 8
_base_ = ['../finers/finers_qwen7b_test.py', '../_base_/datasets/vqa_benchmarks.py']

model = dict(qa_stage='explorer')
test_dataloader = dict(dataset=_base_.vstar_dataset)
val_dataloader = test_dataloader
test_evaluator = dict(type='VStarMetric', _delete_=True)
val_evaluator = test_evaluator
