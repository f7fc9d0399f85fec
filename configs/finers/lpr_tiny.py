# LPR GRPO with the tiny local models on the bundled synthetic data, on CPU (tests, the quick start).
# Build the models first: python tools/misc/build_tiny_models.py work_dirs/tiny_models
#   python tools/train.py configs/finers/lpr_tiny.py
_base_ = ['./lpr_qwen7b.py']

tiny_models = 'work_dirs/tiny_models'
model = dict(
    vlm=dict(
        _delete_=True,
        type='Qwen25VLAdapter',
        pretrained=tiny_models + '/qwen2_5_vl',
        generation=dict(max_new_tokens=48)))
custom_hooks = [
    dict(type='GRPOHook', reward={{_base_.lpr_reward}}, num_generations=4, temperature=1.0,
         top_p=1.0, max_new_tokens=48)
]

train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root='finers_mm/data/synthetic/', ann_file='annotations/train.json'))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-2),
    clip_grad=dict(max_norm=1.0))
train_cfg = dict(max_iters=4, val_interval=4)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
auto_scale_lr = dict(base_batch_size=2)
