# Copyright (c) finers_mm contributors. All rights reserved.
"""The authors' two GRPO reward functions, re-derived for tests (testing support, not library).

Read from JiazuoYu/Fines (HEAD ``89027ee``):

- LPR (refiner): ``verl/utils/reward_score/seg_restrict_qa.py``, ``seg_strict_compute_score_qa``;
- GSE (explorer): ``verl/utils/reward_score/seg_restrict8_regions_and_qa.py``,
  ``seg_strict_compute_score8_region_qa``;

both called by ``verl/workers/reward/custom.py`` with the decoded response (special tokens
skipped) and the record's ``solution`` string, which their converters
(``data_process/data_converter_fixed_512_gt_crop_random_region.py``,
``data_converter_fixed_1920_qa_with_best_region.py``) write as :func:`solution` does.

Written anew in THEIR control flow (a pattern over the whole text, ``json.loads``, every term in
a ``try`` whose exception scores 0), independently of :mod:`finers_mm.rl.rewards`, so that the
two derivations check each other. Their term names are kept (:data:`LPR_TERMS`,
:data:`GSE_TERMS` map finers_mm's term names to them).

Two switches apply a fix of finers_mm's ``'authors'`` protocol
(:data:`finers_mm.structures.protocols.AUTHORS_FIXES`) to this re-derivation, so a test can say
which fix explains a disagreement between their code and finers_mm's preset:

- ``plus_one=False``, fix (b): continuous boxes, no ``+1`` in the IoU's intersection and areas nor
  in the region sides;
- ``one_option=True``, fix (a): an option answer counts only when it names exactly the GT's
  option: the capital letter between their delimiters, or the response is the letter alone (so
  neither "A B C D" nor the article of "It is a red car" names an option).
"""
import difflib
import json
import math
import re
from typing import Dict, Iterable, Optional, Sequence

#: finers_mm term name -> the authors' name of the same LPR term
LPR_TERMS = {
    'think_format': 'thinking_format_reward',
    'json_format': 'segmentation_format_reward',
    'box_iou': 'iou_reward',
    'box_l1': 'box_l1_reward',
    'points': 'point_l1_reward',
    'answer': 'text_reward',
}
#: finers_mm term name -> the authors' name of the same GSE term (their ``scores`` keys)
GSE_TERMS = {
    'think_format': 'thinking_format_reward',
    'json_format': 'segmentation_format_reward',
    'region_iou': 'box_iou_reward',
    'region_l1': 'box_l1_reward',
    'region_contains': 'box_in_box_only_reward',
    'region_size': 'box_size_only_reward',
    'answer': 'text_reward',
}


def solution(gt_box: Sequence[float],
             gt_points: Sequence[Sequence[float]],
             response: str,
             best_region: Optional[Sequence[float]] = None) -> str:
    """The ground-truth string their converters write and their rewards read.

    Args:
        gt_box (Sequence): ``[x1, y1, x2, y2]`` (written with ``int()``).
        gt_points (Sequence): two points ``[[x, y], [x, y]]``.
        response (str): ``"The object is found."`` for segmentation, else the record's answer.
        best_region (Sequence, optional): the GSE region target (GSE data only).

    Returns:
        str: ``<box>(x1,y1),(x2,y2)</box><points>(x,y),(x,y)</points><response>..</response>``
        and ``<best_region>(x1,y1),(x2,y2)</best_region>`` when given.
    """
    x1, y1, x2, y2 = map(int, gt_box)
    (px1, py1), (px2, py2) = [map(int, point) for point in gt_points]
    text = (f'<box>({x1},{y1}),({x2},{y2})</box><points>({px1},{py1}),({px2},{py2})</points>'
            f'<response>{response}</response>')
    if best_region is not None:
        r1, s1, r2, s2 = map(int, best_region)
        text += f'<best_region>({r1},{s1}),({r2},{s2})</best_region>'
    return text


# ------------------------------------------------------------------------------------------------
# the pieces both of their files share
# ------------------------------------------------------------------------------------------------

def _think(predict_str: str) -> float:
    return 1.0 if re.fullmatch(r'<think>.*?</think>\s*<answer>.*?</answer>', predict_str,
                               re.DOTALL) else 0.0


def _first_object(predict_str: str):
    """Their ``re.search(r'{[^}]+}', ...)`` then ``json.loads`` (exceptions propagate)."""
    found = re.search(r'{[^}]+}', predict_str)
    if not found:
        return None
    return json.loads(found.group(0))


def _gt_box(ground_truth: str, tag: str):
    """The four ints of ``<tag>(a,b),(c,d)</tag>``; NameError later when absent, as theirs."""
    found = re.search(rf'<{tag}>\((\d+),(\d+)\),\((\d+),(\d+)\)</{tag}>', ground_truth.strip())
    return [int(found.group(i)) for i in range(1, 5)] if found else None


def _format(predict_str: str, keys: Iterable[str]) -> float:
    try:
        data = _first_object(predict_str)
        if data is None:
            return 0.0
        for key in keys:
            if key not in data:
                return 0.0
        if not isinstance(data['bbox'], list) or len(data['bbox']) != 4:
            return 0.0
        for key in ('points_1', 'points_2'):
            if key in keys and (not isinstance(data[key], list) or len(data[key]) != 2):
                return 0.0
        response = data['response']
        if not isinstance(response, str) or response.strip() == '':
            return 0.0
        return 1.0
    except Exception:
        return 0.0


def _iou(box1, box2, plus_one: bool) -> float:
    one = 1 if plus_one else 0
    x1, y1 = max(box1[0], box2[0]), max(box1[1], box2[1])
    x2, y2 = min(box1[2], box2[2]), min(box1[3], box2[3])
    inter = (x2 - x1 + one) * (y2 - y1 + one) if x1 < x2 and y1 < y2 else 0
    area1 = (box1[2] - box1[0] + one) * (box1[3] - box1[1] + one)
    area2 = (box2[2] - box2[0] + one) * (box2[3] - box2[1] + one)
    return float(inter) / (area1 + area2 - inter)


def _iou_term(predict_str: str, ground_truth: str, tag: str, threshold: float,
              plus_one: bool) -> float:
    try:
        target = _gt_box(ground_truth, tag)
        data = _first_object(predict_str)
        if data is not None and len(data['bbox']) == 4:
            if _iou(data['bbox'], target, plus_one) > threshold:
                return 1.0
    except Exception:
        pass
    return 0.0


def _l1_term(predict_str: str, ground_truth: str, tag: str, threshold: float) -> float:
    try:
        target = _gt_box(ground_truth, tag)
        data = _first_object(predict_str)
        if data is not None and len(data['bbox']) == 4:
            box = data['bbox']
            l1 = (abs(box[0] - target[0]) + abs(box[1] - target[1]) + abs(box[2] - target[2]) +
                  abs(box[3] - target[3])) / 4
            if l1 < threshold:
                return 1.0
    except Exception:
        pass
    return 0.0


def _option_found(text: str, letter: str) -> bool:
    return re.search(rf"(?:\b|[\(\[\{{'\" ]){letter}(?:\b|[\)\]\}}'\" ,.!?])", text) is not None


def _options_named(response: str, letters: str) -> set:
    """Fix (a)'s reading: the options a response names (capital letters between their delimiters,
    or the bare letter in either case), lower-cased."""
    bare = response.strip(' \t\n\r\x0b\x0c' + '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~' + '“”‘’')
    if bare.lower() in set(letters.lower()):
        return {bare.lower()}
    return {letter.lower() for letter in letters
            if _option_found(response, letter.upper())}


def _text(predict_str: str, ground_truth: str, max_words: Optional[int], one_option: bool,
          letters: str) -> float:
    try:
        data = _first_object(predict_str)
        if data is None:
            return 0.0
        output_text = data['response']
        found = re.search(r'<response>(.*?)</response>', ground_truth)
        gt = (found.group(1).strip() if found else '').lower()
        assert gt, 'gt_response should not be empty'
        if gt == 'the object is found.':
            return 1.0 if any(k in output_text.lower() for k in ('is found', 'is detected')) \
                else 0.0
        if gt in ('a', 'b', 'c', 'd'):
            lowered = output_text.lower()
            if not _option_found(lowered, gt):
                return 0.0
            if one_option and _options_named(output_text, letters) != {gt}:
                return 0.0
            return 1.0
        words = output_text.split()
        if max_words is not None and len(words) > max_words:
            return 0.0
        for word in words:
            if difflib.SequenceMatcher(None, word, gt).ratio() >= 0.8:
                return 1.0
        return 0.0
    except Exception:
        return 0.0


# ------------------------------------------------------------------------------------------------
# LPR: seg_restrict_qa.py
# ------------------------------------------------------------------------------------------------

def _points_term(predict_str: str, ground_truth: str) -> float:
    try:
        found = re.search(r'<points>\((\d+),(\d+)\),\((\d+),(\d+)\)</points>', ground_truth)
        if found:
            gt_points = [[int(found.group(1)), int(found.group(2))],
                         [int(found.group(3)), int(found.group(4))]]
        data = _first_object(predict_str)
        if data is not None:
            if len(data['bbox']) == 4:
                box = data['bbox']
            point1, point2 = data['points_1'], data['points_2']
            point1 = [int(point1[0]), int(point1[1])]
            point2 = [int(point2[0]), int(point2[1])]

            def inside(point):
                return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]

            def dist(p, g):
                return math.sqrt((p[0] - g[0])**2 + (p[1] - g[1])**2)

            if inside(point1) and inside(point2):
                straight = dist(point1, gt_points[0]) + dist(point2, gt_points[1])
                crossed = dist(point1, gt_points[1]) + dist(point2, gt_points[0])
                if min(straight, crossed) / 2 < 100:
                    return 1.0
    except Exception:
        pass
    return 0.0


def lpr_scores(predict_str: str,
               ground_truth: str,
               plus_one: bool = True,
               one_option: bool = False,
               letters: str = 'abcd') -> Dict[str, float]:
    """Their LPR reward's six terms for one completion.

    Args:
        predict_str (str): the decoded completion.
        ground_truth (str): the record's solution string (:func:`solution`).
        plus_one (bool): their inclusive ``+1`` in the IoU (False: fix (b)). Defaults to True.
        one_option (bool): fix (a) in the option answers. Defaults to False (their code).
        letters (str): the question's option letters (fix (a) only). Defaults to ``'abcd'``.

    Returns:
        dict[str, float]: their term name -> value (sum: their reward).
    """
    return {
        'thinking_format_reward': _think(predict_str),
        'segmentation_format_reward': _format(predict_str,
                                              ('bbox', 'response', 'points_1', 'points_2')),
        'iou_reward': _iou_term(predict_str, ground_truth, 'box', 0.5, plus_one),
        'point_l1_reward': _points_term(predict_str, ground_truth),
        'box_l1_reward': _l1_term(predict_str, ground_truth, 'box', 10),
        'text_reward': _text(predict_str, ground_truth, 3, one_option, letters),
    }


# ------------------------------------------------------------------------------------------------
# GSE: seg_restrict8_regions_and_qa.py
# ------------------------------------------------------------------------------------------------

def _contains_term(predict_str: str, ground_truth: str) -> float:
    try:
        target = _gt_box(ground_truth, 'box')
        if target is None:
            return 0.0
        data = _first_object(predict_str)
        if data is not None and 'bbox' in data and len(data['bbox']) == 4:
            box = data['bbox']
            if (box[0] <= target[0] and box[1] <= target[1] and box[2] >= target[2]
                    and box[3] >= target[3]):
                return 1.0
    except Exception:
        pass
    return 0.0


def _size_term(predict_str: str, plus_one: bool) -> float:
    one = 1 if plus_one else 0
    try:
        data = _first_object(predict_str)
        if data is not None and len(data['bbox']) == 4:
            box = data['bbox']
            width = box[2] - box[0] + one
            height = box[3] - box[1] + one
            width_ok = 256 - 15 <= width <= 256 + 15
            height_ok = 256 - 15 <= height <= 256 + 15
            if width_ok and height_ok:
                return 1.0
            if width_ok or height_ok:
                return 0.5
            return 0.0
    except Exception:
        pass
    return 0.0


def gse_scores(predict_str: str,
               ground_truth: str,
               plus_one: bool = True,
               one_option: bool = False,
               letters: str = 'abcd') -> Dict[str, float]:
    """Their GSE reward's seven terms for one completion (their ``scores`` dict).

    Args:
        predict_str (str): the decoded completion.
        ground_truth (str): the record's solution string with ``best_region`` (:func:`solution`).
        plus_one (bool): their inclusive ``+1`` in the IoU and the region sides (False: fix
            (b)). Defaults to True.
        one_option (bool): fix (a) in the option answers. Defaults to False (their code).
        letters (str): the question's option letters (fix (a) only). Defaults to ``'abcd'``.

    Returns:
        dict[str, float]: their term name -> value (sum: their reward).
    """
    return {
        'thinking_format_reward': _think(predict_str),
        'text_reward': _text(predict_str, ground_truth, None, one_option, letters),
        'segmentation_format_reward': _format(predict_str, ('bbox', 'response')),
        'box_l1_reward': _l1_term(predict_str, ground_truth, 'best_region', 20),
        'box_iou_reward': _iou_term(predict_str, ground_truth, 'best_region', 0.9, plus_one),
        'box_in_box_only_reward': _contains_term(predict_str, ground_truth),
        'box_size_only_reward': _size_term(predict_str, plus_one),
    }
