# Copyright (c) finers_mm contributors. All rights reserved.
"""The authors' evaluation reading (``protocol='authors'``, ``phase='test'``): what their
``extract_bbox_points_think`` reads from a completion, re-derived here in their own control flow
and compared with ours on generated texts, plus hand-written cases."""
import ast
import json
import random
import re

import pytest

from finers_mm.structures.parsing import parse_completion


def their_reading(output_text):
    """Their ``extract_bbox_points_think(text, 1, 1, True)``: (box, points, response), or
    ``'raises'`` where their script would stop."""
    try:
        json_match = re.search(r'{[^}]+}', output_text)
        points = None
        if not json_match:
            return None, None, ''
        json_str = json_match.group(0).replace(']"', ']')
        try:
            data = json.loads(json_str)
        except json.JSONDecodeError:
            try:
                data = ast.literal_eval(json_str)
            except (ValueError, SyntaxError):
                data = None
        if data is None:
            return None, None, ''
        try:
            final_response = data['response']
        except Exception:
            final_response = ''
        bbox_key = next((key for key in data.keys() if 'bbox' in key.lower()), None)
        if bbox_key and len(data[bbox_key]) == 4:
            content_bbox = [int(v) for v in data[bbox_key]]
        else:
            content_bbox = None
        points_keys = [key for key in data.keys() if 'points' in key.lower()][:2]
        if len(points_keys) == 2:
            points = [[int(data[k][0]), int(data[k][1])] for k in points_keys]
        return content_bbox, points, final_response
    except Exception:
        return 'raises'


PIECES = ('{', '}', '[', ']', ',', ' ', '"bbox": ', "'bbox': ", '"BBox_2d": ', '"points_1": ',
          "'points_2': ", '"points": ', '"response": ', "'response': ", '"red"', "'A'", '12',
          '7.9', '-3', '"5"', '"1.5"', 'null', 'None', 'true', ']"', '[10, 20, 30, 40]',
          '[40, 30, 20, 10]', '[5, 6]', '<think>', '</think>', '<answer>', '</answer>', 'x')


def _texts(count, seed=0):
    rng = random.Random(seed)
    well_formed = ('{"bbox": [10, 20, 30, 40], "points_1": [12, 22], "points_2": [28, 38], '
                   '"response": "red"}')
    texts = []
    for _ in range(count):
        if rng.random() < 0.6:
            body = well_formed
            for _ in range(rng.randint(1, 3)):  # mutate it
                i = rng.randrange(len(body))
                body = body[:i] + rng.choice(PIECES) + body[i + rng.randint(0, 3):]
        else:
            body = ''.join(rng.choice(PIECES) for _ in range(rng.randint(1, 25)))
        texts.append('<think>t</think><answer>' + body + '</answer>')
    return texts


def _ours(text, stage='refiner'):
    parsed = parse_completion(text, stage, 'authors', phase='test')
    box = None if parsed.bbox is None else [int(v) for v in parsed.bbox]
    points = None if parsed.points is None else [[int(v) for v in p] for p in parsed.points]
    return parsed, box, points


def test_it_reads_what_their_evaluation_reads_on_generated_texts():
    compared = boxes = 0
    for text in _texts(3000):
        theirs = their_reading(text)
        if theirs == 'raises':  # their script stops there; ours reads a missing field
            continue
        their_box, their_points, their_response = theirs
        parsed, box, points = _ours(text)
        compared += 1
        if their_box is not None:
            boxes += 1
            x1, y1, x2, y2 = their_box
            sorted_box = [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]
            # finers_mm's field checks on top: a box of zero width or height is no box
            assert box == (sorted_box if x1 != x2 and y1 != y2 else None) or (
                sorted_box == [0, 0, 0, 0] and box == [0, 0, 0, 0]), text
        else:
            assert box is None, text
        assert points == their_points, text
        if isinstance(their_response, str) and their_response.strip():
            assert parsed.response == their_response.strip(), text
    assert compared > 2000 and boxes > 150 and compared - boxes > 1000


def test_hand_written_cases():
    # their own prompt's example style: a single-quoted dict, read at test, not by the rewards
    text = ("<think>t</think><answer>{'bbox': [10,100,200,210], 'points_1': [30,110], "
            "'points_2': [35,180], 'response': 'A'}</answer>")
    parsed, box, points = _ours(text)
    assert box == [10, 100, 200, 210] and points == [[30, 110], [35, 180]]
    assert parsed.response == 'A' and parsed.invalid is None
    assert parse_completion(text, 'refiner', 'authors', phase='train').invalid == 'bad_json'
    # any key holding 'bbox', int() truncation, an inverted box's corners sorted, `]"` dropped
    parsed, _, _ = _ours('{"BBox_2d": [12.9, 20.2, 5.5, 40]"}', 'explorer')
    assert parsed.bbox == (5.0, 20.0, 12.0, 40.0)
    # a value their int() refuses: no box (their script would stop)
    assert _ours('{"bbox": ["1.5", 2, 3, 4], "response": "x"}')[1] is None
    # no response key: their '' (invalid here, the box still read)
    parsed, box, _ = _ours('{"bbox": [1, 2, 3, 4]}', 'explorer')
    assert box == [1, 2, 3, 4] and parsed.invalid == 'empty_response'


@pytest.mark.parametrize('stage', ['explorer', 'refiner'])
def test_finers_mm_reads_one_way_in_both_phases(stage):
    for text in _texts(200, seed=1):
        assert (parse_completion(text, stage, phase='test')
                == parse_completion(text, stage, phase='train'))
