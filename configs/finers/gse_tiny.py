# GSE GRPO with the tiny local models on the bundled synthetic data, on CPU: the settings of
# lpr_tiny.py (an answer is ~45 tokens here).
#   python tools/train.py configs/finers/gse_tiny.py
# The bundled records have no best_region, so nothing but RegionSizeReward keeps the region small,
# and a region blown up to the whole image contains every GT box: a tiny model that rarely hits the
# size band learns exactly that. Search best_region and use the authors' reward (gse_qwen7b.py) to
# train the region's position for real.
_base_ = ['../_base_/models/gse_qwen25vl.py', '../_base_/schedules/tiny_cpu.py']

model = dict(
    vlm=dict(_base_.tiny_vlm, _delete_=True, generation=dict(max_new_tokens=64)),
    think_template='Locate.')
# the authors' GSE reward without its two retrospective terms (with them, on records without
# best_region, GRPOHook refuses to start)
tiny_reward = dict(
    _base_.gse_reward,
    terms=[
        term for term in _base_.gse_reward.terms
        if term.type not in ('RegionIoUReward', 'RegionL1Reward')
    ])
custom_hooks = [dict(type='GRPOHook', reward=tiny_reward, num_generations=4, temperature=0.7)]
# 80 iterations at 2e-4: at lpr_tiny.py's 5e-4 the explorer's GRPO from its warm-up is unstable
optim_wrapper = dict(optimizer=dict(lr=2e-4))
train_cfg = dict(max_iters=80, val_interval=80)
# training only
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None
