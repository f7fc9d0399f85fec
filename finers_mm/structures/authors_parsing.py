# Copyright (c) finers_mm contributors. All rights reserved.
"""How the authors' code reads a completion: their rewards in training, their evaluation at test.

Facts of the ``'authors'`` protocol (:mod:`.protocols`), read from JiazuoYu/Fines;
:func:`~finers_mm.structures.parsing.parse_completion` builds its
:class:`~finers_mm.structures.parsing.ParsedCompletion` from these pieces.

**In training** (``parse_completion(..., protocol='authors', phase='train')``): how the authors'
REWARDS read a completion
(``verl/utils/reward_score/seg_restrict_qa.py`` and ``seg_restrict8_regions_and_qa.py``), for
the rewards of that protocol (:mod:`finers_mm.rl.rewards`):

- **Think format**: the whole text matches ``<think>.*?</think>\\s*<answer>.*?</answer>``
  (``re.fullmatch``, ``re.DOTALL``): NO whitespace before ``<think>`` or after ``</answer>``.
- **JSON object** (``data``): the FIRST match of ``{[^}]+}`` in the WHOLE text (the reasoning
  included; no answer block is looked for), read with strict ``json.loads`` (found in linear
  time by :func:`authors_json_text`). Single-quoted dicts, objects holding a ``}`` (a nested
  object, a ``}`` inside a string) and everything after the first ``}`` are therefore unreadable;
  ``{}`` is skipped (the pattern needs one character inside); ``NaN``, ``Infinity`` and integers
  of any size are read, as ``json`` reads them. No match: ``'no_json'``; ``json.loads`` fails:
  ``'bad_json'``. ``answer_text`` is the matched text.
- **JSON format** (``json_format_ok``, :func:`authors_json_format_ok`): the object has the stage's
  keys, ``bbox`` is a list of 4 items and (refiner) ``points_1``/``points_2`` lists of 2, of ANY
  items (``["1", null, [], 2]`` passes, as do inverted and all-zero boxes), and ``response`` is a
  string that is not blank.
- The reward terms read the raw values of ``data`` themselves (:func:`authors_box`,
  :func:`authors_point`; each term's rule is in its docstring). ``bbox``, ``points``,
  ``response`` and ``invalid`` are filled from ``data`` by the rules above (finers_mm's field
  rules), so ``json_format_ok`` and ``invalid is None`` may differ under this reading.

**At test** (``parse_completion(..., protocol='authors', phase='test')``): how their evaluation
script reads one (``extract_bbox_points_think`` of ``eval_hd_reasoning_seg_zero_cascade_qa_add_
dist_for_region_prompt_cross_stage.py``), for the chain's inference:

- **JSON object**: the first ``{[^}]+}`` of the whole text with ``]"`` replaced by ``]``, read with
  ``json.loads``, else with ``ast.literal_eval`` (single-quoted dicts are read); anything but a
  dict is no object (:func:`authors_eval_object`).
- **Box**: the value of the first key containing ``bbox`` (any case) when it has 4 items, each
  through ``int()`` (truncated toward 0) (:func:`authors_eval_fields`); **points**: the first two
  keys containing ``points``, ``int()`` of their first two items; **response**: ``data['response']``
  (``''`` when missing). Where their script would raise (``int('1.5')``, a ``None``), the field is
  missing here instead; the think text is not required.
- The box is read in the model's frame pixels and truncated there, as theirs; their
  ``round(int(x) * factor)`` to original pixels is not reproduced (< 0.5 original px). An inverted
  box is taken with its corners sorted (their crop window is centred on the same point; its side,
  ``max(512, w, h)``, differs only for an inverted box wider than 512).
"""
import ast
import json
from typing import Any, Optional, Tuple

from .vocabulary import REFINER

#: the keys of the answer object the authors' JSON-format term requires, per stage
AUTHORS_REQUIRED_KEYS = {'explorer': ('bbox', 'response'),
                         'refiner': ('bbox', 'response', 'points_1', 'points_2')}


def authors_json_text(text: str) -> Optional[str]:
    """The first match of the authors' ``{[^}]+}`` in ``text``, found in linear time.

    ``re.search`` of that pattern backtracks over every ``{`` (quadratic on a degenerate text of
    braces); the match is the first ``{`` whose next ``}`` is not the character right after it,
    up to that ``}``, and each ``}`` is looked for once.

    Args:
        text (str): the whole completion.

    Returns:
        str, optional: the matched text, None when the pattern does not match.
    """
    close = -1  # the first '}' after the current '{' (valid while it lies beyond it)
    start = text.find('{')
    while start >= 0:
        if close <= start:
            close = text.find('}', start + 1)
            if close < 0:
                return None
        if close > start + 1:
            return text[start:close + 1]
        start = text.find('{', start + 1)
    return None


def authors_json_object(json_text: str) -> Optional[dict]:
    """``json.loads`` of the authors' matched text, None when it is not strict JSON.

    Args:
        json_text (str): a match of ``{[^}]+}`` (:func:`authors_json_text`).

    Returns:
        dict, optional: the object (a JSON text starting with ``{`` and valid is an object).
    """
    try:
        data = json.loads(json_text)
    except (ValueError, RecursionError):  # ValueError also: an integer of > 4300 digits
        return None
    return data if isinstance(data, dict) else None


def authors_json_format_ok(data: Optional[dict], stage: str) -> bool:
    """The authors' JSON-format term: keys present, list lengths right, a non-blank response.

    Args:
        data (dict, optional): the object read (None: no object).
        stage (str): ``'explorer'`` (``bbox``, ``response``) or ``'refiner'`` (also
            ``points_1``, ``points_2``).

    Returns:
        bool: every key of the stage present, ``bbox`` a list of 4 items, the points (refiner)
        lists of 2 items of ANY type, ``response`` a ``str`` with a non-whitespace character.
    """
    if not isinstance(data, dict) or any(key not in data for key in AUTHORS_REQUIRED_KEYS[stage]):
        return False
    if not (isinstance(data['bbox'], list) and len(data['bbox']) == 4):
        return False
    if stage == REFINER and not all(isinstance(data[key], list) and len(data[key]) == 2
                                    for key in ('points_1', 'points_2')):
        return False
    response = data['response']
    return isinstance(response, str) and response.strip() != ''


def authors_box(data: Optional[dict]) -> Optional[list]:
    """The box the authors' box terms compute with: ``data['bbox']`` when it is a list of exactly
    4 numbers, as they are.

    Numbers are what their arithmetic accepts: ``int`` (any size), ``float`` (NaN and infinities
    included) and ``bool`` (``true`` is 1). A numeric string, ``null``, a nested list or any other
    length makes every box term raise (TypeError, KeyError) in their code, i.e. score 0. Inverted,
    all-zero and out-of-frame boxes are kept.

    Args:
        data (dict, optional): the object read.

    Returns:
        list, optional: the four raw numbers.
    """
    value = data.get('bbox') if isinstance(data, dict) else None
    if isinstance(value, list) and len(value) == 4 and all(
            isinstance(item, (int, float)) for item in value):
        return list(value)
    return None


def authors_point(data: Optional[dict], key: str) -> Optional[Tuple[int, int]]:
    """A point as the authors' points term reads it: ``int()`` of ``value[0]`` and ``value[1]``.

    So a list of at least 2 items or a string of at least 2 characters, each item something
    ``int()`` takes: ints, bools, finite floats (truncated toward 0), strings of an integer
    (``" 12"``, ``"1_0"``, other scripts' digits; ``"1.5"`` is refused). ``"12"`` is the point
    ``(1, 2)``.

    Args:
        data (dict, optional): the object read.
        key (str): ``'points_1'`` or ``'points_2'``.

    Returns:
        tuple[int, int], optional: the point, None when their code would raise.
    """
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, (list, str)) or len(value) < 2:
        return None
    try:
        return int(value[0]), int(value[1])
    except (TypeError, ValueError, OverflowError):
        return None


def authors_eval_object(text: str) -> Tuple[Optional[str], Optional[dict]]:
    """The answer object as the authors' evaluation reads it (module docstring, "At test").

    Args:
        text (str): the whole completion.

    Returns:
        tuple: the matched text (None: no ``{[^}]+}``) and the dict read from it (None: neither
        ``json.loads`` nor ``ast.literal_eval`` reads a dict).
    """
    json_text = authors_json_text(text)
    if json_text is None:
        return None, None
    cleaned = json_text.replace(']"', ']')
    try:
        data = json.loads(cleaned)
    except (ValueError, RecursionError):
        try:
            data = ast.literal_eval(cleaned)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            data = None
    return json_text, data if isinstance(data, dict) else None


def _first_key(data: dict, word: str, count: int) -> list:
    """The first ``count`` keys of ``data`` containing ``word`` in any case (string keys)."""
    return [key for key in data if isinstance(key, str) and word in key.lower()][:count]


def _ints(value: Any, count: int) -> Optional[tuple]:
    """``int()`` of the first ``count`` items of ``value``, None where their code would raise."""
    try:
        return tuple(int(value[index]) for index in range(count))
    except (TypeError, ValueError, OverflowError, IndexError, KeyError):
        return None


def authors_eval_fields(data: dict) -> Tuple[Optional[tuple], Optional[tuple], str]:
    """Box, points and response as the authors' evaluation reads them from its object.

    Args:
        data (dict): from :func:`authors_eval_object`.

    Returns:
        tuple: the box (4 ints, corners as written, or None), the two points (``((x, y), (x, y))``
        ints, or None) and the response (``''`` when missing or not a string).
    """
    box = None
    keys = _first_key(data, 'bbox', 1)
    if keys:
        value = data[keys[0]]
        if hasattr(value, '__len__') and not isinstance(value, dict) and len(value) == 4:
            box = _ints(value, 4)
    points = None
    keys = _first_key(data, 'points', 2)
    if len(keys) == 2:
        pair = tuple(_ints(data[key], 2) for key in keys)
        points = None if None in pair else pair
    response = data.get('response', '')
    return box, points, response if isinstance(response, str) else ''
