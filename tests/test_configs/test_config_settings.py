# Copyright (c) finers_mm contributors. All rights reserved.
"""Every config of configs/ and projects/*/configs loads, read plainly builds the sizes of its
``frames``, and the training configs resolve to the settings they had before the configs were
organised in per-stage bases (pinned below).

A setting is compared as the built component gets it: the config's value, else the default of the
registered class (reward thresholds, GRPOLoss and GRPOHook settings are class defaults, the
authors'), and the rollout's ``max_new_tokens`` is the hook's, else the VLM's.
"""
import copy
import glob
import inspect
import os.path as osp
import sys

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from finers_mm.registry import HOOKS, MODELS, REWARDS, TRANSFORMS
from finers_mm.testing import REPO_ROOT
from finers_mm.utils.frames_config import FRAME_ARGUMENTS, apply_frames, checked_frames
from finers_mm.utils.run_config import load_config

if REPO_ROOT not in sys.path:  # the project configs import their package (custom_imports)
    sys.path.insert(0, REPO_ROOT)

CONFIGS = osp.join(REPO_ROOT, 'configs', 'finers')
ALL_CONFIGS = sorted(
    glob.glob(osp.join(CONFIGS, '*.py')) + glob.glob(osp.join(REPO_ROOT, 'projects', '*', 'configs',
                                                               '*.py')))
#: the thresholds of the reward terms
THRESHOLDS = ('iou_thr', 'max_l1', 'max_distance', 'tolerance', 'min_ratio', 'refiner_max_words')
LOSS_SETTINGS = ('clip_eps', 'clip_eps_high', 'kl_coef', 'kl_clamp', 'entropy_coef', 'loss_type')

_LPR_7B = {
    'model': 'LocalRefiner', 'pretrained': 'checkpoints/Qwen2.5-VL-7B-Instruct',
    'dtype': 'bfloat16', 'gradient_checkpointing': True, 'lora': None, 'freeze': False,
    'max_new_tokens': 1024, 'train_mode': 'grpo', 'think_template': 'default',
    'sizes': {'frame_size': [512, 512]},
    'loss': (0.2, None, 5e-3, 10.0, 1e-3, 'dapo'),
    'reward': (('think_format', {}), ('json_format', {}), ('box_iou', {'iou_thr': 0.5}),
               ('box_l1', {'max_l1': 10.0}), ('points', {'max_distance': 100.0}),
               ('answer', {'min_ratio': 0.8, 'refiner_max_words': 3})),
    'num_generations': 8, 'temperature': 1.0, 'top_p': 1.0,
    # sharded with FSDP (configs/_base_/strategies/fsdp.py): torch's AdamW on fp32 master shards
    'optim_wrapper': 'OptimWrapper', 'amp_dtype': None, 'optimizer': 'AdamW',
    'lr': 1e-6, 'weight_decay': 1e-2, 'clip_grad': 1.0, 'accumulative_counts': 4,
    'param_scheduler': [],
    'batch_size': 1, 'num_workers': 2, 'sampler': 'DefaultSampler', 'data_root': 'data/FineRS-4k/',
    'ann_file': 'annotations/train.json', 'max_iters': 800, 'checkpoint_interval': 100,
    'logger_interval': 10, 'dist_backend': 'nccl', 'base_batch_size': 16, 'validation': False,
    'runner_type': 'FlexibleRunner', 'strategy': 'finers_mm.FullyShardStrategy',
}
_GSE_7B = dict(
    _LPR_7B, model='GlobalExplorer', sizes={'region_size': 256},
    reward=(('think_format', {}), ('json_format', {}), ('region_iou', {'iou_thr': 0.9}),
            ('region_l1', {'max_l1': 20.0}), ('region_contains', {}),
            ('region_size', {'tolerance': 15.0}),
            ('answer', {'min_ratio': 0.8, 'refiner_max_words': 3})),
    accumulative_counts=1, ann_file='annotations/train_best_region.json', max_iters=200,
    checkpoint_interval=50, base_batch_size=8)
_LORA = dict(lora=dict(r=64, alpha=128, dropout=0.05), max_new_tokens=512, num_generations=4,
             lr=1e-5, optim_wrapper='AmpOptimWrapper', amp_dtype='bfloat16',
             optimizer='KahanAdamW', runner_type='Runner', strategy=None)
_SFT_7B = dict(train_mode='sft', reward=None, num_generations=None, temperature=None, top_p=None,
               lr=1e-5, accumulative_counts=1, batch_size=4, max_iters=500)
_TINY = dict(
    pretrained='work_dirs/tiny_models/qwen2_5_vl', dtype='float32', gradient_checkpointing=False,
    think_template='Locate.', num_generations=4, temperature=0.7, optim_wrapper='OptimWrapper',
    amp_dtype=None, optimizer='AdamW', accumulative_counts=1, batch_size=4, num_workers=0,
    sampler='InfiniteSampler',
    data_root='finers_mm/data/synthetic/', ann_file='annotations/train.json',
    checkpoint_interval=20, logger_interval=1, dist_backend='gloo', base_batch_size=4,
    runner_type=None, strategy=None)
_LPR_TINY = dict(_LPR_7B, **_TINY, max_new_tokens=96, lr=5e-4, max_iters=100)
_GSE_TINY = dict(
    _GSE_7B, **_TINY, max_new_tokens=64, lr=2e-4, max_iters=80,
    reward=tuple(term for term in _GSE_7B['reward'] if term[0] not in ('region_iou', 'region_l1')))
_TINY_SFT = dict(train_mode='sft', reward=None, num_generations=None, temperature=None,
                 top_p=None)
_WARMUP = dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20)

#: the resolved settings of every training config, as they were before the per-stage bases
TRAINING = {
    'lpr_qwen7b.py': _LPR_7B,
    'lpr_qwen3b.py': dict(_LPR_7B, pretrained='checkpoints/Qwen2.5-VL-3B-Instruct'),
    'lpr_qwen7b_lora.py': dict(_LPR_7B, **_LORA),
    'lpr_qwen7b_sft.py': dict(_LPR_7B, **_SFT_7B),
    'gse_qwen7b.py': _GSE_7B,
    'gse_qwen3b.py': dict(_GSE_7B, pretrained='checkpoints/Qwen2.5-VL-3B-Instruct'),
    'gse_qwen7b_lora.py': dict(_GSE_7B, **_LORA),
    'gse_qwen7b_sft.py': dict(_GSE_7B, **_SFT_7B),
    'gse_qwen7b_deepspeed.py': dict(
        _GSE_7B, optim_wrapper='DeepSpeedOptimWrapper', amp_dtype=None, optimizer='AdamW',
        clip_grad=None, runner_type='FlexibleRunner', strategy='DeepSpeedStrategy'),
    'lpr_tiny.py': _LPR_TINY,
    'lpr_tiny_fsdp.py': dict(_LPR_TINY, runner_type='FlexibleRunner',
                             strategy='finers_mm.FullyShardStrategy'),
    'lpr_tiny_sft.py': dict(
        _LPR_TINY, **_TINY_SFT, lr=1e-2, batch_size=16, max_iters=250, checkpoint_interval=250,
        param_scheduler=[_WARMUP, dict(type='CosineAnnealingLR', by_epoch=False, begin=20,
                                       end=250, eta_min=1e-5)]),
    'gse_tiny.py': _GSE_TINY,
    'gse_tiny_sft.py': dict(
        _GSE_TINY, **_TINY_SFT, lr=3e-3, batch_size=8, max_iters=300, checkpoint_interval=300,
        param_scheduler=[_WARMUP, dict(type='CosineAnnealingLR', by_epoch=False, begin=20,
                                       end=300, eta_min=1e-5)]),
    # the quick start's locating chain (tiny_cpu.py's tiny_loc_frames, the larger tiny model)
    'lpr_tiny_loc_sft.py': dict(
        _LPR_TINY, **_TINY_SFT, pretrained='work_dirs/tiny_models/qwen3_vl_locator',
        sizes=dict(frame_size=[256, 256]), lr=1e-3, batch_size=8, max_iters=4000,
        checkpoint_interval=1000,
        param_scheduler=[_WARMUP, dict(type='CosineAnnealingLR', by_epoch=False, begin=20,
                                       end=4000, eta_min=1e-5)]),
    'gse_tiny_loc_sft.py': dict(
        _GSE_TINY, **_TINY_SFT, pretrained='work_dirs/tiny_models/qwen3_vl_locator',
        sizes=dict(region_size=128), lr=1e-3, batch_size=8, max_iters=4000,
        checkpoint_interval=1000,
        param_scheduler=[_WARMUP, dict(type='CosineAnnealingLR', by_epoch=False, begin=20,
                                       end=4000, eta_min=1e-5)]),
    # its GRPO, from the stages tools/misc/train_tiny_locator.py ships
    # 1e-4: at 2e-4 the plain-init refiner's sampled answers broke in the last 20 iterations
    'lpr_tiny_loc.py': dict(_LPR_TINY, pretrained='finers_mm/data/tiny_locator/refiner',
                            sizes=dict(frame_size=[256, 256]), lr=1e-4),
    # 5e-5: at gse_tiny.py's 2e-4 the shipped explorer's held-out window recall fell
    'gse_tiny_loc.py': dict(_GSE_TINY, pretrained='finers_mm/data/tiny_locator/explorer',
                            sizes=dict(region_size=128), lr=5e-5),
}


def _with_defaults(registry, cfg: dict) -> dict:
    """``cfg`` with the defaults of its registered class filled in (what the component gets); the
    defaults of the base classes count where a subclass passes ``**kwargs`` on."""
    resolved = {}
    for cls in reversed(registry.get(cfg['type']).__mro__):
        if '__init__' in vars(cls) and cls is not object:
            parameters = inspect.signature(vars(cls)['__init__']).parameters
            resolved.update({name: parameter.default for name, parameter in parameters.items()
                             if parameter.default is not inspect.Parameter.empty})
    resolved.update({key: value for key, value in cfg.items() if key != 'type'})
    return resolved


def _as_plain(value):
    """ConfigDicts as dicts and tuples as lists, for comparing with the literals above."""
    if isinstance(value, dict):
        return {key: _as_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_plain(item) for item in value]
    return value


def _settings(cfg: Config) -> dict:
    """The settings that matter of a stage training config, resolved."""
    model = cfg.model
    vlm = _with_defaults(MODELS, model.vlm)
    stage = _with_defaults(MODELS, model)
    # built: its loss_type defaults to None, resolved from its protocol by GRPOLoss itself
    loss = MODELS.build(dict(type='GRPOLoss', **(model.get('grpo_loss') or {})))
    hooks = [hook for hook in cfg.get('custom_hooks', []) if hook['type'] == 'GRPOHook']
    hook = _with_defaults(HOOKS, hooks[0]) if hooks else None
    reward = None
    if hook is not None:
        terms = [_with_defaults(REWARDS, term) for term in hook['reward']['terms']]
        names = [REWARDS.get(term['type']).default_name for term in hook['reward']['terms']]
        reward = tuple((name, {key: term[key] for key in THRESHOLDS if key in term})
                       for name, term in zip(names, terms))
    optim = cfg.optim_wrapper
    loader = cfg.train_dataloader
    default_template = _with_defaults(MODELS, dict(type=model.type))['think_template']
    return {
        'model': model.type, 'pretrained': vlm['pretrained'], 'dtype': vlm['dtype'],
        'gradient_checkpointing': vlm['gradient_checkpointing'],
        'lora': _as_plain(vlm['lora']), 'freeze': vlm['freeze'],
        'max_new_tokens': (hook or {}).get('max_new_tokens') or vlm['generation']['max_new_tokens'],
        'train_mode': stage['train_mode'],
        'think_template': ('default' if stage['think_template'] == default_template else
                           stage['think_template']),
        'sizes': {key: _as_plain(stage[key]) for key in FRAME_ARGUMENTS[model.type]},
        'loss': tuple(getattr(loss, key) for key in LOSS_SETTINGS),
        'reward': reward,
        'num_generations': hook and hook['num_generations'],
        'temperature': hook and hook['temperature'], 'top_p': hook and hook['top_p'],
        'optim_wrapper': optim.type, 'amp_dtype': optim.get('dtype'),
        'optimizer': optim.optimizer.type, 'lr': optim.optimizer.lr,
        'weight_decay': optim.optimizer.weight_decay,
        'clip_grad': (optim.get('clip_grad') or {}).get('max_norm'),
        'accumulative_counts': optim.get('accumulative_counts', 1),
        'param_scheduler': _as_plain(cfg.get('param_scheduler', [])),
        'batch_size': loader.batch_size, 'num_workers': loader.num_workers,
        'sampler': loader.sampler.type, 'data_root': loader.dataset.data_root,
        'ann_file': loader.dataset.ann_file, 'max_iters': cfg.train_cfg.max_iters,
        'checkpoint_interval': cfg.default_hooks.checkpoint.interval,
        'logger_interval': cfg.default_hooks.logger.interval,
        'dist_backend': cfg.env_cfg.dist_cfg.backend,
        'base_batch_size': cfg.auto_scale_lr.base_batch_size,
        'validation': cfg.get('val_dataloader') is not None,
        'runner_type': cfg.get('runner_type'),
        'strategy': (cfg.get('strategy') or {}).get('type'),
    }


@pytest.fixture(scope='module', autouse=True)
def _scope():
    init_default_scope('finers_mm')


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=lambda path: osp.relpath(path, REPO_ROOT))
def test_every_config_loads_plain_and_through_the_loader_and_suits_the_runner(path):
    plain = Config.fromfile(path)
    loaded = load_config(path)
    assert set(plain.keys()) == set(loaded.keys())
    # mmengine's Runner wants each loop's loader, loop config and optimiser/evaluator all set or
    # all None, and no scheduler without an optimiser
    for keys in (('train_dataloader', 'train_cfg', 'optim_wrapper'),
                 ('val_dataloader', 'val_cfg', 'val_evaluator'),
                 ('test_dataloader', 'test_cfg', 'test_evaluator')):
        assert len({loaded.get(key) is None for key in keys}) == 1, (path, keys)
    if loaded.get('optim_wrapper') is None:
        assert loaded.get('param_scheduler') is None, path


def _class_default(type_name: str, argument: str):
    """The default of a transform's or a model's argument."""
    registry = TRANSFORMS if TRANSFORMS.get(type_name) is not None else MODELS
    return _with_defaults(registry, dict(type=type_name))[argument]


def _frame_arguments(node, path=''):
    """(path, type, argument, value or None) of every frame argument in a config."""
    if isinstance(node, dict):
        type_name = str(node.get('type', '')).rpartition('.')[2]
        for argument in FRAME_ARGUMENTS.get(type_name, {}):
            yield path, type_name, argument, node.get(argument)
        for key, value in node.items():
            yield from _frame_arguments(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _frame_arguments(value, f'{path}.{index}')


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=lambda path: osp.relpath(path, REPO_ROOT))
def test_a_plain_read_builds_the_sizes_of_its_frames(path):
    """Read with plain ``Config.fromfile`` (stock mmdet tools, a notebook), every shipped config
    gets the sizes of its ``frames``: written in the pipelines, the components' defaults in the
    models; the loader only writes those defaults out."""
    plain = Config.fromfile(path)
    if 'frames' not in plain:
        return
    frames = checked_frames(plain.frames)
    missing = set()
    for where, type_name, argument, value in _frame_arguments(plain.to_dict()):
        if value is None:
            missing.add(f'{where}.{argument}'.lstrip('.'))
            value = _class_default(type_name, argument)
        value = tuple(value) if isinstance(value, (list, tuple)) else value
        assert value == frames[FRAME_ARGUMENTS[type_name][argument]], f'{where}.{argument}'
    loaded = copy.deepcopy(plain)
    assert set(apply_frames(loaded)) == missing
    assert apply_frames(loaded) == []  # applying twice changes nothing


@pytest.mark.parametrize('name', sorted(TRAINING))
def test_training_configs_keep_their_settings(name):
    settings = _settings(load_config(osp.join(CONFIGS, name)))
    expected = dict(TRAINING[name], param_scheduler=_as_plain(TRAINING[name]['param_scheduler']))
    assert settings == expected


def test_every_training_config_is_pinned():
    configs = {osp.basename(path): Config.fromfile(path) for path in ALL_CONFIGS}
    training = {name for name, cfg in configs.items()
                if cfg.get('train_cfg') is not None and cfg.default_scope == 'finers_mm'}
    assert training == set(TRAINING)


def test_deepspeed_keeps_the_schedules_optimiser_and_clipping():
    cfg = load_config(osp.join(CONFIGS, 'gse_qwen7b_deepspeed.py'))
    # the schedule's lr and weight decay with torch's AdamW: ZeRO steps fp32 master weights
    # (KahanAdamW is for bf16 weights and outside ZeRO's tested optimisers)
    assert _as_plain(cfg.optim_wrapper.optimizer) == dict(type='AdamW', lr=1e-6, weight_decay=1e-2)
    assert cfg.strategy.gradient_clipping == 1.0 and cfg.strategy.bf16 == dict(enabled=True)
    assert cfg.strategy.zero_optimization.stage == 2


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=lambda path: osp.relpath(path, REPO_ROOT))
def test_each_setting_is_written_once(path):
    """The rollout's token budget is the VLM's (no hook restates it), the reward terms and the GRPO
    loss come with their classes' defaults (no config restates a threshold or a loss setting)."""
    cfg = Config.fromfile(path)
    for hook in cfg.get('custom_hooks', []):
        assert 'max_new_tokens' not in hook, path
    rewards = [hook['reward'] for hook in cfg.get('custom_hooks', []) if 'reward' in hook]
    rewards += [value for key, value in cfg.items() if key.endswith('_reward')]
    for reward in rewards:
        for term in reward['terms']:
            assert set(term) == {'type'}, (path, term)
    assert 'grpo_loss' not in (cfg.get('model') or {}), path


@pytest.mark.parametrize('stage, other', [('gse', 'lpr'), ('lpr', 'gse')])
def test_a_stage_never_inherits_the_other(stage, other):
    for path in glob.glob(osp.join(CONFIGS, f'{stage}_*.py')):
        cfg = Config.fromfile(path)
        assert f'{other}_reward' not in cfg and f'{stage}_reward' in cfg, path


@pytest.mark.parametrize('name', ['finers_qwen7b_test.py', 'finers_tiny_test.py'])
def test_chain_configs_evaluate_with_the_finers_metric_and_draw_with_the_finers_visualizer(name):
    cfg = load_config(osp.join(CONFIGS, name))
    protocol = 'authors' if '7b' in name else 'finers_mm'
    assert cfg.protocol == protocol
    # the answering stage and the answer rule come from the protocol, written nowhere else
    assert _as_plain(cfg.test_evaluator) == dict(type='FineRSMetric', empty_rule='one',
                                                 protocol=protocol)
    assert 'answer_from' not in cfg.model and 'qa_stage' not in cfg.model
    assert cfg.model.protocol == cfg.model.explorer.protocol == cfg.model.refiner.protocol
    assert cfg.visualizer.type == 'FineRSVisualizer'
    assert cfg.default_hooks.visualization.type == 'FineRSVisualizationHook'
    assert cfg.train_dataloader is None and cfg.train_cfg is None and cfg.optim_wrapper is None
    assert cfg.get('param_scheduler') is None  # the Runner refuses a scheduler without optimiser
    assert cfg.model.explorer.vlm.generation.max_new_tokens == (1024 if '7b' in name else 64)


def test_tiny_chain_keeps_its_cpu_settings():
    cfg = load_config(osp.join(CONFIGS, 'finers_tiny_test.py'))
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        assert (loader.batch_size, loader.num_workers, loader.persistent_workers) == (4, 0, False)
        assert loader.dataset.data_root == 'finers_mm/data/synthetic/'
        assert loader.dataset.ann_file == 'annotations/train.json'
    assert cfg.env_cfg.dist_cfg.backend == 'gloo' and cfg.default_hooks.logger.interval == 1
    for stage in ('explorer', 'refiner'):
        vlm = cfg.model[stage].vlm
        assert _as_plain(vlm) == dict(
            type='Qwen25VLAdapter', pretrained='work_dirs/tiny_models/qwen2_5_vl',
            dtype='float32', freeze=True, generation=dict(max_new_tokens=64, do_sample=False))
    assert cfg.model.mask_head.model_type == 'tiny'


def test_region_search_tiny_is_the_tiny_chains_refiner():
    search = load_config(osp.join(CONFIGS, 'region_search_tiny.py'))
    chain = load_config(osp.join(CONFIGS, 'finers_tiny_test.py'))
    assert _as_plain(search.model) == _as_plain(chain.model.refiner)
    assert search.model.type == 'LocalRefiner'
    assert _as_plain(search.region_search) == dict(num_candidates=4, rule='random', seed=0,
                                                   batch_size=4, save_interval=4)
    assert search.env_cfg.dist_cfg.backend == 'gloo'
