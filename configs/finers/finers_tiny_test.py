# The embedded default: the FineRS chain with the tiny local models on the bundled synthetic data,
# on CPU. Build the models first (the quick start does):
#   python tools/misc/build_tiny_models.py work_dirs/tiny_models
#   python tools/test.py configs/finers/finers_tiny_test.py
# The weights are random: expect mostly invalid outputs, reported by FineRSMetric's invalid_rate.
_base_ = ['../_base_/models/finers_qwen25vl.py', '../_base_/schedules/tiny_cpu.py']

# frozen, greedy, 64 new tokens
chain_vlm = dict(
    _base_.tiny_vlm,
    _delete_=True,
    freeze=True,
    generation=dict(max_new_tokens=64, do_sample=False))
model = dict(
    explorer=dict(vlm=chain_vlm),
    refiner=dict(vlm=chain_vlm),
    mask_head=dict(
        _delete_=True,
        type='SAMMaskHead',
        model_type='tiny',
        config=_base_.tiny_models + '/sam_tiny.json',
        checkpoint=_base_.tiny_models + '/sam_tiny.pth'))

# inference only
train_dataloader = train_cfg = optim_wrapper = param_scheduler = None
