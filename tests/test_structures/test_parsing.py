# Copyright (c) finers_mm contributors. All rights reserved.
"""The completion parser (finers_mm.structures.parsing)."""
import dataclasses
import json
import math
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finers_mm.structures.parsing import (MAX_COORDINATE, MAX_OBJECT_STARTS, ParsedCompletion,
                                          parse_completion)

REASONING = '''The question asks for the small red car next to the white tent. Scanning the image
from left to right, I see a row of tents in the upper half. A JSON draft like {"bbox": [0, 0, 5, 5],
"response": "draft"} would be wrong because the car is further right; note also the set {1, 2} and
a dict-like {'x': 3} that I wrote while thinking, and an unbalanced { brace.

Second paragraph: the tent at roughly (1400, 610) has a tiny red object beside it. I will use a
region of 256*256 centred there: x from 1272 to 1528, y from 482 to 738.'''

EXPLORER_OK = (f'<think>{REASONING}</think>\n<answer>{{"bbox": [1272, 482, 1528, 738], '
               '"response": "The object is found."}</answer>')
REFINER_OK = (f'<think>{REASONING}</think><answer>{{"bbox": [201.5, 190, 240, 231], '
              '"points_1": [215, 205], "points_2": [228, 219], "response": "B"}</answer>')


def _explorer(answer, think='looking'):
    return f'<think>{think}</think><answer>{answer}</answer>'


def _refiner_json(**overrides):
    data = {'bbox': [10, 20, 60, 80], 'points_1': [30, 40], 'points_2': [35, 50],
            'response': 'The object is found.'}
    data.update(overrides)
    return json.dumps({k: v for k, v in data.items() if v is not _DROP})


_DROP = object()


def test_realistic_explorer_completion():
    parsed = parse_completion(EXPLORER_OK, 'explorer')
    assert parsed.think == REASONING
    assert parsed.think_format_ok and parsed.json_format_ok and parsed.invalid is None
    assert parsed.bbox == (1272.0, 482.0, 1528.0, 738.0)
    assert parsed.response == 'The object is found.'
    assert parsed.points is None
    assert parsed.data == {'bbox': [1272, 482, 1528, 738], 'response': 'The object is found.'}


def test_realistic_refiner_completion():
    parsed = parse_completion(REFINER_OK, 'refiner')
    assert parsed.json_format_ok and parsed.think_format_ok
    assert parsed.bbox == (201.5, 190.0, 240.0, 231.0)
    assert parsed.points == ((215.0, 205.0), (228.0, 219.0))
    assert parsed.response == 'B'


def test_braces_and_answers_inside_the_reasoning_are_ignored():
    think = ('I could answer <answer>{"bbox": [0, 0, 9, 9], "response": "wrong"}</answer> but '
             'that is only a thought {"bbox": [1, 1, 2, 2]}')
    parsed = parse_completion(f'<think>{think}</think><answer>{{"bbox": [5, 6, 7, 8], '
                              '"response": "right"}</answer>', 'explorer')
    assert parsed.bbox == (5.0, 6.0, 7.0, 8.0) and parsed.response == 'right'
    assert parsed.think == think


def test_last_complete_answer_block_wins():
    text = _explorer('{"bbox": [1, 2, 3, 4], "response": "first"}') + \
        '<answer>{"bbox": [5, 6, 7, 8], "response": "second"}</answer>'
    assert parse_completion(text, 'explorer').response == 'second'
    # a complete block followed by a truncated one: the complete one is used
    truncated = _explorer('{"bbox": [1, 2, 3, 4], "response": "done"}') + '<answer>{"bbox": [5, '
    parsed = parse_completion(truncated, 'explorer')
    assert parsed.response == 'done' and not parsed.think_format_ok


@pytest.mark.parametrize('answer', [
    "{'bbox': [10, 20, 30, 40], 'response': \"It's the car {}\",}",
    "{'bbox': (10, 20, 30, 40), 'response': 'It\\'s the car {}'} trailing }",
])
def test_single_quoted_python_style_json(answer):
    parsed = parse_completion(_explorer(answer), 'explorer')
    assert parsed.json_format_ok, parsed
    assert parsed.bbox == (10.0, 20.0, 30.0, 40.0) and parsed.response == "It's the car {}"


def test_python_literal_never_evaluates_code():
    text = _explorer("{'bbox': __import__('os').system('echo pwned'), 'response': 'x'}")
    parsed = parse_completion(text, 'explorer')
    assert parsed.data is None and parsed.invalid == 'bad_json'


@pytest.mark.parametrize('answer', [
    '```json\n{"bbox": [10, 20, 30, 40], "response": "red"}\n```',
    '```\n{"bbox": [10, 20, 30, 40], "response": "red"}\n```\n',
    'Here is the result: {"bbox": [10, 20, 30, 40], "response": "red"} -- hope it helps.',
    '[{"bbox": [10, 20, 30, 40], "response": "red"}]',
    '{"note": "see below"} {"bbox": [10, 20, 30, 40], "response": "red"}',
])
def test_json_found_inside_fences_and_surrounding_text(answer):
    parsed = parse_completion(_explorer(answer), 'explorer')
    assert parsed.json_format_ok, parsed
    assert parsed.bbox == (10.0, 20.0, 30.0, 40.0) and parsed.response == 'red'
    assert parsed.think_format_ok


@pytest.mark.parametrize('suffix,think_ok', [
    ('', True), ('\n', True), ('  \n\t ', True),
    (' The answer is red.', False), ('<|im_end|>', False), ('\n</answer>', True),
])
def test_think_format_and_trailing_text(suffix, think_ok):
    text = EXPLORER_OK + suffix
    parsed = parse_completion(text, 'explorer')
    assert parsed.think_format_ok is think_ok
    assert parsed.json_format_ok  # the answer itself is still read


@pytest.mark.parametrize('text,think_ok', [
    ('  \n<think>a</think><answer>{}</answer>', True),
    ('<think>a</think>  \n  <answer>{}</answer>', True),
    ('Sure! <think>a</think><answer>{}</answer>', False),
    ('<think>a</think> so <answer>{}</answer>', False),
    ('<answer>{}</answer><think>a</think>', False),
    ('<answer>{}</answer>', False),
    ('<think>a</think>', False),
    ('<THINK>a</THINK><ANSWER>{}</ANSWER>', False),
    ('<think>multi\nline\n</think><answer>\n{}\n</answer>', True),
])
def test_think_format_layout(text, think_ok):
    assert parse_completion(text, 'explorer').think_format_ok is think_ok


def test_truncated_generation_without_closing_tag_still_parses_the_json():
    parsed = parse_completion('<think>ok</think><answer>{"bbox": [1, 2, 3, 4], "response": "x"}',
                              'explorer')
    assert not parsed.think_format_ok
    assert parsed.json_format_ok and parsed.bbox == (1.0, 2.0, 3.0, 4.0)
    cut = parse_completion('<think>ok</think><answer>{"bbox": [1, 2, 3, 4], "resp', 'explorer')
    assert cut.invalid == 'bad_json' and cut.bbox is None
    cut_think = parse_completion('<think>I am still thinking about {"bbox"', 'explorer')
    assert cut_think.invalid == 'no_answer_tag' and cut_think.think is None


@pytest.mark.parametrize('text', ['', '   ', '\n\t\n', 'The object is found.', '</answer>',
                                  '{"bbox": [1, 2, 3, 4], "response": "no tags"}'])
def test_no_answer_tag(text):
    parsed = parse_completion(text, 'refiner')
    assert parsed.invalid == 'no_answer_tag' and not parsed.json_format_ok
    assert parsed.answer_text is None and parsed.data is None and parsed.bbox is None


@pytest.mark.parametrize('text', [None, b'<answer>{}</answer>', 12, ['<answer>']])
def test_non_string_input_is_invalid_not_an_error(text):
    assert parse_completion(text, 'explorer').invalid == 'no_answer_tag'


def test_unicode_text():
    text = ('<think>Der Wagen (车) liegt bei {x≈1400} — 🚗</think><answer>{"bbox": [1, 2, 3, 4], '
            '"response": "Rot 🚗"}</answer>')
    parsed = parse_completion(text, 'explorer')
    assert parsed.json_format_ok and parsed.response == 'Rot 🚗' and '车' in parsed.think


@pytest.mark.parametrize('answer,reason', [
    ('The object is found.', 'no_json'),
    ('', 'no_json'),
    ('[10, 20, 30, 40]', 'no_json'),
    ('{bbox: [1, 2, 3, 4], response: x}', 'bad_json'),
    ('{"bbox": [1, 2, 3, 4], "response": "x"', 'bad_json'),
    ('{{{{', 'bad_json'),
    ('{"box": [1, 2, 3, 4], "response": "x"}', 'missing_key:bbox'),
    ('{"bbox": [1, 2, 3, 4]}', 'missing_key:response'),
    ('{"bbox": [1, 2, 3], "response": "x"}', 'bad_bbox'),
    ('{"bbox": [1, 2, 3, 4, 5], "response": "x"}', 'bad_bbox'),
    ('{"bbox": "1, 2, 3, 4", "response": "x"}', 'bad_bbox'),
    ('{"bbox": {"x1": 1}, "response": "x"}', 'bad_bbox'),
    ('{"bbox": [true, 2, 3, 4], "response": "x"}', 'bad_bbox'),
    ('{"bbox": [null, 2, 3, 4], "response": "x"}', 'bad_bbox'),
    ('{"bbox": ["ten", 2, 3, 4], "response": "x"}', 'bad_bbox'),
    ('{"bbox": [[1, 2, 3, 4], [5, 6, 7, 8]], "response": "x"}', 'bad_bbox'),
    ('{"bbox": [[[1, 2]], [3, 4]], "response": "x"}', 'bad_bbox'),
    ('{"bbox": [30, 2, 10, 4], "response": "x"}', 'bad_bbox'),
    ('{"bbox": [1, 40, 3, 4], "response": "x"}', 'bad_bbox'),
    ('{"bbox": [5, 5, 5, 9], "response": "x"}', 'bad_bbox'),
    ('{"bbox": [0, 0, 0, 0], "response": "x"}', 'bad_bbox'),
    ('{"bbox": [1, 2, NaN, 4], "response": "x"}', 'non_finite'),
    ('{"bbox": [1, 2, Infinity, 4], "response": "x"}', 'non_finite'),
    ('{"bbox": [-Infinity, 2, 3, 4], "response": "x"}', 'non_finite'),
    ('{"bbox": [1, 2, 1e999, 4], "response": "x"}', 'non_finite'),
    ('{"bbox": ["nan", 2, 3, 4], "response": "x"}', 'non_finite'),
    ("{'bbox': [1, 2, 3, " + '9' * 400 + "], 'response': 'x'}", 'non_finite'),
    ('{"bbox": [1, 2, 3, 4], "response": ""}', 'empty_response'),
    ('{"bbox": [1, 2, 3, 4], "response": "  \\n "}', 'empty_response'),
    ('{"bbox": [1, 2, 3, 4], "response": null}', 'bad_response'),
    ('{"bbox": [1, 2, 3, 4], "response": ["A", "B"]}', 'bad_response'),
    ('{"bbox": [1, 2, 3, 4], "response": true}', 'bad_response'),
])
def test_explorer_invalid_reasons(answer, reason):
    parsed = parse_completion(_explorer(answer), 'explorer')
    assert parsed.invalid == reason
    assert not parsed.json_format_ok
    assert parsed.think_format_ok  # the layout is fine; only the answer is broken


@pytest.mark.parametrize('overrides,reason', [
    (dict(points_1=_DROP), 'missing_key:points_1'),
    (dict(points_2=_DROP), 'missing_key:points_2'),
    (dict(points_1=[1]), 'bad_points'),
    (dict(points_2=[1, 2, 3]), 'bad_points'),
    (dict(points_1='30, 40'), 'bad_points'),
    (dict(points_2=[True, 4]), 'bad_points'),
    (dict(points_1=[[1, 2], [3, 4]]), 'bad_points'),
    (dict(points_1=[float('nan'), 4]), 'non_finite'),
    (dict(points_2=[3, float('inf')]), 'non_finite'),
    (dict(bbox=[60, 20, 10, 80]), 'bad_bbox'),
    (dict(response=''), 'empty_response'),
    (dict(response=_DROP), 'missing_key:response'),
])
def test_refiner_invalid_reasons(overrides, reason):
    parsed = parse_completion(_explorer(_refiner_json(**overrides)), 'refiner')
    assert parsed.invalid == reason and not parsed.json_format_ok


def test_first_problem_is_reported_in_key_order():
    answer = _refiner_json(bbox=[3, 3, 1, 1], points_1=[1], response='')
    assert parse_completion(_explorer(answer), 'refiner').invalid == 'bad_bbox'
    answer = _refiner_json(points_1=[1], points_2=_DROP, response='')
    assert parse_completion(_explorer(answer), 'refiner').invalid == 'bad_points'


def test_valid_fields_are_kept_when_another_field_is_invalid():
    parsed = parse_completion(_explorer(_refiner_json(response='')), 'refiner')
    assert parsed.invalid == 'empty_response'
    assert parsed.bbox == (10.0, 20.0, 60.0, 80.0)
    assert parsed.points == ((30.0, 40.0), (35.0, 50.0))
    parsed = parse_completion(_explorer(_refiner_json(bbox=[1, 2], points_2=[1])), 'refiner')
    assert parsed.bbox is None and parsed.points is None
    assert parsed.response == 'The object is found.'


def test_numbers_as_strings_and_nested_boxes():
    parsed = parse_completion(_explorer(_refiner_json(
        bbox=[['10', ' 20.5 '], ['60', '80']], points_1=[['30', '40']], points_2=['35', 50.25])),
        'refiner')
    assert parsed.json_format_ok
    assert parsed.bbox == (10.0, 20.5, 60.0, 80.0)
    assert parsed.points == ((30.0, 40.0), (35.0, 50.25))
    flat = parse_completion(_explorer('{"bbox": [[1, 2, 3, 4]], "response": "x"}'), 'explorer')
    assert flat.bbox == (1.0, 2.0, 3.0, 4.0)


def test_all_zero_box_is_the_refiners_absent_answer():
    answer = _refiner_json(bbox=[0, 0, 0, 0], points_1=[0, 0], points_2=[0, 0],
                           response='No object found')
    parsed = parse_completion(_explorer(answer), 'refiner')
    assert parsed.json_format_ok and parsed.bbox == (0.0, 0.0, 0.0, 0.0)
    assert parsed.response == 'No object found'
    assert parse_completion(_explorer(answer), 'explorer').invalid == 'bad_bbox'


def test_negative_and_out_of_frame_coordinates_are_left_to_the_caller():
    parsed = parse_completion(_explorer('{"bbox": [-20, -5, 5000, 3000], "response": "x"}'),
                              'explorer')
    assert parsed.json_format_ok and parsed.bbox == (-20.0, -5.0, 5000.0, 3000.0)


def test_numeric_response_is_kept_as_text():
    parsed = parse_completion(_explorer('{"bbox": [1, 2, 3, 4], "response": 3}'), 'explorer')
    assert parsed.json_format_ok and parsed.response == '3'


def test_explorer_ignores_points():
    parsed = parse_completion(_explorer(_refiner_json(points_1='junk')), 'explorer')
    assert parsed.json_format_ok and parsed.points is None


def test_object_with_a_bbox_is_preferred_over_earlier_objects():
    answer = '{"explanation": "see"} then {"bbox": [1, 2, 3, 4], "response": "x"}'
    parsed = parse_completion(_explorer(answer), 'explorer')
    assert parsed.json_format_ok and parsed.data == {'bbox': [1, 2, 3, 4], 'response': 'x'}
    only_other = parse_completion(_explorer('{"explanation": "see"}'), 'explorer')
    assert only_other.invalid == 'missing_key:bbox' and only_other.data == {'explanation': 'see'}


def test_result_is_frozen():
    parsed = parse_completion(EXPLORER_OK, 'explorer')
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.bbox = None


def test_unknown_stage_is_a_programming_error():
    with pytest.raises(ValueError, match='unknown stage'):
        parse_completion(EXPLORER_OK, 'gse')


_DEGENERATE = {
    'braces': '{' * 20000, 'brackets': '[' * 20000, 'brace_quote': "{'" * 20000,
    'mismatched': '{)' * 20000, 'closers': '{}]' * 20000, 'quoted': "{'a'[" * 10000,
    'deep_json': '{"a": ' * 5000, 'deep_json_lists': '{"a": [1,' * 5000,
    'deep_literal': "{'bbox': " + '(' * 5000 + ')' * 5000 + '}',
}


@pytest.mark.parametrize('answer', list(_DEGENERATE.values()), ids=list(_DEGENERATE))
def test_degenerate_output_is_cheap_and_safe(answer):
    start = time.perf_counter()
    parsed = parse_completion(_explorer(answer) + answer, 'refiner')
    assert time.perf_counter() - start < 5  # generous: about 0.1 s here
    assert not parsed.json_format_ok


def test_deeply_nested_text_never_reaches_literal_eval(monkeypatch):
    """``ast.literal_eval`` may crash the interpreter on deep nesting (Python docs): avoid it."""
    import ast
    depths = []
    real = ast.literal_eval

    def spy(source):
        depths.append(max(source.count(c) for c in '([{'))
        return real(source)

    monkeypatch.setattr(ast, 'literal_eval', spy)
    for answer in ("{'bbox': " + '(' * 500 + ')' * 500 + '}', "{'a': " + '[' * 500 + "}",
                   "{'a': {'b': " * 300):
        parse_completion(_explorer(answer), 'explorer')
    assert max(depths, default=0) <= 32
    parsed = parse_completion(_explorer("{'bbox': [1, 2, 3, 4], 'response': 'x'}"), 'explorer')
    assert parsed.json_format_ok and depths  # the spy does see ordinary literals


def _check_invariants(parsed: ParsedCompletion):
    assert isinstance(parsed.think_format_ok, bool)
    assert parsed.json_format_ok is (parsed.invalid is None)
    if parsed.bbox is not None:
        assert len(parsed.bbox) == 4 and all(math.isfinite(v) for v in parsed.bbox)
        x1, y1, x2, y2 = parsed.bbox
        assert (x2 > x1 and y2 > y1) or (parsed.stage == 'refiner' and parsed.bbox == (0,) * 4)
    if parsed.points is not None:
        assert parsed.stage == 'refiner'
        assert all(len(p) == 2 and all(math.isfinite(v) for v in p) for p in parsed.points)
    if parsed.response is not None:
        assert parsed.response == parsed.response.strip() and parsed.response
    if parsed.json_format_ok:
        assert parsed.bbox is not None and parsed.response is not None
        assert (parsed.points is not None) is (parsed.stage == 'refiner')


@settings(max_examples=500, deadline=None)
@given(text=st.text(), stage=st.sampled_from(['explorer', 'refiner']))
def test_fuzz_arbitrary_text_never_raises(text, stage):
    _check_invariants(parse_completion(text, stage))


_FRAGMENTS = st.sampled_from([
    '<think>', '</think>', '<answer>', '</answer>', '{', '}', '[', ']', '(', ')', '"', "'", ',',
    ':', '\\', '"bbox"', "'bbox'", '"points_1"', '"points_2"', '"response"', '"x"', 'NaN',
    'Infinity', '1e999', '-1', '0', '12', '3.5', '"7"', 'true', 'null', '```json', '```', '\n',
    ' ', 'The object is found.', 'A', '🚗', '\x00',
])


@settings(max_examples=1000, deadline=None)
@given(parts=st.lists(_FRAGMENTS, max_size=60), stage=st.sampled_from(['explorer', 'refiner']))
def test_fuzz_answer_like_fragments_never_raise(parts, stage):
    _check_invariants(parse_completion(''.join(parts), stage))


_COORD = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(x1=_COORD, y1=_COORD, w=st.floats(min_value=0.5, max_value=1e4),
       h=st.floats(min_value=0.5, max_value=1e4), p=st.tuples(_COORD, _COORD, _COORD, _COORD),
       response=st.text(min_size=1).filter(str.strip), think=st.text(),
       quote=st.sampled_from(['json', 'python']))
def test_fuzz_well_formed_answers_round_trip(x1, y1, w, h, p, response, think, quote):
    box = [x1, y1, x1 + w, y1 + h]
    think, response = think.replace('<', '('), response.replace('<', '(')  # no stray tags
    data = {'bbox': box, 'points_1': list(p[:2]), 'points_2': list(p[2:]), 'response': response}
    answer = json.dumps(data) if quote == 'json' else repr(data)
    parsed = parse_completion(f'<think>{think}</think><answer>{answer}</answer>', 'refiner')
    assert parsed.json_format_ok, parsed
    assert parsed.bbox == tuple(box)
    assert parsed.points == (tuple(p[:2]), tuple(p[2:]))
    assert parsed.response == response.strip()


# ------------------------------------------------------------------------------------------------
# Numbers a degenerate model writes, and the parser's time on 100k characters (issue 12)
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('answer,reason', [
    ('{"bbox": [0, 0, 1e39, 1e39], "response": "x"}', 'out_of_range'),  # inf in float32
    ('{"bbox": [0, 0, 1e308, 1e308], "response": "x"}', 'out_of_range'),
    ('{"bbox": [-1e308, 0, 10, 10], "response": "x"}', 'out_of_range'),
    ('{"bbox": [0, 0, 10000001, 20], "response": "x"}', 'out_of_range'),
    ('{"bbox": [0, 0, "1e8", 20], "response": "x"}', 'out_of_range'),
    ('{"bbox": [0, 0, "١٢", 20], "response": "x"}', 'bad_bbox'),   # Arabic-Indic digits
    ('{"bbox": [0, 0, "１２", 20], "response": "x"}', 'bad_bbox'),  # full-width digits
    ('{"bbox": [0, 0, "1_000", 20], "response": "x"}', 'bad_bbox'),
    ('{"bbox": [0, 0, "²", 20], "response": "x"}', 'bad_bbox'),
])
def test_numbers_beyond_the_bound_or_not_in_ascii_are_invalid(answer, reason):
    parsed = parse_completion(_explorer(answer), 'explorer')
    assert parsed.invalid == reason and parsed.bbox is None


def test_the_coordinate_bound_is_inclusive_and_applies_to_points():
    bound = MAX_COORDINATE
    parsed = parse_completion(_explorer(_refiner_json(
        bbox=[-bound, -bound, bound, bound], points_1=[bound, -bound])), 'refiner')
    assert parsed.json_format_ok and parsed.bbox == (-bound, -bound, bound, bound)
    parsed = parse_completion(_explorer(_refiner_json(points_2=[3, 1e39])), 'refiner')
    assert parsed.invalid == 'out_of_range' and parsed.points is None
    assert parsed.bbox == (10.0, 20.0, 60.0, 80.0)  # the valid fields are still kept


_THINK_PATTERN = re.compile(r'\s*<think>.*?</think>\s*<answer>.*?</answer>\s*', re.DOTALL)
_LAYOUT_FRAGMENTS = st.sampled_from(['<think>', '</think>', '<answer>', '</answer>', ' ', '\n',
                                     '\u00a0', '\u2003', '\x1c', '\x85', 'a', '<', '>', '/'])


@settings(max_examples=2000, deadline=None)
@given(parts=st.lists(_LAYOUT_FRAGMENTS, max_size=12))
def test_think_format_is_the_documented_pattern(parts):
    """The linear-time check accepts exactly the texts the rule's pattern fully matches."""
    text = ''.join(parts)
    assert parse_completion(text, 'explorer').think_format_ok is (
        _THINK_PATTERN.fullmatch(text) is not None)


@pytest.mark.parametrize('text', [
    '<think>' + '</think><answer></answer>x' * 8000,   # the pattern backtracks over every tag
    '<answer>' + '{"' * 100_000,                        # 100k braces, each a failed start
    '<answer>' + '{[' * 100_000,
    '<answer>' + "{'x" * 66_000,
])
def test_a_200k_character_completion_parses_in_linear_time(text):
    start = time.perf_counter()
    parsed = parse_completion(text, 'refiner')
    assert time.perf_counter() - start < 1.0  # about 2 ms here; seconds when quadratic
    assert not parsed.json_format_ok


def test_at_most_max_object_starts_failed_braces_are_tried():
    answer = '{"bbox": [1, 2, 3, 4], "response": "x"}'
    found = parse_completion(_explorer('{ ' * (MAX_OBJECT_STARTS - 1) + answer), 'explorer')
    assert found.json_format_ok and found.bbox == (1.0, 2.0, 3.0, 4.0)
    lost = parse_completion(_explorer('{ ' * MAX_OBJECT_STARTS + answer), 'explorer')
    assert lost.invalid == 'bad_json'
    # objects read do not count: many small objects before the answer are fine
    many = parse_completion(_explorer('{"a": 1} ' * 500 + answer), 'explorer')
    assert many.json_format_ok
