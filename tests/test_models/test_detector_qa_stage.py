# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRSDetector's ``qa_stage``: whose response is the QA answer, on the tiny chain with scripted
VLMs (the explorer answers every question right, the refiner wrong), through FineRSMetric under
both answer rules; the paper's chain and the multi-hypothesis chain."""
import copy
import json

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from finers_mm.evaluation import FineRSMetric
from finers_mm.models.detector import qa_answer, resolve_qa_stage
from finers_mm.models.stages import ExplorerOutput, RefinerOutput
from finers_mm.registry import DATASETS, MODELS
from finers_mm.structures.answers import FOUND_RESPONSE
from finers_mm.testing.chains import SAM_CONFIG, chain_config
from finers_mm.testing.scripted import THINK, OracleScripts, completion, record_for


@pytest.fixture(scope='module')
def chain(tiny_models):
    """The tiny chain's config with scripted VLMs and no explicit qa_stage, and its dataset."""
    init_default_scope('finers_mm')
    cfg = chain_config(SAM_CONFIG, tiny_models)
    cfg.model.explorer.vlm.type = 'ScriptedQwen25VLAdapter'
    cfg.model.refiner.vlm.type = 'ScriptedQwen25VLAdapter'
    cfg.model.pop('answer_from', None)
    return cfg.model, DATASETS.build(cfg.test_dataloader.dataset)


def _build(model_cfg, **kwargs):
    cfg = copy.deepcopy(model_cfg)
    cfg.update(kwargs)
    torch.manual_seed(0)
    return MODELS.build(cfg).eval()


def _wrong(info):
    """A wrong answer to the question of ``info`` (segmentation: still found)."""
    if info['question_type'] == 'multiple_choice':
        return 'D' if info['answer'] != 'D' else 'A'
    return 'zzz' if info['question_type'] == 'open' else FOUND_RESPONSE


def _with_response(text, response):
    """A scripted completion with its response replaced."""
    return text.replace(json.dumps(FOUND_RESPONSE), json.dumps(response))


def _script(detector, dataset, explorer_region=True):
    """The explorer: the region around the GT (or no box) and the GT answer; the refiner: a box
    in its crop and a wrong answer."""
    oracle = OracleScripts(detector, dataset)

    def explorer(image, prompt):
        info = record_for(oracle.infos, prompt)
        if not explorer_region:
            return THINK + '<answer>' + json.dumps(dict(response=info['answer'])) + '</answer>'
        return _with_response(oracle.explorer(image, prompt), info['answer'])

    def refiner(image, prompt):
        info = record_for(oracle.infos, prompt)
        return completion(dict(bbox=[100, 100, 200, 200], points_1=[150, 150],
                               points_2=[160, 160], response=_wrong(info)))

    detector.explorer.vlm.script = explorer
    detector.refiner.vlm.script = refiner
    return oracle.infos


def _predict(detector, dataset):
    results = []
    with torch.no_grad():
        for start in range(0, len(dataset), 6):
            indices = range(start, min(start + 6, len(dataset)))
            results += detector.test_step(pseudo_collate([dataset[i] for i in indices]))
    return results


def _scores(results, **kwargs):
    metric = FineRSMetric(**kwargs)
    metric.process({}, [r.to_dict() for r in results])
    return metric.compute_metrics(metric.results)


@pytest.mark.parametrize('protocol, stage', [('authors', 'explorer'), ('finers_mm', 'refiner')])
def test_the_protocol_decides_whose_response_is_the_answer(chain, protocol, stage):
    model_cfg, dataset = chain
    detector = _build(model_cfg, protocol=protocol)
    assert detector.qa_stage == stage
    infos = _script(detector, dataset)
    results = _predict(detector, dataset)
    for info, result in zip(infos, results):
        assert len(result.pred_instances) == 1 and result.pred_region is not None
        expected = info['answer'] if stage == 'explorer' else _wrong(info)
        assert result.pred_answer == expected and result.pred_answer_stage == stage
    for rule in ('authors', 'finers_mm'):
        metrics = _scores(results, protocol=protocol, answer_rule=rule)
        right = 100.0 if stage == 'explorer' else 0.0
        assert (metrics['MVQA'], metrics['OVQA']) == (right, right), rule


def test_an_explicit_qa_stage_beats_the_protocol_and_the_refiner_falls_back(chain):
    model_cfg, dataset = chain
    detector = _build(model_cfg, protocol='authors', qa_stage='refiner')
    assert detector.qa_stage == detector.answer_from == 'refiner'
    infos = _script(detector, dataset)
    for info, result in zip(infos, _predict(detector, dataset)):
        assert result.pred_answer == _wrong(info) and result.pred_answer_stage == 'refiner'
    detector.refiner.vlm.script = lambda image, prompt: completion(dict(
        bbox=[100, 100, 200, 200], points_1=[150, 150], points_2=[160, 160], response=''))
    for info, result in zip(infos, _predict(detector, dataset)):  # a refiner without answer text
        assert len(result.pred_instances) == 1
        assert result.pred_answer == info['answer'] and result.pred_answer_stage == 'explorer'


def test_no_explorer_region_answers_from_the_explorer_but_the_authors_count_it_wrong(chain):
    model_cfg, dataset = chain
    detector = _build(model_cfg, protocol='authors')
    infos = _script(detector, dataset, explorer_region=False)
    results = _predict(detector, dataset)
    for info, result in zip(infos, results):
        assert result.pred_region is None and len(result.pred_instances) == 0
        assert result.invalid_reason == 'explorer:missing_key:bbox'
        assert result.pred_answer == info['answer'] and result.pred_answer_stage == 'explorer'
    # the same answers: right by finers_mm's rule, wrong by the authors' (GSE gave no box)
    metrics = _scores(results, protocol='authors')
    assert (metrics['MVQA'], metrics['OVQA']) == (0.0, 0.0)
    assert (metrics['MVQA_finers_mm'], metrics['OVQA_finers_mm']) == (100.0, 100.0)


@pytest.mark.parametrize('stage', ['explorer', 'refiner'])
def test_multi_hypothesis_answers_from_the_chosen_stage(chain, stage):
    """No explorer region: the tiled fallback refines tiles; the answer is still the chosen
    stage's (the explorer's response, or the kept tile's refinement)."""
    model_cfg, dataset = chain
    detector = _build(model_cfg, qa_stage=stage,
                      multi_hypothesis=dict(num_regions=1, fusion='mask', tiled_fallback={}))
    infos = _script(detector, dataset, explorer_region=False)
    subset = [0, 1, 2]
    with torch.no_grad():
        results = detector.test_step(pseudo_collate([dataset[i] for i in subset]))
    for index, result in zip(subset, results):
        assert result.fallback == 'tiled' and len(result.pred_instances) == 1
        info = infos[index]
        expected = info['answer'] if stage == 'explorer' else _wrong(info)
        assert result.pred_answer == expected and result.pred_answer_stage == stage
        assert all(h['explorer_answer'] == info['answer'] for h in result.pred_hypotheses)


def test_resolve_qa_stage():
    assert resolve_qa_stage(None, None, 'authors') == 'explorer'
    assert resolve_qa_stage(None, None, 'finers_mm') == 'refiner'
    assert resolve_qa_stage('explorer', None, 'finers_mm') == 'explorer'
    assert resolve_qa_stage(None, 'explorer', 'finers_mm') == 'explorer'  # the former name
    assert resolve_qa_stage('refiner', 'refiner', 'authors') == 'refiner'
    with pytest.raises(ValueError, match='disagree'):
        resolve_qa_stage('refiner', 'explorer', 'finers_mm')
    with pytest.raises(ValueError, match='qa_stage must be one of'):
        resolve_qa_stage('stage1', None, 'authors')
    with pytest.raises(ValueError, match='protocol'):
        resolve_qa_stage(None, None, 'paper')


def test_qa_answer():
    explored = ExplorerOutput(region=None, answer='B', completion='')
    refined = RefinerOutput(box=np.zeros(4), points=None, answer='C', completion='')
    assert qa_answer('explorer', explored, refined) == ('B', 'explorer')
    assert qa_answer('refiner', explored, refined) == ('C', 'refiner')
    assert qa_answer('refiner', explored, None) == ('B', 'explorer')
    empty = RefinerOutput(box=None, points=None, answer=None, completion='')
    assert qa_answer('refiner', explored, empty) == ('B', 'explorer')
