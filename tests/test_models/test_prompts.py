# Copyright (c) finers_mm contributors. All rights reserved.
"""Prompt templates (finers_mm.models.prompts)."""
import re

import pytest

from finers_mm.models.prompts import DEFAULT_TEMPLATES, PromptBuilder
from finers_mm.structures.answers import answer_is_correct, extract_option_letter
from finers_mm.structures.parsing import parse_completion
from finers_mm.structures.vocabulary import QUESTION_TYPES, STAGES

QUESTION = 'What colour is the small car parked next to the white tent?'
OPTIONS = ['red', 'blue', 'green', 'silver']
KEYS = {'explorer': ('"bbox"', '"response"'),
        'refiner': ('"bbox"', '"points_1"', '"points_2"', '"response"')}
COMBINATIONS = [(stage, qtype) for stage in STAGES for qtype in QUESTION_TYPES]


def _build(builder, stage, qtype, question=QUESTION):
    return builder.build(stage, question, qtype, OPTIONS if qtype == 'multiple_choice' else None)


def _example_answer(prompt):
    """The example completion of a prompt with its symbolic coordinates made numbers."""
    example = prompt[prompt.index('<think> thinking process here'):]
    values = dict(x1='10', y1='20', x2='110', y2='120', x='50', y='60')
    return re.sub(r'\b(x1|y1|x2|y2|x|y)\b', lambda m: values[m.group(1)], example)


def test_defaults_cover_every_stage_and_question_type():
    assert {(s, q) for s in DEFAULT_TEMPLATES for q in DEFAULT_TEMPLATES[s]} == set(COMBINATIONS)


@pytest.mark.parametrize('stage,qtype', COMBINATIONS)
def test_prompt_states_question_tags_and_keys(stage, qtype):
    prompt = _build(PromptBuilder(), stage, qtype)
    assert f"'{QUESTION}'" in prompt
    for tag in ('<think>', '</think>', '<answer>', '</answer>'):
        assert tag in prompt
    for key in KEYS[stage]:
        assert key in prompt
    if stage == 'explorer':
        assert '"points_1"' not in prompt
    assert not re.search(r'\{[a-z_]+\}', prompt), 'a placeholder was left unformatted'


@pytest.mark.parametrize('stage,qtype', COMBINATIONS)
def test_example_answer_in_prompt_is_what_the_parser_and_scorer_accept(stage, qtype):
    prompt = _build(PromptBuilder(), stage, qtype)
    parsed = parse_completion(_example_answer(prompt), stage)
    assert parsed.think_format_ok and parsed.json_format_ok, parsed
    if qtype == 'segmentation':
        assert answer_is_correct(parsed.response, None, qtype, stage=stage)
    elif qtype == 'multiple_choice':
        assert extract_option_letter(parsed.response, OPTIONS) is not None
    else:
        assert answer_is_correct(parsed.response, parsed.response, qtype, stage=stage)


def test_region_size_comes_from_the_argument():
    prompt = PromptBuilder(region_size=300).build('explorer', QUESTION, 'segmentation')
    assert '300*300' in prompt and '= 300' in prompt
    assert '256' not in prompt
    default = PromptBuilder().build('explorer', QUESTION, 'segmentation')
    assert '256*256' in default


@pytest.mark.parametrize('qtype', QUESTION_TYPES)
def test_refiner_prompt_has_no_region_size(qtype):
    prompt = _build(PromptBuilder(region_size=313), 'refiner', qtype)
    assert '313' not in prompt


def test_segmentation_prompts_say_what_response_to_give():
    builder = PromptBuilder()
    assert 'The object is found.' in builder.build('explorer', QUESTION, 'segmentation')
    refiner = builder.build('refiner', QUESTION, 'segmentation')
    assert 'No object found' in refiner and '[0, 0, 0, 0]' in refiner


@pytest.mark.parametrize('stage', STAGES)
@pytest.mark.parametrize('options', [
    ['red car', 'blue van', 'white truck'],
    {'A': 'red car', 'B': 'blue van', 'C': 'white truck'},
    'A. red car B. blue van C. white truck',
    ['A: red car', 'B: blue van', '(C) white truck'],
])
def test_options_rendered_one_per_line(stage, options):
    prompt = PromptBuilder().build(stage, 'Which vehicle is by the tree?', 'multiple_choice',
                                   options)
    lines = prompt.splitlines()
    rendered = ['A. red car', 'B. blue van', 'C. white truck']
    positions = [lines.index(line) for line in rendered]
    assert positions == sorted(positions) and positions[-1] - positions[0] == 2
    assert 'A, B or C' in prompt


@pytest.mark.parametrize('stage', STAGES)
def test_open_prompt_asks_for_a_short_answer(stage):
    prompt = PromptBuilder(max_answer_words=2).build(stage, QUESTION, 'open')
    assert 'at most 2 words' in prompt


@pytest.mark.parametrize('stage', STAGES)
@pytest.mark.parametrize('qtype', ['segmentation', 'open'])
def test_options_of_other_question_types_are_ignored(stage, qtype):
    prompt = PromptBuilder().build(stage, QUESTION, qtype, ['purple', 'orange'])
    assert 'purple' not in prompt and 'Options' not in prompt


def test_multiple_choice_without_options_is_an_error():
    for options in (None, [], {}):
        with pytest.raises(ValueError, match='no options'):
            PromptBuilder().build('explorer', QUESTION, 'multiple_choice', options)


def test_question_text_is_inserted_verbatim():
    question = "Where's the {bbox} sign with \"quotes\" and 中文 ✓?"
    for stage, qtype in COMBINATIONS:
        assert question in _build(PromptBuilder(), stage, qtype, question=question)


def test_question_whitespace_is_stripped_and_empty_question_rejected():
    prompt = PromptBuilder().build('refiner', '  the red car \n', 'segmentation')
    assert "'the red car'" in prompt
    for bad in ('', '   ', None):
        with pytest.raises(ValueError, match='question'):
            PromptBuilder().build('refiner', bad, 'segmentation')


@pytest.mark.parametrize('stage,qtype,match', [
    ('gse', 'open', 'unknown stage'),
    ('Explorer', 'open', 'unknown stage'),
    ('explorer', 'vqa', 'unknown question type'),
    ('explorer', 'reasoning', 'QTYPE_FROM_ANNOTATION'),
])
def test_unknown_stage_or_question_type(stage, qtype, match):
    with pytest.raises(ValueError, match=match):
        PromptBuilder().build(stage, QUESTION, qtype)


def test_template_override_replaces_only_its_combination():
    custom = 'Q: {question}. Region {region_size}px. <think></think><answer>{{}}</answer>'
    builder = PromptBuilder(templates={'explorer': {'open': custom}}, region_size=128)
    assert builder.build('explorer', 'how many cars?', 'open') == (
        'Q: how many cars?. Region 128px. <think></think><answer>{}</answer>')
    default = PromptBuilder(region_size=128)
    for stage, qtype in COMBINATIONS:
        if (stage, qtype) != ('explorer', 'open'):
            assert _build(builder, stage, qtype) == _build(default, stage, qtype)


def test_template_override_from_an_mmengine_config():
    mmengine = pytest.importorskip('mmengine')
    cfg = mmengine.Config(dict(prompt=dict(
        region_size=200, templates=dict(refiner=dict(segmentation='Find {question} now.')))))
    builder = PromptBuilder(**cfg.prompt)
    assert builder.build('refiner', 'the bus', 'segmentation') == 'Find the bus now.'
    assert '200*200' in builder.build('explorer', 'the bus', 'segmentation')


@pytest.mark.parametrize('templates,match', [
    ({'explorer': {'open': 'Find {question}.'}}, r"templates\['explorer'\]\['open'\].*region_size"),
    ({'refiner': {'open': 'No question here.'}}, r"templates\['refiner'\]\['open'\].*question"),
    ({'explorer': {'multiple_choice': '{question} {region_size}'}},
     r"templates\['explorer'\]\['multiple_choice'\].*options"),
    ({'refiner': {'segmentation': '{question} in {region_size}'}}, 'unknown placeholder'),
    ({'refiner': {'segmentation': '{question} {options}'}}, 'unknown placeholder'),
    ({'refiner': {'open': '{question} <answer>{"bbox": [1, 2, 3, 4]}</answer>'}},
     r'unknown placeholder.*\{\{'),
    ({'refiner': {'open': '{question} {}'}}, 'unknown placeholder'),
    ({'refiner': {'open': '{question.upper} {question}'}}, 'unknown placeholder'),
    ({'refiner': {'open': 'Find {question'}}, r"templates\['refiner'\]\['open'\].*str.format"),
    ({'refiner': {'open': '{question:d}'}}, 'cannot be formatted'),
    ({'refiner': {'open': 42}}, 'must be a str'),
    ({'refiner': 'Find {question}'}, 'must be a dict'),
    ({'lpr': {'open': '{question}'}}, 'unknown stage'),
    ({'refiner': {'referring': '{question}'}}, 'unknown question type'),
])
def test_bad_template_override_fails_at_construction(templates, match):
    with pytest.raises(ValueError, match=match):
        PromptBuilder(templates=templates)


@pytest.mark.parametrize('kwargs', [dict(region_size=0), dict(region_size=-256),
                                    dict(region_size=256.0), dict(region_size=True),
                                    dict(max_answer_words=0)])
def test_sizes_must_be_positive_ints(kwargs):
    with pytest.raises(ValueError, match='positive int'):
        PromptBuilder(**kwargs)


# --- the region size in the model's coordinates (region=(w, h)) -----------------------------------

def _build_region(builder, stage, qtype, region):
    return builder.build(stage, QUESTION, qtype, OPTIONS if qtype == 'multiple_choice' else None,
                         region=region)


@pytest.mark.parametrize('qtype', QUESTION_TYPES)
def test_region_in_model_units_is_stated_as_given(qtype):
    prompt = _build_region(PromptBuilder(), 'explorer', qtype, (133, 237))
    assert 'identify a 133*237 bounding box' in prompt
    assert 'x2 - x1 = 133 and y2 - y1 = 237' in prompt
    assert '256' not in prompt


def test_default_region_is_the_frame_size_as_in_the_authors_prompt():
    prompt = PromptBuilder().build('explorer', QUESTION, 'segmentation')
    assert "identify a 256*256 bounding box that best localizes the region" in prompt
    assert 'x2 - x1 = y2 - y1 = 256' in prompt
    assert prompt == PromptBuilder().build('explorer', QUESTION, 'segmentation',
                                           region=(256, 256))


@pytest.mark.parametrize('qtype', QUESTION_TYPES)
def test_refiner_ignores_the_region(qtype):
    builder = PromptBuilder()
    assert (_build_region(builder, 'refiner', qtype, (133, 237))
            == _build(builder, 'refiner', qtype))


def test_legacy_region_size_template_states_frame_pixels():
    custom = 'Q: {question}. A {region_size}px square. <answer>{{}}</answer>'
    builder = PromptBuilder(templates={'explorer': {'segmentation': custom}}, region_size=256)
    assert builder.build('explorer', 'the bus', 'segmentation', region=(133, 237)) == (
        'Q: the bus. A 256px square. <answer>{}</answer>')


def test_template_in_model_units():
    custom = 'Q: {question}. Box {region_width} wide, {region_height} high.'
    builder = PromptBuilder(templates={'explorer': {'open': custom}})
    assert builder.build('explorer', 'how many?', 'open', region=(133, 237)) == (
        'Q: how many?. Box 133 wide, 237 high.')
    assert builder.build('explorer', 'how many?', 'open') == 'Q: how many?. Box 256 wide, 256 high.'


@pytest.mark.parametrize('templates,match', [
    ({'explorer': {'open': 'Find {question}.'}}, r'lacks the region size.*region_width'),
    ({'explorer': {'open': 'Find {question} in {region_width} px.'}},
     r"templates\['explorer'\]\['open'\].*region_width.*lacks \{region_height\}"),
    ({'explorer': {'segmentation': 'Find {question}, {region_height} high.'}},
     r'lacks \{region_width\}'),
    ({'refiner': {'open': '{question} {region_width} {region_height}'}}, 'unknown placeholder'),
    ({'refiner': {'segmentation': '{question} {region_height}'}}, 'unknown placeholder'),
])
def test_explorer_template_must_state_the_region_size(templates, match):
    with pytest.raises(ValueError, match=match):
        PromptBuilder(templates=templates)


def test_explorer_template_may_state_both_forms():
    custom = '{question}: {region_width}*{region_height} (a {region_size}px square)'
    builder = PromptBuilder(templates={'explorer': {'segmentation': custom}})
    assert builder.build('explorer', 'the bus', 'segmentation', region=(133, 237)) == (
        'the bus: 133*237 (a 256px square)')


@pytest.mark.parametrize('region', [(0, 237), (133, -1), (133.0, 237), (True, 237), (133, ),
                                    (133, 237, 1), '133*237', 133])
def test_region_must_be_two_positive_ints(region):
    with pytest.raises(ValueError, match='region must be'):
        PromptBuilder().build('explorer', QUESTION, 'segmentation', region=region)


def test_region_accepts_numpy_ints():
    import numpy as np
    prompt = PromptBuilder().build('explorer', QUESTION, 'segmentation',
                                   region=(np.int64(133), np.int32(237)))
    assert '133*237' in prompt


@pytest.mark.parametrize('scale, phrase', [(None, 'in pixels of this image'),
                                           (1000, 'from 0 to 1000 along each side')])
@pytest.mark.parametrize('stage', ['explorer', 'refiner'])
def test_prompts_say_what_the_box_numbers_are(stage, scale, phrase):
    prompt = PromptBuilder().build(stage, 'the red car', 'segmentation', coordinate_scale=scale)
    assert phrase in prompt
    other = 'from 0 to 1000' if scale is None else 'in pixels of this image'
    assert other not in prompt


def test_coordinates_placeholder_is_optional_and_checked():
    template = "Find '{question}': a {region_size} box {coordinates}."
    builder = PromptBuilder(templates=dict(explorer=dict(segmentation=template)))
    assert builder.build('explorer', 'q', 'segmentation', coordinate_scale=1000) == \
        "Find 'q': a 256 box in coordinates relative to this image, from 0 to 1000 along each side."
    with pytest.raises(ValueError, match='coordinate_scale'):
        builder.build('explorer', 'q', 'segmentation', coordinate_scale=0)
