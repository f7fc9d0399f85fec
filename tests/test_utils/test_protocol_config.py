# Copyright (c) finers_mm contributors. All rights reserved.
"""One switch: a config's ``protocol`` reaches every component that takes one, and a config read
without applying it (stock tools) is refused when its components would run by another."""
import glob
import os.path as osp
from types import SimpleNamespace

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from finers_mm.registry import METRICS, MODELS, REWARDS, TRANSFORMS

from finers_mm.engine.hooks.protocol_check_hook import ProtocolCheckHook, protocol_mismatches
from finers_mm.structures.protocols import (AUTHORS, FINERS_MM, PROTOCOLS, SETTINGS,
                                            check_protocol, protocol_setting)
from finers_mm.testing import CONFIGS, config_path
from finers_mm.utils.protocol_config import PROTOCOL_TYPES, apply_protocol
from finers_mm.utils.run_config import load_config

CONFIG_FILES = sorted(glob.glob(osp.join(CONFIGS, 'finers', '*.py')))


def _components(node, path=''):
    """(dotted path, type name) of every typed dict in a config."""
    if isinstance(node, dict):
        if isinstance(node.get('type'), str):
            yield path, node['type']
        for key, value in node.items():
            yield from _components(value, f'{path}.{key}'.lstrip('.'))
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _components(value, f'{path}.{index}')


def test_every_setting_has_a_value_per_protocol_and_the_two_differ():
    for name, values in SETTINGS.items():
        assert set(values) == set(PROTOCOLS), name
        assert values[AUTHORS] != values[FINERS_MM], name
    assert protocol_setting(AUTHORS, 'coordinates') == 'frame'
    with pytest.raises(ValueError, match="unknown protocol 'paper'"):
        check_protocol('paper')
    with pytest.raises(ValueError, match='unknown protocol setting'):
        protocol_setting(AUTHORS, 'colour')


@pytest.mark.parametrize('config', ['finers_tiny_test.py', 'lpr_tiny.py', 'gse_tiny.py'])
def test_load_config_hands_the_protocol_to_every_component_that_takes_one(config):
    cfg = load_config(config_path('finers', config), {'protocol': AUTHORS})
    typed = list(_components(cfg._cfg_dict.to_dict()))
    takers = [(path, name) for path, name in typed if name in PROTOCOL_TYPES]
    assert takers  # each of these configs has protocol-aware components
    for path, _ in takers:
        node = cfg
        for part in path.split('.'):
            node = node[int(part)] if part.isdigit() else node[part]
        assert node['protocol'] == AUTHORS, path
    # components without a protocol argument are left alone
    assert all('protocol' not in node for node in _typed_nodes(cfg._cfg_dict.to_dict())
               if node['type'] not in PROTOCOL_TYPES)


def _typed_nodes(node):
    if isinstance(node, dict):
        if isinstance(node.get('type'), str):
            yield node
        for value in node.values():
            yield from _typed_nodes(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _typed_nodes(value)


def test_an_unknown_protocol_is_refused_when_the_components_are_built(tiny_models):
    cfg = load_config(config_path('finers', 'gse_tiny.py'),
                      {'protocol': 'paper', 'model.vlm.pretrained': tiny_models['qwen2_5_vl']})
    assert cfg.model.protocol == 'paper'
    with pytest.raises(ValueError, match="unknown protocol 'paper'; expected one of"):
        MODELS.build(cfg.model)
    with pytest.raises(RuntimeError, match=r"gse_tiny\.py: unknown protocol 'paper'"):
        _before_run(cfg)


def test_a_config_without_protocol_is_left_as_it_is():
    cfg = Config(dict(model=dict(type='GlobalExplorer', vlm=dict(type='Qwen25VLAdapter'))))
    assert apply_protocol(cfg) == []
    assert 'protocol' not in cfg.model


def _before_run(cfg) -> None:
    ProtocolCheckHook().before_run(SimpleNamespace(cfg=cfg))


def test_a_config_read_plainly_whose_components_run_by_another_protocol_is_refused(tmp_path):
    child = tmp_path / 'authors_child.py'
    child.write_text(f"_base_ = [{config_path('finers', 'finers_tiny_test.py')!r}]\n"
                     "protocol = 'authors'\n")
    plain = Config.fromfile(str(child))
    with pytest.raises(RuntimeError, match='load_config') as error:
        _before_run(plain)
    message = str(error.value)
    assert 'authors_child.py' in message and "model.explorer.protocol is 'finers_mm'" in message
    _before_run(load_config(str(child)))  # read by the tools: applied, passes


@pytest.mark.parametrize('config', CONFIG_FILES, ids=osp.basename)
def test_every_shipped_config_runs_by_its_protocol_when_read_by_the_tools(config):
    cfg = load_config(config)
    assert cfg.default_hooks.protocol_check.type == 'ProtocolCheckHook'
    assert protocol_mismatches(cfg) == []


def test_one_key_switches_every_built_component(tiny_models):
    """protocol='authors' set once: the stages, the detector, the loss, the reward, the metric
    and the transforms are built by it; 'finers_mm' (the default) builds ours."""
    init_default_scope('finers_mm')
    built = {}
    for protocol in PROTOCOLS:
        chain = load_config(config_path('finers', 'finers_tiny_test.py'), {
            'protocol': protocol, 'model.explorer.vlm.pretrained': tiny_models['qwen2_5_vl'],
            'model.refiner.vlm.pretrained': tiny_models['qwen2_5_vl'],
            'model.mask_head.config': tiny_models['sam_config'],
            'model.mask_head.checkpoint': tiny_models['sam']})
        lpr = load_config(config_path('finers', 'lpr_tiny.py'), {
            'protocol': protocol, 'model.vlm.pretrained': tiny_models['qwen2_5_vl']})
        detector = MODELS.build(chain.model)
        refiner = MODELS.build(lpr.model)
        reward = REWARDS.build(lpr.custom_hooks[0].reward)
        metric = METRICS.build(chain.test_evaluator)
        transforms = {t['type']: TRANSFORMS.build(t) for t in lpr.train_pipeline
                      if t['type'] in ('ExplorerView', 'RefinerCrop', 'SampleGTPoints')}
        built[protocol] = dict(
            prompts=detector.explorer.prompts.style, coordinates=detector.refiner.vlm.coordinates,
            qa_stage=detector.qa_stage, resize=detector.refiner.resize,
            loss_type=refiner.loss_grpo.loss_type, reward=reward.protocol,
            metric=metric.protocol, crop_resize=transforms['RefinerCrop'].resize,
            points=transforms['SampleGTPoints'].method)
    assert built[AUTHORS] == dict(
        prompts='authors', coordinates='frame', qa_stage='explorer', resize='pil_bilinear',
        loss_type='seq_mean_token_mean', reward='authors', metric='authors',
        crop_resize='pil_bilinear', points='authors_jitter')
    assert built[FINERS_MM] == dict(
        prompts='finers_mm', coordinates='model_image', qa_stage='refiner', resize='cv2_linear',
        loss_type='dapo', reward='finers_mm', metric='finers_mm', crop_resize='cv2_linear',
        points='inscribed_circles')


@pytest.mark.parametrize('config', [osp.basename(c) for c in CONFIG_FILES if 'qwen' in c],
                         ids=str)
def test_the_paper_configs_run_by_the_authors_protocol_and_ours_is_one_key_away(config):
    for protocol, options in ((AUTHORS, None), (FINERS_MM, {'protocol': FINERS_MM})):
        cfg = load_config(config_path('finers', config), options)
        assert cfg.protocol == protocol
        stages = ([cfg.model.explorer, cfg.model.refiner] if cfg.model.type == 'FineRSDetector'
                  else [cfg.model])
        assert all(stage.protocol == protocol for stage in stages)
        for hook in cfg.get('custom_hooks', None) or []:
            if 'reward' in hook:
                assert hook['reward']['protocol'] == protocol
        pipelines = [cfg[key].dataset.pipeline for key in ('train_dataloader', 'test_dataloader')
                     if cfg.get(key)]
        for pipeline in pipelines:
            for transform in pipeline:
                if transform['type'] in PROTOCOL_TYPES:
                    assert transform['protocol'] == protocol, transform
