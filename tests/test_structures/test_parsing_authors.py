# Copyright (c) finers_mm contributors. All rights reserved.
"""The authors' reading of a completion (``parse_completion(..., protocol='authors')``): the
first ``{[^}]+}`` of the whole text, strict JSON, their think format and JSON-format rule, and the
raw box / point readers of their reward terms."""
import json
import math
import random
import re
import time

import pytest

from finers_mm.structures.authors_parsing import (authors_box, authors_json_format_ok,
                                                  authors_json_object, authors_json_text,
                                                  authors_point)
from finers_mm.structures.parsing import parse_completion

THEIR_JSON = re.compile(r'{[^}]+}')
THEIR_THINK = re.compile(r'<think>.*?</think>\s*<answer>.*?</answer>', re.DOTALL)
PIECES = ('{', '}', '{}', 'a', ' ', '\n', '"', '<think>', '</think>', '<answer>', '</answer>',
          '\u3000', 'x}', '{{', ':', '1')


def _random_texts(seed, count=3000):
    rng = random.Random(seed)
    return [''.join(rng.choice(PIECES) for _ in range(rng.randint(0, 14))) for _ in range(count)]


def test_first_object_text_is_their_pattern_s_first_match():
    for text in _random_texts(0):
        match = THEIR_JSON.search(text)
        assert authors_json_text(text) == (match.group(0) if match else None), repr(text)


def test_think_format_is_their_fullmatch():
    for text in _random_texts(1):
        parsed = parse_completion(text, 'explorer', protocol='authors')
        assert parsed.think_format_ok == bool(THEIR_THINK.fullmatch(text)), repr(text)


@pytest.mark.parametrize('text', [
    '{' * 200_000,                    # their re.search backtracks over every '{': quadratic
    '{' * 100_000 + '}',
    '{}' * 100_000,
    '<answer>' + '{"a": [' * 50_000 + '}',  # one match, nested past json's recursion limit
])
def test_degenerate_texts_parse_in_linear_time(text):
    start = time.perf_counter()
    parsed = parse_completion(text, 'refiner', protocol='authors')
    assert time.perf_counter() - start < 1.0  # milliseconds here; minutes when quadratic
    assert parsed.data is None and not parsed.json_format_ok


def test_parse_fields_under_the_authors_reading():
    good = {'bbox': [1, 2, 3, 4], 'points_1': [1, 2], 'points_2': [2, 3], 'response': 'x'}
    text = f' <think>{{"note": 1}}</think><answer>{json.dumps(good)}</answer>'
    parsed = parse_completion(text, 'refiner', protocol='authors')
    assert parsed.rule == 'authors' and parsed.answer_text == '{"note": 1}'
    assert parsed.data == {'note': 1} and not parsed.json_format_ok
    assert parsed.invalid == 'missing_key:bbox' and not parsed.think_format_ok
    parsed = parse_completion(json.dumps(good), 'refiner', protocol='authors')
    assert parsed.json_format_ok and parsed.invalid is None and parsed.bbox == (1, 2, 3, 4)
    assert parse_completion('no braces', 'refiner', protocol='authors').invalid == 'no_json'
    single = parse_completion(str(good), 'refiner', protocol='authors')
    assert single.invalid == 'bad_json' and single.data is None
    assert parse_completion(None, 'refiner', protocol='authors').rule == 'authors'
    with pytest.raises(ValueError, match='unknown protocol'):
        parse_completion('x', 'refiner', protocol='paper')


def test_json_format_ok_and_invalid_may_differ_under_the_authors_reading():
    """Their format term passes an inverted box and items of any type; the fields keep
    finers_mm's rules (so ``bbox`` is None and ``invalid`` says why)."""
    text = json.dumps({'bbox': [30, 40, 10, 20], 'response': 'x'})
    parsed = parse_completion(text, 'explorer', protocol='authors')
    assert parsed.json_format_ok and parsed.invalid == 'bad_bbox' and parsed.bbox is None
    default = parse_completion(f'<answer>{text}</answer>', 'explorer')
    assert not default.json_format_ok


@pytest.mark.parametrize('data,stage,ok', [
    ({'bbox': [1, 2, 3, 4], 'response': 'r'}, 'explorer', True),
    ({'bbox': [None, '1', [], True], 'response': 'r'}, 'explorer', True),
    ({'bbox': [0, 0, 0, 0], 'response': 'r'}, 'explorer', True),
    ({'bbox': '1234', 'response': 'r'}, 'explorer', False),
    ({'bbox': [1, 2, 3, 4], 'response': ' \u3000'}, 'explorer', False),
    ({'bbox': [1, 2, 3, 4], 'response': 1}, 'explorer', False),
    ({'bbox': [1, 2, 3, 4], 'response': 'r'}, 'refiner', False),
    ({'bbox': [1, 2, 3, 4], 'points_1': ['a', None], 'points_2': [1, 2], 'response': 'r'},
     'refiner', True),
    ({'bbox': [1, 2, 3, 4], 'points_1': [1, 2, 3], 'points_2': [1, 2], 'response': 'r'},
     'refiner', False),
    ({'bbox': [1, 2, 3, 4], 'points_1': '12', 'points_2': [1, 2], 'response': 'r'},
     'refiner', False),
    (None, 'explorer', False),
])
def test_authors_json_format_ok(data, stage, ok):
    assert authors_json_format_ok(data, stage) is ok


def test_authors_json_object():
    assert authors_json_object('{"a": NaN, "b": 1e999}')['b'] == math.inf
    assert authors_json_object('{"a": ' + '9' * 5000 + '}') is None  # int digit limit
    assert authors_json_object("{'a': 1}") is None
    assert authors_json_object('{"a": 1, "a": 2}') == {'a': 2}


@pytest.mark.parametrize('value,box', [
    ([1, 2, 3, 4], [1, 2, 3, 4]),
    ([4, 3, 2, 1], [4, 3, 2, 1]),
    ([True, False, 1.5, 10**30], [True, False, 1.5, 10**30]),
    ([1, 2, 3, '4'], None),
    ([[1, 2], [3, 4]], None),
    ([1, 2, 3], None),
    ([1, 2, 3, None], None),
    ('1234', None),
])
def test_authors_box(value, box):
    assert authors_box({'bbox': value}) == box
    assert authors_box({}) is None and authors_box(None) is None


@pytest.mark.parametrize('value,point', [
    ([12, 34], (12, 34)),
    ([12.9, -3.9], (12, -3)),
    (['12', ' 34 '], (12, 34)),
    ([' 1_0', '٣'], (10, 3)),  # what int() reads
    ([1, 2, 3], (1, 2)),
    ('12', (1, 2)),
    ([True, 5], (1, 5)),
    (['1.5', 2], None),
    ([math.nan, 2], None),
    ([math.inf, 2], None),
    ([[1, 2]], None),
    ([None, 2], None),
    ('1', None),
    (12, None),
])
def test_authors_point(value, point):
    assert authors_point({'points_1': value}, 'points_1') == point
