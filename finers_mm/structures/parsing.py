# Copyright (c) finers_mm contributors. All rights reserved.
"""The one parser of explorer (GSE) and refiner (LPR) completions.

Inference, rewards and metrics all read a completion through :func:`parse_completion`, so a format
rule lives here only. The expected answers (METHOD.md, "Answer formats")::

    explorer: <think>...</think><answer>{"bbox": [x1, y1, x2, y2], "response": "..."}</answer>
    refiner:  <think>...</think><answer>{"bbox": [x1, y1, x2, y2], "points_1": [x, y],
                                         "points_2": [x, y], "response": "..."}</answer>

A malformed completion is data, never an error: :func:`parse_completion` never raises on any text
and reports the first problem in ``ParsedCompletion.invalid``. Its time is linear in the text's
length (a 100k-character degenerate completion parses in milliseconds), and every number it
returns is finite and at most :data:`MAX_COORDINATE` in magnitude, so every frame map downstream
stays finite in float32.

Rules (each a decision, tested in ``tests/test_structures/test_parsing.py``):

- **Think format** (``think_format_ok``): the WHOLE text matches
  ``^\\s*<think>.*?</think>\\s*<answer>.*?</answer>\\s*$`` (``re.DOTALL``, Unicode ``\\s``;
  checked without backtracking, so in linear time). Only
  whitespace may come before ``<think>``, between ``</think>`` and ``<answer>`` and after the final
  ``</answer>``; any other trailing text (a second sentence, an end-of-turn token left in by
  decoding without ``skip_special_tokens``) makes it False. As in the authors' pattern the lazy
  groups may span further tags, so ``<think>a</think><answer>x</answer><answer>y</answer>`` matches.
  Tags are case-sensitive.
- **Answer block** (``answer_text``): the LAST complete ``<answer>...</answer>`` block, i.e. the
  text between the last ``</answer>`` and the last ``<answer>`` before it (so answers quoted
  inside the reasoning are skipped). Without any complete block (a generation cut off before ``</answer>``)
  it is the text after the last ``<answer>``, parsed all the same (``think_format_ok`` is False
  then). No ``<answer>`` at all: ``'no_answer_tag'``. Nothing outside the answer block is searched
  for JSON, so braces and JSON-like text in the reasoning never interfere.
- **Think** (``think``): the text between the first ``<think>`` and the first ``</think>`` after it;
  None without both.
- **JSON object** (``data``): each ``{`` of the answer block is tried left to right as the start of
  a JSON object (``json.JSONDecoder.raw_decode``, so text after the object, Markdown code fences
  around it and a list around it are fine); where strict JSON fails, the bracket-balanced span
  (quotes respected, at most 16 brackets deep) is read as a Python literal with
  ``ast.literal_eval`` (single quotes, trailing commas, tuples; never ``eval``). Objects nested in
  one already read are not tried again, and at most :data:`MAX_OBJECT_STARTS` (64) ``{`` that
  start no object are tried (an answer has one or two; a degenerate block of thousands of braces
  costs no more). The first object holding ``"bbox"`` is used, else the first object. No ``{`` in
  the block: ``'no_json'``; no ``{`` that starts a readable object: ``'bad_json'``.
- **Numbers**: ints, floats and strings holding one number in ASCII (``"12"``, ``" 3.5 "``) are
  accepted; booleans, strings of other digits (``"١٢"``, ``"１２"``, which Python's ``float`` would
  read) or with ``_`` (``"1_0"``) and anything else are not. NaN and infinities (also ``"nan"``,
  ``NaN``, ``1e999``, an integer too large for a float) are ``'non_finite'``. A finite number of
  magnitude above :data:`MAX_COORDINATE` (``1e7``: thousands of times any frame a VLM sees, in
  pixels or on a 0..1000 scale) is ``'out_of_range'``: no answer means it, and without the bound
  ``1e39`` (finite in float64) would become ``inf`` in the float32 frame maps.
- **bbox**: ``[x1, y1, x2, y2]``; one level of nesting is flattened, so ``[[x1, y1], [x2, y2]]`` and
  ``[[x1, y1, x2, y2]]`` are accepted; it must give exactly 4 numbers. A box needs ``x2 > x1`` and
  ``y2 > y1``; an inverted or zero-width box is ``'bad_bbox'`` (never reordered), except the
  all-zero box ``[0, 0, 0, 0]``, which the refiner answers for an absent object ("No object
  found") and which is valid for the refiner only. Coordinates are not checked against the image
  size (the parser does not know the frame); the stages map them to their frame and decide there
  (the explorer's window is shifted into the image; the refiner's box is clipped to its crop,
  ``'bbox_outside_frame'`` when nothing of it is left: :class:`~finers_mm.models.LocalRefiner`).
- **points** (refiner only): ``points_1`` and ``points_2`` each give exactly 2 numbers (``[[x, y]]``
  is flattened too); any other shape is ``'bad_points'``.
- **response**: a string, stripped; an int or float is written as ``str(value)``; any other type is
  ``'bad_response'``; empty after stripping is ``'empty_response'``.
- Each of ``bbox``, ``points`` and ``response`` is filled whenever it is itself valid, even when
  another field is not (rewards score the box of an answer whose response is empty); ``invalid``
  names the first problem in the order: answer tag, JSON, ``bbox``, ``points_1``, ``points_2``,
  ``response``.

Reasons in ``invalid``: ``'no_answer_tag'``, ``'no_json'``, ``'bad_json'``, ``'missing_key:<key>'``,
``'bad_bbox'``, ``'bad_points'``, ``'non_finite'``, ``'out_of_range'``, ``'bad_response'``,
``'empty_response'``.

**The authors' readings** (``protocol='authors'``, :mod:`.authors_parsing`): in training
(``phase='train'``) as the authors' REWARDS read a completion, at inference (``phase='test'``) as
their EVALUATION reads it; ``bbox``, ``points``, ``response`` and ``invalid`` then follow the rules
written there.
"""
import ast
import json
import math
import re
from dataclasses import dataclass, replace
from typing import Any, Optional, Tuple

from .authors_parsing import (authors_eval_fields, authors_eval_object, authors_json_format_ok,
                              authors_json_object, authors_json_text)
from .authors_prompts import TRAIN, check_phase
from .protocols import AUTHORS, DEFAULT_PROTOCOL, FINERS_MM, protocol_setting
from .vocabulary import REFINER, check_stage

Box = Tuple[float, float, float, float]
Point = Tuple[float, float]

#: the middle of the think layout: ``</think>``, whitespace, ``<answer>`` (no backtracking)
_THINK_TO_ANSWER = re.compile(r'</think>\s*<answer>')
_ANSWER_OPEN, _ANSWER_CLOSE = '<answer>', '</answer>'
_THINK_OPEN, _THINK_CLOSE = '<think>', '</think>'
#: deepest bracket nesting handed to ``ast.literal_eval`` (the answer JSON nests 2 deep)
_MAX_LITERAL_DEPTH = 16
_CLOSING_OF = {'{': '}', '[': ']', '(': ')'}
#: most ``{`` of an answer block tried that start no object (a real answer has one or two)
MAX_OBJECT_STARTS = 64
#: largest magnitude of a coordinate: beyond it a number is ``'out_of_range'`` (module docstring)
MAX_COORDINATE = 1e7
#: the characters :func:`_balanced_end` looks at; everything else is skipped at C speed
_BRACKET_OR_QUOTE = re.compile(r'[\[\](){}\'"\\]')

@dataclass(frozen=True)
class ParsedCompletion:
    """One completion of a stage, parsed.

    Attributes:
        stage (str): ``'explorer'`` or ``'refiner'``.
        think (str, optional): the reasoning inside ``<think>...</think>``.
        answer_text (str, optional): the text inside the answer block used.
        data (dict, optional): the JSON object read from ``answer_text``.
        bbox (tuple, optional): ``(x1, y1, x2, y2)`` in the stage's frame, when valid.
        points (tuple, optional): ``((x, y), (x, y))`` from ``points_1`` and ``points_2`` (refiner
            only), when both are valid.
        response (str, optional): the stripped text answer, when non-empty.
        think_format_ok (bool): the whole text has the ``<think>``/``<answer>`` layout.
        invalid (str, optional): the first problem found, None when the answer is well-formed.
        rule (str): the reading it was parsed by: ``'finers_mm'`` or ``'authors'`` (the
            protocol's ``answer_rule``; module docstring).
    """

    stage: str
    think: Optional[str] = None
    answer_text: Optional[str] = None
    data: Optional[dict] = None
    bbox: Optional[Box] = None
    points: Optional[Tuple[Point, Point]] = None
    response: Optional[str] = None
    think_format_ok: bool = False
    invalid: Optional[str] = None
    rule: str = FINERS_MM

    @property
    def json_format_ok(self) -> bool:
        """The answer holds a JSON object with every key of the stage well-formed.

        ``'finers_mm'`` reading: explorer ``bbox`` of 4 finite numbers and a non-empty
        ``response``; refiner also ``points_1`` and ``points_2`` of 2 finite numbers each. Same as
        ``invalid is None``. ``'authors'`` reading: :func:`authors_json_format_ok` of ``data``.
        """
        if self.rule == AUTHORS:
            return authors_json_format_ok(self.data, self.stage)
        return self.invalid is None


def parse_completion(text: str, stage: str, protocol: str = DEFAULT_PROTOCOL,
                     phase: str = TRAIN) -> ParsedCompletion:
    """Parse a completion of the explorer or the refiner; never raises on any ``text``.

    Args:
        text (str): the decoded completion (special tokens skipped). A non-string parses as
            ``'no_answer_tag'``.
        stage (str): ``'explorer'`` or ``'refiner'``.
        protocol (str): ``'finers_mm'`` (default) or ``'authors'``: its ``answer_rule`` picks
            the reading (module docstring).
        phase (str): ``'train'`` (default: rewards) or ``'test'`` (inference): the authors'
            rewards and evaluation read completions differently; finers_mm reads one way.

    Returns:
        ParsedCompletion: the fields found and the first problem (module docstring has the rules).

    Raises:
        ValueError: ``stage`` or ``protocol`` is not a known name (a programming error, not a
            model output).
    """
    check_stage(stage)
    rule = protocol_setting(protocol, 'answer_rule')
    if not isinstance(text, str):
        return ParsedCompletion(stage=stage, invalid='no_answer_tag', rule=rule)
    if rule == AUTHORS:
        return (_parse_authors if check_phase(phase) == TRAIN else _parse_authors_eval)(text, stage)
    think = _think(text)
    think_format_ok = _think_format_ok(text)
    answer_text = _answer_block(text)
    common = dict(stage=stage, think=think, think_format_ok=think_format_ok,
                  answer_text=answer_text)
    if answer_text is None:
        return ParsedCompletion(invalid='no_answer_tag', **common)
    data, problem = _find_object(answer_text)
    if data is None:
        return ParsedCompletion(invalid=problem, **common)
    return _with_fields(data, **common)


def _with_fields(data: dict, **common) -> ParsedCompletion:
    """A :class:`ParsedCompletion` of ``data`` with its fields read and the first problem."""
    stage = common['stage']
    problems = []
    bbox, problem = _read_box(data, stage)
    problems.append(problem)
    points = None
    if stage == REFINER:
        point_1, problem_1 = _read_point(data, 'points_1')
        point_2, problem_2 = _read_point(data, 'points_2')
        problems += [problem_1, problem_2]
        if point_1 is not None and point_2 is not None:
            points = (point_1, point_2)
    response, problem = _read_response(data)
    problems.append(problem)
    invalid = next((p for p in problems if p is not None), None)
    return ParsedCompletion(data=data, bbox=bbox, points=points, response=response,
                            invalid=invalid, **common)


def _authors_common(text: str, stage: str, json_text: Optional[str]) -> dict:
    """The fields both authors' readings fill alike: their think layout (no outer whitespace),
    the matched ``{...}`` as the answer text."""
    return dict(stage=stage, think=_think(text), answer_text=json_text, rule=AUTHORS,
                think_format_ok=_think_format_ok(text, strip=False))


def _parse_authors(text: str, stage: str) -> ParsedCompletion:
    """:func:`parse_completion` as the authors' rewards read (:mod:`.authors_parsing`)."""
    json_text = authors_json_text(text)
    common = _authors_common(text, stage, json_text)
    if json_text is None:
        return ParsedCompletion(invalid='no_json', **common)
    data = authors_json_object(json_text)
    if data is None:
        return ParsedCompletion(invalid='bad_json', **common)
    return _with_fields(data, **common)


def _think(text: str) -> Optional[str]:
    """Text between the first ``<think>`` and the first ``</think>`` after it."""
    start = text.find(_THINK_OPEN)
    if start < 0:
        return None
    start += len(_THINK_OPEN)
    end = text.find(_THINK_CLOSE, start)
    return None if end < 0 else text[start:end]


def _think_format_ok(text: str, strip: bool = True) -> bool:
    """Whether ``text`` fully matches ``\\s*<think>.*?</think>\\s*<answer>.*?</answer>\\s*``.

    The same set of texts as that pattern (``re.DOTALL``) with ``re.fullmatch``, in linear time:
    stripped of whitespace at both ends (``str.strip`` and ``\\s`` agree on Unicode whitespace),
    the text starts with ``<think>``, ends with ``</answer>``, and between the two holds
    ``</think>``, whitespace, ``<answer>``. With ``strip=False`` the pattern has no ``\\s*`` at
    its ends (the authors' ``<think>.*?</think>\\s*<answer>.*?</answer>``).
    """
    body = text.strip() if strip else text
    if not (body.startswith(_THINK_OPEN) and body.endswith(_ANSWER_CLOSE)):
        return False
    middle = body[len(_THINK_OPEN):len(body) - len(_ANSWER_CLOSE)]  # the two cannot overlap
    return _THINK_TO_ANSWER.search(middle) is not None


def _answer_block(text: str) -> Optional[str]:
    """The last complete answer block's content, else the text after the last ``<answer>``."""
    close = text.rfind(_ANSWER_CLOSE)
    if close >= 0:
        start = text.rfind(_ANSWER_OPEN, 0, close)
        if start >= 0:
            return text[start + len(_ANSWER_OPEN):close]
    start = text.rfind(_ANSWER_OPEN)
    return None if start < 0 else text[start + len(_ANSWER_OPEN):]


def _find_object(text: str) -> Tuple[Optional[dict], Optional[str]]:
    """The answer's JSON object and None, or None and ``'no_json'`` / ``'bad_json'``."""
    if '{' not in text:
        return None, 'no_json'
    objects = []
    position, failed = 0, 0
    while failed < MAX_OBJECT_STARTS:
        start = text.find('{', position)
        if start < 0:
            break
        found, end = _object_at(text, start)
        if found is None:
            position, failed = start + 1, failed + 1
        else:
            objects.append(found)
            position = end
    if not objects:
        return None, 'bad_json'
    return next((obj for obj in objects if 'bbox' in obj), objects[0]), None


def _object_at(text: str, start: int) -> Tuple[Optional[dict], int]:
    """A dict starting at ``text[start] == '{'`` and the index after it, else ``(None, start)``."""
    try:
        found, end = json.JSONDecoder().raw_decode(text, start)
    except (ValueError, RecursionError):
        pass
    else:
        return (found, end) if isinstance(found, dict) else (None, start)
    end = _balanced_end(text, start)
    if end is None:
        return None, start
    try:
        found = ast.literal_eval(text[start:end])
    except Exception:  # literal_eval raises many types on arbitrary text; all mean "not a literal"
        return None, start
    return (found, end) if isinstance(found, dict) else (None, start)


def _balanced_end(text: str, start: int) -> Optional[int]:
    """Index after the ``}`` closing ``text[start]``, skipping quoted strings.

    Returns None when a closing bracket does not match its opener, the brackets never balance, or
    they nest deeper than ``_MAX_LITERAL_DEPTH`` (kept away from ``ast.literal_eval``).
    """
    expected = []  # the closing bracket of every open one, innermost last
    quote = None
    escaped = -1  # index of the character a backslash inside quotes escapes
    for match in _BRACKET_OR_QUOTE.finditer(text, start):
        index, char = match.start(), match.group()
        if quote is not None:
            if index == escaped:
                continue
            if char == '\\':
                escaped = index + 1
            elif char == quote:
                quote = None
        elif char in '\'"':
            quote = char
        elif char in _CLOSING_OF:
            expected.append(_CLOSING_OF[char])
            if len(expected) > _MAX_LITERAL_DEPTH:
                return None
        elif char in '}])':
            if not expected or expected.pop() != char:
                return None
            if not expected:
                return index + 1
    return None


def _number(value: Any) -> Tuple[Optional[float], Optional[str]]:
    """One coordinate as a float, or None and ``'bad'`` / ``'non_finite'`` / ``'out_of_range'``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None, 'bad'
    if isinstance(value, str) and (not value.isascii() or '_' in value):
        return None, 'bad'  # float() reads other scripts' digits and '1_0'; a reader would not
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except ValueError:
        return None, 'bad'
    except OverflowError:  # an int too large for a float
        return None, 'non_finite'
    if not math.isfinite(number):
        return None, 'non_finite'
    if abs(number) > MAX_COORDINATE:
        return None, 'out_of_range'
    return number, None


def _numbers(value: Any, count: int) -> Tuple[Optional[tuple], Optional[str]]:
    """Exactly ``count`` numbers from a list (one nesting level flattened), or a problem."""
    if not isinstance(value, (list, tuple)):
        return None, 'bad'
    flat = []
    for item in value:
        if isinstance(item, (list, tuple)):
            flat.extend(item)
        else:
            flat.append(item)
    if len(flat) != count:
        return None, 'bad'
    numbers = []
    for item in flat:
        number, problem = _number(item)
        if problem is not None:
            return None, problem
        numbers.append(number)
    return tuple(numbers), None


#: problems of a number reported as they are (any other makes the field ``'bad_...'``)
_NUMBER_REASONS = ('non_finite', 'out_of_range')


def _read_box(data: dict, stage: str) -> Tuple[Optional[Box], Optional[str]]:
    """``data['bbox']`` checked (module docstring), or None and the problem."""
    if 'bbox' not in data:
        return None, 'missing_key:bbox'
    box, problem = _numbers(data['bbox'], 4)
    if problem is not None:
        return None, problem if problem in _NUMBER_REASONS else 'bad_bbox'
    x1, y1, x2, y2 = box
    if box == (0.0, 0.0, 0.0, 0.0):
        return (box, None) if stage == REFINER else (None, 'bad_bbox')
    if x2 <= x1 or y2 <= y1:
        return None, 'bad_bbox'
    return box, None


def _read_point(data: dict, key: str) -> Tuple[Optional[Point], Optional[str]]:
    """``data[key]`` as ``(x, y)``, or None and the problem."""
    if key not in data:
        return None, f'missing_key:{key}'
    point, problem = _numbers(data[key], 2)
    if problem is not None:
        return None, problem if problem in _NUMBER_REASONS else 'bad_points'
    return point, None


def _read_response(data: dict) -> Tuple[Optional[str], Optional[str]]:
    """``data['response']`` stripped, or None and the problem."""
    if 'response' not in data:
        return None, 'missing_key:response'
    value = data['response']
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None, 'bad_response'
    response = str(value).strip()
    if not response:
        return None, 'empty_response'
    return response, None


def _parse_authors_eval(text: str, stage: str) -> ParsedCompletion:
    """:func:`parse_completion` as the authors' evaluation reads (:mod:`.authors_parsing`): their
    fields, an inverted box's corners sorted, then finers_mm's field checks (finite, in range)."""
    json_text, data = authors_eval_object(text)
    common = _authors_common(text, stage, json_text)
    if json_text is None:
        return ParsedCompletion(invalid='no_json', **common)
    if data is None:
        return ParsedCompletion(invalid='bad_json', **common)
    box, points, response = authors_eval_fields(data)
    fields = dict(response=response)
    if box is not None:
        x1, y1, x2, y2 = box
        fields['bbox'] = [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]
    if points is not None:
        fields.update(points_1=list(points[0]), points_2=list(points[1]))
    return replace(_with_fields(fields, **common), data=data)
