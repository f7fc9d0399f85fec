# Copyright (c) finers_mm contributors. All rights reserved.
"""The authors' evaluation answer rule (``answer_is_correct(..., rule='authors')``) against their
scoring re-derived inline, on fuzzed and hand-written cases; fix (a) identified case by case.

The reference below is the QA scoring of the authors' evaluation script
(``inference_scripts/eval_hd_reasoning_seg_zero_cascade_qa_add_dist_for_region_prompt_cross_stage
.py``, ``main()``, after ``if args.qa_stage != "no_qa":``), with the segmentation test of their
reward (their evaluation scores no segmentation answer). Their response is ``''`` when the
completion has no parsable JSON; ours is None then.
"""
import difflib
import random
import re
import string

import pytest

from finers_mm.structures.answers import (answer_is_correct, authors_eval_answer_is_correct,
                                          authors_options_named)

OPTIONS = {'A': 'red car', 'B': 'blue car', 'C': 'white truck', 'D': 'bus'}
QTYPE = {'multiple_choice': 'option', 'open': 'reasoning', 'segmentation': 'referring'}


def their_scoring(final_response, gt_answer, question_type):
    """Their evaluation's verdict, line for line (their ``question_type`` values)."""
    final_response = final_response.lower()
    gt_answer = gt_answer.lower()
    if question_type == 'option':
        pattern = rf"(?:\b|[\(\[\{{'\" ]){gt_answer}(?:\b|[\)\]\}}'\" ,.!?])"
        return re.search(pattern, final_response) is not None
    if question_type == 'reasoning':
        for word in final_response.split():
            if difflib.SequenceMatcher(None, word, gt_answer).ratio() >= 0.8:
                return True
        return False
    return any(k in final_response for k in ['is found', 'is detected'])  # their reward's


def options_named(response, letters='abcd'):
    """Fix (a)'s reading, written here from its definition: the capital letter between their
    delimiters, or the response is the bare letter in either case."""
    bare = response.strip(string.whitespace + string.punctuation + '“”‘’').lower()
    if bare in letters:
        return {bare}
    return {letter for letter in letters
            if re.search(rf"(?:\b|[\(\[\{{'\" ]){letter.upper()}(?:\b|[\)\]\}}'\" ,.!?])",
                         response)}


# ------------------------------------------------------------------------------------ fuzzing

LETTER_FORMS = ('{}', '({})', '[{}]', "'{}'", '"{}"', '{{{}}}', '{}.', '{},', '{}!', '{}?',
                '{})', '**{}**', 'option {}', 'the answer is {}', 'answer: {}', '{}:')
WORDS = ('red', 'car', 'blue', 'white', 'truck', 'bus', 'a', 'an', 'the', 'it', 'is', 'or', 'and',
         'bark', 'abc', 'cab', 'dab', 'pedestrian', 'light', 'traffic', 'three', '3', 'found',
         'detected', 'not', 'no', 'object', 'Ａ', 'é', 'is found', 'is detected', 'B-side',
         'a/b', 'c-d', '(a)(b)', 'ab', 'A B C D', 'a, b', 'It is a red car')
OPEN_GTS = ('red', 'car', 'white truck', 'bus', 'pedestrian', '3', 'traffic light', 'Blue',
            'motorcycle', 'left')
SEPARATORS = (' ', ', ', '\n', '', '. ', ' - ', '  ')


def _typo(rng, word):
    """``word`` with one random edit (delete, insert, replace or swap)."""
    if not word:
        return word
    i = rng.randrange(len(word))
    edit = rng.choice(('delete', 'insert', 'replace', 'swap'))
    letter = rng.choice('abcdefghijklmnopqrstuvwxyz')
    if edit == 'delete':
        return word[:i] + word[i + 1:]
    if edit == 'insert':
        return word[:i] + letter + word[i:]
    if edit == 'replace':
        return word[:i] + letter + word[i + 1:]
    return word[:i] + word[i + 1:i + 2] + word[i:i + 1] + word[i + 2:]


def _part(rng, gt):
    kind = rng.random()
    if kind < 0.35:
        letter = rng.choice('ABCDabcd')
        return rng.choice(LETTER_FORMS).format(letter)
    if kind < 0.55:
        return rng.choice(WORDS)
    if kind < 0.7:
        return rng.choice(tuple(OPTIONS.values()))
    if kind < 0.9:
        return _typo(rng, gt) if rng.random() < 0.6 else gt
    return rng.choice(('The object is found.', 'No object found', 'The object is not detected',
                       'IS FOUND', 'the target is Detected!'))


def fuzz_cases(seed=0, count=2400):
    """``count`` seeded (response, gt, question type) cases; response None now and then."""
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        question_type = rng.choice(('multiple_choice', 'multiple_choice', 'open', 'segmentation'))
        if question_type == 'multiple_choice':
            gt = rng.choice('ABCDabcd') if rng.random() < 0.9 else rng.choice(
                tuple(OPTIONS.values()))
        elif question_type == 'open':
            gt = rng.choice(OPEN_GTS)
        else:
            gt = 'The object is found.'
        if rng.random() < 0.03:
            response = None
        else:
            parts = [_part(rng, gt) for _ in range(rng.randint(1, 4))]
            response = ''.join(p + rng.choice(SEPARATORS) for p in parts).strip(
                ' ' if rng.random() < 0.7 else '')
        cases.append((response, gt, question_type))
    return cases


CASES = fuzz_cases()


def _ours(response, gt, question_type, **kwargs):
    return answer_is_correct(response, gt, question_type, OPTIONS, rule='authors', **kwargs)


def test_fuzz_agrees_with_their_scoring_except_the_fix_a_cases():
    assert len(CASES) >= 2000
    fixed = []
    for response, gt, question_type in CASES:
        theirs = their_scoring('' if response is None else response, gt, QTYPE[question_type])
        ours = _ours(response, gt, question_type)
        fix = (question_type == 'multiple_choice' and len(gt) == 1 and response is not None
               and options_named(response) != {gt.lower()})
        if fix:  # fix (a): not exactly the GT's option named, never right
            assert not ours, (response, gt)
            fixed.append(theirs)
        else:
            assert ours == theirs, (response, gt, question_type)
    # the fuzz reaches the fix often, and in most of those cases their rule said right
    assert len(fixed) > 100 and sum(fixed) > 50


def test_the_stage_and_word_limit_do_not_apply_to_the_authors_rule():
    for response, gt, question_type in CASES[:500]:
        assert (_ours(response, gt, question_type, stage='refiner', refiner_max_words=0)
                == _ours(response, gt, question_type, stage='explorer'))


def test_disagreement_with_the_finers_mm_rule_on_the_fuzzed_set():
    """The two rules on the same fuzzed answers, as documented in structures/answers.py: 217 of
    2400 cases (9.0 %) judged apart with finers_mm's explorer-stage rule, 214 (8.9 %) with its
    refiner-stage rule; per type (refiner) multiple choice 59 / 1254, open 130 / 565,
    segmentation 25 / 581. A property of this fuzz, not of a model's answers."""
    for stage, expected in (('explorer', 217), ('refiner', 214)):
        apart = sum(_ours(r, g, q) != answer_is_correct(r, g, q, OPTIONS, stage=stage)
                    for r, g, q in CASES)
        assert apart == expected, stage


# ------------------------------------------------------------------------------ hand-written

@pytest.mark.parametrize('response, gt, right', [
    ('B', 'B', True), ('b', 'B', True), ('(B)', 'b', True), ("'b'", 'B', True), ('[B].', 'B', True),
    ('The answer is B.', 'B', True), ('{b}', 'B', True),
    # fix (a) reads a lower-case letter inside a sentence as a word, not an option
    ('Answer: b!', 'B', False),
    ('B', 'C', False), ('bark', 'B', False), ('abc', 'B', False), ('', 'B', False),
    (None, 'B', False),
    # their pattern reads the article "a" as option A (the gameable case); fix (a) does not
    ('It is a red car', 'A', False), ('It is a red car', 'B', False),
    # fix (a): several options named is wrong, whatever the answer
    ('A B C D', 'A', False), ('A B C D', 'D', False), ('a or b', 'B', False),
    ('(A)(B)', 'A', False),
    ('B, a red car', 'B', True), ('The answer is B, not C', 'B', False),
    # an option letter outside the question's options is no option
    ('B E', 'B', True),
    # a ground truth that is not one letter: their pattern alone
    ('the red car', 'red car', True), ('red car or blue car', 'red car', True),
])
def test_multiple_choice_hand_written(response, gt, right):
    assert _ours(response, gt, 'multiple_choice') is right


def test_fix_a_counts_the_question_s_own_letters():
    options = {'A': 'x', 'B': 'y', 'C': 'z', 'D': 'w', 'E': 'v'}
    assert authors_eval_answer_is_correct('B E', 'B', 'multiple_choice', options) is False
    assert authors_eval_answer_is_correct('B E', 'B', 'multiple_choice', OPTIONS) is True
    assert authors_options_named('(A) or [c]. B-side', 'ABCD') == {'a', 'b'}
    assert authors_options_named(' (c). ', 'ABCD') == {'c'}


@pytest.mark.parametrize('response, gt, right', [
    ('red', 'red', True), ('Red.', 'red', True),  # 'red.' vs 'red': 2 * 3 / 7 = 0.857
    ('It is a red car', 'red', True), ('redd', 'red', True), ('rd', 'red', True),
    ('blue', 'red', False), ('white truck', 'white truck', False),  # one word vs two: 0.625
    ('whitetruck', 'white truck', True), ('a very long answer mentioning red', 'red', True),
    ('', 'red', False), (None, 'red', False), ('Motorcycles', 'motorcycle', True),
])
def test_open_hand_written(response, gt, right):
    assert _ours(response, gt, 'open') is right
    assert their_scoring('' if response is None else response, gt, 'reasoning') is right


@pytest.mark.parametrize('response, right', [
    ('The object is found.', True), ('IS DETECTED', True), ('The object is not found', False),
    ('No object found', False), ('', False), (None, False),
])
def test_segmentation_is_their_reward_phrase_test(response, right):
    for gt in ('The object is found.', None, 'No object found'):
        assert _ours(response, gt, 'segmentation') is right


def test_bad_inputs():
    with pytest.raises(ValueError, match='empty'):
        _ours('A', '', 'multiple_choice')
    with pytest.raises(ValueError, match='answer rule'):
        answer_is_correct('A', 'A', 'multiple_choice', OPTIONS, rule='paper')
    with pytest.raises(ValueError, match='question type'):
        authors_eval_answer_is_correct('A', 'A', 'option')
    # a ground truth with regex characters is matched literally (theirs: a regex error)
    assert _ours('it is (c', '(c', 'multiple_choice') is True
