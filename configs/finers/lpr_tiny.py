# LPR GRPO with the tiny local models on the bundled synthetic data, on CPU (tests, the quick start).
# Build the models first: python tools/misc/build_tiny_models.py work_dirs/tiny_models
#   python tools/train.py configs/finers/lpr_tiny.py
# The quick start (tools/misc/quickstart.py) warms the model up with lpr_tiny_sft.py, exports it
# (tools/misc/export_stage.py) and starts this run from the export (model.vlm.pretrained=...), on
# its own generated training set (train_dataloader.dataset.data_root=...).
#
# Tuned for a tiny model trained for minutes on 2 CPU cores (the 7B settings are in lpr_qwen7b.py):
# a short <think> (think_template) keeps the SFT target at ~65 tokens, so 96 new tokens hold a
# whole answer; sampling at temperature 0.7 (the authors: 1.0) because a tiny model warmed up for
# a few hundred steps writes a well-formed answer in only ~15 % of its samples at 1.0 (boxes with
# x2 < x1), ~25-50 % at 0.7: GRPO needs both kinds in a group to learn from.
_base_ = ['./lpr_qwen7b.py']

tiny_models = 'work_dirs/tiny_models'
model = dict(
    vlm=dict(
        _delete_=True,
        type='Qwen25VLAdapter',
        pretrained=tiny_models + '/qwen2_5_vl',
        generation=dict(max_new_tokens=96)),
    think_template='Locate.')
custom_hooks = [
    dict(type='GRPOHook', reward={{_base_.lpr_reward}}, num_generations=4, temperature=0.7,
         top_p=1.0, max_new_tokens=96)
]

# InfiniteSampler: with DefaultSampler, mmengine's iteration-based loop sleeps 2 s at the end of
# every epoch (_InfiniteDataloaderIterator), i.e. every 3 iterations on the 12 bundled records, and
# at every SFT step (16 prompts); an infinite sampler never ends an epoch (and resumes exactly)
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(data_root='finers_mm/data/synthetic/', ann_file='annotations/train.json'))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=1e-2),
    clip_grad=dict(max_norm=1.0))
train_cfg = dict(max_iters=100, val_interval=100)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=20))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
auto_scale_lr = dict(base_batch_size=4)
