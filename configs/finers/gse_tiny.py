# GSE GRPO with the tiny local models on the bundled synthetic data, on CPU. The bundled records have
# no best_region, so this reward leaves out the two retrospective terms (with them, GRPOHook refuses
# to start); the region is rewarded for containing the GT box and for its size.
#   python tools/train.py configs/finers/gse_tiny.py
_base_ = ['./gse_qwen7b.py']

tiny_models = 'work_dirs/tiny_models'
model = dict(
    vlm=dict(
        _delete_=True,
        type='Qwen25VLAdapter',
        pretrained=tiny_models + '/qwen2_5_vl',
        generation=dict(max_new_tokens=48)))
tiny_reward = dict(
    type='CompositeReward',
    terms=[
        dict(type='ThinkFormatReward'),
        dict(type='JsonFormatReward'),
        dict(type='RegionContainsReward'),
        dict(type='RegionSizeReward', tolerance=15.0),
        dict(type='AnswerReward'),
    ])
custom_hooks = [
    dict(type='GRPOHook', reward=tiny_reward, num_generations=4, temperature=1.0, top_p=1.0,
         max_new_tokens=48)
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
