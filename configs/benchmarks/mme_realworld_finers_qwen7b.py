# FineRS-7B on MME-RealWorld, zero-shot (not in the paper). The GSE stage answers
# (qa_stage='explorer'); letter exact match A-E overall, per Task and per Task/Subtask
# (MMERealWorldMetric).
#   python tools/test.py configs/benchmarks/mme_realworld_finers_qwen7b.py
#   bash tools/dist_test.sh configs/benchmarks/mme_realworld_finers_qwen7b.py none 8
_base_ = ['../finers/finers_qwen7b_test.py', '../_base_/datasets/vqa_benchmarks.py']

model = dict(qa_stage='explorer')
test_dataloader = dict(dataset=_base_.mme_realworld_dataset)
val_dataloader = test_dataloader
test_evaluator = dict(type='MMERealWorldMetric', _delete_=True)
val_evaluator = test_evaluator
