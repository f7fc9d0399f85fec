# The embedded default: the FineRS chain with the tiny local models on the bundled synthetic data,
# on CPU. Build the models first (the quick start does):
#   python tools/misc/build_tiny_models.py work_dirs/tiny_models
#   python tools/test.py configs/finers/finers_tiny_test.py
# The weights are random: expect mostly invalid outputs, reported by FineRSMetric's invalid_rate.
_base_ = ['./finers_qwen7b_test.py']

tiny_models = 'work_dirs/tiny_models'
tiny_vlm = dict(
    _delete_=True,
    type='Qwen25VLAdapter',
    dtype='float32',
    freeze=True,
    generation=dict(max_new_tokens=64, do_sample=False))

model = dict(
    explorer=dict(vlm=dict(tiny_vlm, pretrained=tiny_models + '/qwen2_5_vl')),
    refiner=dict(vlm=dict(tiny_vlm, pretrained=tiny_models + '/qwen2_5_vl')),
    mask_head=dict(
        _delete_=True,
        type='SAMMaskHead',
        model_type='tiny',
        config=tiny_models + '/sam_tiny.json',
        checkpoint=tiny_models + '/sam_tiny.pth'))

data_root = 'finers_mm/data/synthetic/'
tiny_loader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, ann_file='annotations/train.json'))
val_dataloader = tiny_loader
test_dataloader = tiny_loader

env_cfg = dict(dist_cfg=dict(backend='gloo'))
default_hooks = dict(logger=dict(interval=1))
