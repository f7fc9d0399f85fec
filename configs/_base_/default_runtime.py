# Runtime shared by every finers_mm config (mmdet's default_runtime, in the finers_mm scope).
# finers_mm registries are children of mmdet's, so stock mmdet types (RetinaNet, CocoMetric, ...)
# build by name from here as well.
default_scope = 'finers_mm'
custom_imports = dict(imports=['finers_mm'], allow_failed_imports=False)
# the protocol every component runs by (finers_mm/structures/protocols.py, docs/fidelity.md):
# 'finers_mm' (ours) or 'authors' (the authors' code, byte for byte, their five bugs fixed); the
# config loader of finers_mm's tools hands it to each component that takes one
protocol = 'finers_mm'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=50, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # a config read without applying `frames` (stock tools) must not run with other sizes
    frames_check=dict(type='FramesCheckHook'),
    # ... nor with components that run by another protocol than the config's `protocol`
    protocol_check=dict(type='ProtocolCheckHook'),
    # a checkpoint that fits no part of the model (e.g. a stage's, given to the chain) is refused
    checkpoint_check=dict(type='CheckpointCheckHook'),
    # one drawing per question (several questions share an image): tools/test.py --show-dir DIR
    visualization=dict(type='FineRSVisualizationHook'))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # nccl on GPUs; CPU runs (tests, the tiny demo) override with gloo
    dist_cfg=dict(backend='nccl'))

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='FineRSVisualizer', vis_backends=vis_backends, name='visualizer')
# FineRS trains for a number of GRPO steps, not epochs
log_processor = dict(type='LogProcessor', window_size=10, by_epoch=False)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
