# Copyright (c) finers_mm contributors. All rights reserved.
"""The finers_mm registries build both plugin and stock mmdet components by type name."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope

from finers_mm import registry
from finers_mm.testing import REPO_ROOT


@pytest.fixture(autouse=True)
def _finers_scope():
    init_default_scope('finers_mm')
    yield


def test_every_registry_is_a_child_of_mmdet():
    import mmdet.registry as mmdet_registry
    names = ['RUNNERS', 'LOOPS', 'HOOKS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS',
             'OPTIMIZERS', 'OPTIM_WRAPPERS', 'PARAM_SCHEDULERS', 'METRICS', 'EVALUATOR',
             'VISUALIZERS', 'VISBACKENDS', 'LOG_PROCESSORS', 'TASK_UTILS', 'MODEL_WRAPPERS']
    for name in names:
        ours = getattr(registry, name)
        assert ours.scope == 'finers_mm', name
        assert ours.parent is getattr(mmdet_registry, name), name


def test_rewards_registry_builds_registered_terms():
    @registry.REWARDS.register_module(name='_ConstantRewardForTest', force=True)
    class ConstantReward:

        def __init__(self, value):
            self.value = value

    term = registry.REWARDS.build(dict(type='_ConstantRewardForTest', value=0.5))
    assert isinstance(term, ConstantReward) and term.value == 0.5
    with pytest.raises(KeyError):
        registry.REWARDS.build(dict(type='NoSuchReward'))


def test_stock_mmdet_types_build_in_the_finers_scope():
    from mmdet.evaluation import CocoMetric
    from mmdet.models import RetinaNet
    from mmdet.models.backbones import ResNet
    backbone = registry.MODELS.build(dict(type='ResNet', depth=18))
    assert isinstance(backbone, ResNet)
    metric = registry.METRICS.build(dict(type='CocoMetric', ann_file=None, metric='bbox'))
    assert isinstance(metric, CocoMetric)
    detector_cfg = dict(
        type='RetinaNet',
        data_preprocessor=dict(type='DetDataPreprocessor'),
        backbone=dict(type='ResNet', depth=18, out_indices=(1, 2, 3)),
        neck=dict(type='FPN', in_channels=[128, 256, 512], out_channels=16, start_level=0,
                  add_extra_convs='on_input', num_outs=3),
        bbox_head=dict(
            type='RetinaHead', num_classes=1, in_channels=16, feat_channels=16, stacked_convs=1,
            anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                                  scales_per_octave=1, ratios=[1.0], strides=[8, 16, 32]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4,
                            target_stds=[1.0] * 4),
            loss_cls=dict(type='FocalLoss', use_sigmoid=True),
            loss_bbox=dict(type='L1Loss')),
        train_cfg=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4),
                       sampler=dict(type='PseudoSampler'), allowed_border=-1, pos_weight=-1),
        test_cfg=dict(nms_pre=10, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
                      max_per_img=5))
    assert isinstance(registry.MODELS.build(detector_cfg), RetinaNet)


def test_plugin_types_resolve_from_the_mmdet_scope_with_a_prefix():
    """A stock mmdet config (default_scope='mmdet') reaches finers_mm components as 'finers_mm.X'."""

    @registry.MODELS.register_module(name='_PluginModuleForTest', force=True)
    class PluginModule:
        pass

    from mmdet.registry import MODELS as MMDET_MODELS
    with DefaultScope.overwrite_default_scope('mmdet'):
        assert MMDET_MODELS.get('finers_mm._PluginModuleForTest') is PluginModule
        assert MMDET_MODELS.get('_PluginModuleForTest') is None


def test_default_runtime_config_names_the_finers_scope_and_plugin_import():
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs/_base_/default_runtime.py'))
    assert cfg.default_scope == 'finers_mm'
    assert cfg.custom_imports.imports == ['finers_mm']
    assert cfg.default_hooks.checkpoint.type == 'CheckpointHook'
