# The tiny CPU chain on hrbench8k's files (tests: tests/test_tools/test_benchmark_configs_vqa.py). Build the
# tiny models first (python tools/misc/build_tiny_models.py work_dirs/tiny_models) and point
# test_dataloader.dataset.data_root at the benchmark's files.
_base_ = ['../finers/finers_tiny_test.py', '../_base_/datasets/vqa_benchmarks.py']

model = dict(qa_stage='explorer')
test_dataloader = dict(dataset=_base_.hrbench8k_dataset)
val_dataloader = test_dataloader
test_evaluator = dict(type='HRBenchMetric', _delete_=True)
val_evaluator = test_evaluator
