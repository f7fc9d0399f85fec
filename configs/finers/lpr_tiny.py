# LPR GRPO with the tiny local models on the bundled synthetic data, on CPU (tests, the quick
# start): the authors' reward and loss (lpr_qwen7b.py), sampling set for a tiny model trained for
# minutes.
#   python tools/misc/build_tiny_models.py work_dirs/tiny_models      (once)
#   python tools/train.py configs/finers/lpr_tiny.py
# The quick start (tools/misc/quickstart.py) warms the model up with lpr_tiny_sft.py, exports it
# (tools/misc/export_stage.py) and starts this run from the export (model.vlm.pretrained=...), on
# its own generated training set (train_dataloader.dataset.data_root=...).
_base_ = ['../_base_/models/lpr_qwen25vl.py', '../_base_/schedules/tiny_cpu.py']

# a short <think> (think_template) keeps an answer at ~65 tokens, so 96 new tokens hold it whole
model = dict(
    vlm=dict(_base_.tiny_vlm, _delete_=True, generation=dict(max_new_tokens=96)),
    think_template='Locate.')
# 4 samples at temperature 0.7 (the authors: 8 at 1.0): a tiny model warmed up for minutes writes
# few well-formed answers at 1.0, and a group needs both kinds for GRPO to learn from
custom_hooks = [
    dict(type='GRPOHook', reward=_base_.lpr_reward, num_generations=4, temperature=0.7)
]
# training only
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None
