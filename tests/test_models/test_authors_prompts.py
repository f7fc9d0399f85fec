# Copyright (c) finers_mm contributors. All rights reserved.
"""The 'authors' protocol asks the authors' questions byte for byte.

``tests/data/authors_protocol/authors_prompts.json`` holds 80 prompts built by the authors' own code
(their evaluation script's ``reform_messgae_HR`` / ``reform_messgae_LR`` and their training datasets'
``__getitem__``, run by ``generate_prompts.py`` beside it) for the three question types, the three
forms of ``options`` and questions with capitals, dots and spaces. finers_mm's prompts must equal
them: through the prompt builder, and through the stages' own prompt paths (inference and
training).
"""
import json
import os.path as osp

import numpy as np
import pytest
from mmdet.structures import DetDataSample
from mmengine.registry import init_default_scope

from finers_mm.models import vlm_stage
from finers_mm.models.prompts import PromptBuilder
from finers_mm.models.stages import Query
from finers_mm.registry import MODELS
from finers_mm.structures.authors_prompts import TEST, TRAIN
from finers_mm.structures.vocabulary import QTYPE_FROM_ANNOTATION, normalize_options
from finers_mm.testing import REPO_ROOT

FIXTURE = osp.join(REPO_ROOT, 'tests', 'data', 'authors_protocol', 'authors_prompts.json')
with open(FIXTURE) as f:
    PROMPTS = json.load(f)['prompts']
#: their training prompts start with the image placeholder; finers_mm's chat puts the image first
IMAGE = '<image>'


def _expected(row) -> str:
    text = row['text']
    if row['phase'] == TRAIN:
        assert text.startswith(IMAGE) and text.count(IMAGE) == 1
        return text[len(IMAGE):]
    return text


def _id(row) -> str:
    return f"{row['stage']}-{row['phase']}-{row['qtype']}-{type(row['options']).__name__}"


def test_the_fixture_covers_every_stage_phase_type_and_options_form():
    assert len(PROMPTS) == 80
    seen = {(r['stage'], r['phase'], r['qtype'], type(r['options']).__name__) for r in PROMPTS}
    for stage in ('explorer', 'refiner'):
        for phase in (TRAIN, TEST):
            for form in ('list', 'dict', 'str'):
                assert (stage, phase, 'option', form) in seen
            assert (stage, phase, 'referring', 'NoneType') in seen
            assert (stage, phase, 'reasoning', 'NoneType') in seen
    # their training runs with a system prompt equal to the chat template's default one
    assert {r.get('system') for r in PROMPTS if r['phase'] == TRAIN} == {
        'You are a helpful assistant.'}
    assert {tuple(r['messages_roles']) for r in PROMPTS if r['phase'] == TEST} == {('user', )}


@pytest.mark.parametrize('row', PROMPTS, ids=[_id(r) for r in PROMPTS])
def test_the_authors_preset_renders_their_prompt_byte_for_byte(row):
    builder = PromptBuilder(protocol='authors')
    text = builder.build(row['stage'], row['question'], QTYPE_FROM_ANNOTATION[row['qtype']],
                         row['options'], phase=row['phase'])
    assert text == _expected(row)


def test_our_protocol_matches_none_of_them_and_is_the_same_in_both_phases():
    builder = PromptBuilder()
    for row in PROMPTS:
        args = (row['stage'], row['question'], QTYPE_FROM_ANNOTATION[row['qtype']], row['options'])
        text = builder.build(*args, phase=row['phase'])
        assert text != _expected(row)
        assert text == builder.build(*args, phase=TRAIN if row['phase'] == TEST else TEST)


def test_a_region_size_other_than_256_is_stated_in_the_authors_explorer_prompt():
    text = PromptBuilder(protocol='authors', region_size=128).build(
        'explorer', 'the car', 'segmentation')
    assert text.count('128*128') == 2 and 'x_min+128,y_min+128' in text and '256' not in text


def test_unknown_protocol_and_phase_are_refused():
    with pytest.raises(ValueError, match="unknown protocol 'paper'"):
        PromptBuilder(protocol='paper')
    with pytest.raises(ValueError, match="unknown prompt phase 'eval'"):
        PromptBuilder().build('refiner', 'the car', 'segmentation', phase='eval')


@pytest.fixture(scope='module')
def authors_stages(tiny_models):
    init_default_scope('finers_mm')
    vlm = dict(type='Qwen25VLAdapter', pretrained=tiny_models['qwen2_5_vl'])
    return {stage: MODELS.build(dict(type=name, vlm=vlm, protocol='authors'))
            for stage, name in (('explorer', 'GlobalExplorer'), ('refiner', 'LocalRefiner'))}


def test_the_stages_ask_the_evaluation_prompt_at_inference_and_the_training_one_in_training(
        authors_stages):
    """The stages' own paths: build_prompt (inference) and build_prompts (SFT, GRPO rollouts),
    the options as the annotation wrote them carried by the sample."""
    view = np.zeros((1080, 1920, 3), np.uint8)
    for row in PROMPTS:
        stage = authors_stages[row['stage']]
        qtype = QTYPE_FROM_ANNOTATION[row['qtype']]
        options = row['options']
        if row['phase'] == TEST:
            query = Query(row['question'], qtype, normalize_options(options), options)
            assert stage.build_prompt(query, (1920, 1080)) == _expected(row)
        else:
            sample = DetDataSample(metainfo=dict(question=row['question'], question_type=qtype,
                                                 options=normalize_options(options),
                                                 options_raw=options))
            assert stage.build_prompts([sample], [view]) == [_expected(row)]


def test_a_relative_coordinate_family_under_the_authors_protocol_is_warned(tiny_models,
                                                                             monkeypatch):
    """Their prompts state the region in frame pixels: Qwen2.5-VL's convention, not Qwen2-VL's."""
    init_default_scope('finers_mm')
    logged = []
    monkeypatch.setattr(vlm_stage, 'print_log', lambda msg, **kwargs: logged.append(msg))
    for family, model in (('Qwen2VLAdapter', 'qwen2_vl'), ('Qwen25VLAdapter', 'qwen2_5_vl')):
        MODELS.build(dict(type='GlobalExplorer', protocol='authors',
                          vlm=dict(type=family, pretrained=tiny_models[model])))
    assert len(logged) == 1 and 'Qwen2VLAdapter answers in 0..1000 coordinates' in logged[0]
