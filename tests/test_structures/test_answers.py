# Copyright (c) finers_mm contributors. All rights reserved.
"""Answer correctness (finers_mm.structures.answers), including attempts to game the reward."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finers_mm.structures.answers import answer_is_correct, extract_option_letter, normalize_answer

OPTIONS = {'A': 'red car', 'B': 'blue car', 'C': 'white truck', 'D': 'bus'}
LETTERS = tuple(OPTIONS)


def _mc(response, gt, options=OPTIONS, **kwargs):
    return answer_is_correct(response, gt, 'multiple_choice', options, **kwargs)


# ---------------------------------------------------------------- segmentation

@pytest.mark.parametrize('stage', ['explorer', 'refiner'])
@pytest.mark.parametrize('response', [
    'The object is found.', 'the object is found', 'THE OBJECT IS DETECTED!',
    'The red car is   found', 'After a careful look, the target is detected.',
    'It was hard to see. The object is found.', 'The object is found. It is not very large.',
])
def test_segmentation_found(response, stage):
    assert answer_is_correct(response, None, 'segmentation', stage=stage)
    assert answer_is_correct(response, 'The object is found.', 'segmentation', stage=stage)


@pytest.mark.parametrize('response', [
    'No object found', 'No object is found.', 'The object is not found.',
    "The object isn't detected", 'Nothing is detected here.', 'The object cannot be found',
    'Object found',  # the authors' phrases are "is found" / "is detected"
    'The object is found. No object found.',  # hedging both ways
    'It is unclear whether anything is found or not.',
    'The object is findable', '', '   ', 'found', 'B',
])
def test_segmentation_not_found(response):
    for stage in ('explorer', 'refiner'):
        assert not answer_is_correct(response, None, 'segmentation', stage=stage)


def test_segmentation_absent_target():
    gt = 'No object found'
    assert answer_is_correct('No object found', gt, 'segmentation', stage='refiner')
    assert answer_is_correct('The object is not detected.', gt, 'segmentation', stage='refiner')
    assert answer_is_correct('No object is found.', gt, 'segmentation', stage='refiner')
    assert not answer_is_correct('The object is found.', gt, 'segmentation', stage='refiner')
    assert not answer_is_correct('The object is found. No object found.', gt, 'segmentation',
                                 stage='refiner')
    assert not answer_is_correct('B', gt, 'segmentation', stage='refiner')
    assert not answer_is_correct('Not sure.', gt, 'segmentation', stage='refiner')


# ------------------------------------------------------------- multiple choice

@pytest.mark.parametrize('response', [
    'A', 'A.', '(A)', '[A]', 'A)', 'a', '(a)', '**A**', ' A \n', 'A. red car', 'A: red car',
    '(A) red car', 'The answer is A', 'The answer is A.', 'Answer: A', 'Option A.',
    'A is correct', 'I think the answer is (A).', 'The correct option is A, the red car.',
    'red car', 'Red Car.', 'The red car', 'A red car', 'A. It is the red car',
    'Ａ',  # full-width letter (NFKC)
])
def test_multiple_choice_answers_counted_as_a(response):
    assert extract_option_letter(response, OPTIONS) == 'A'
    assert _mc(response, 'A')
    for other in LETTERS[1:]:
        assert not _mc(response, other)


@pytest.mark.parametrize('response', [
    'A B C D', 'ABCD', 'A or B', 'A, C', 'A and B', 'A/B', 'A-B', '(A)(B)', 'A\nB',
    'A B', 'A A B', 'A. red car B. blue car', 'A or maybe B', 'Either A or C.',
    'The answer is A, not B.', 'A? B? C? D?', 'Options A, B, C and D are all possible',
    'red car or blue car', 'red car, blue car, white truck, bus', 'red car and bus',
    'It is a red car', 'a red car and a bus', 'A red car is parked there, so B',
    'A. blue car', 'B. red car', '(C) red car', 'The answer is A. The answer is B.',
    'all of the above', 'none', 'E', 'a b c d', 'abcd', '', '   ', '.', '()', '{"A": 1, "B": 2}',
    'A car',  # the article: no option is "car"
])
def test_multiple_choice_gaming_attempts_never_score(response):
    assert extract_option_letter(response, OPTIONS) is None
    for gt in LETTERS:
        assert not _mc(response, gt), (response, gt)


def test_the_article_a_is_not_the_letter_a():
    options = {'A': 'blue car', 'B': 'red car', 'C': 'bus', 'D': 'van'}
    assert extract_option_letter('A red car', options) == 'B'  # the whole text is option B
    assert extract_option_letter('A red car.', options) == 'B'
    assert extract_option_letter('A truck, I think', options) is None
    assert extract_option_letter('A. red car', options) is None  # letter A but text of B
    assert extract_option_letter('A. blue car', options) == 'A'
    assert extract_option_letter('The car is red. A is the answer.', options) == 'A'


@pytest.mark.parametrize('gt', ['A', 'a', 'A.', '(A)', 'A. red car', 'red car', ' Red car '])
def test_ground_truth_as_letter_or_option_text(gt):
    assert _mc('A', gt)
    assert not _mc('B', gt)


@pytest.mark.parametrize('options', [
    ['red car', 'blue car', 'white truck', 'bus'],
    'A. red car B. blue car C. white truck D. bus',
    'A. red car\nB. blue car\nC. white truck\nD. bus',
    ['A. red car', 'B. blue car', 'C. white truck', 'D. bus'],
])
def test_options_in_every_accepted_form(options):
    assert _mc('C', 'white truck', options)
    assert _mc('white truck', 'C', options)
    assert not _mc('A or C', 'C', options)


def test_without_options_letters_a_to_d_are_assumed():
    assert _mc('The answer is C', 'C', None)
    assert not _mc('C', 'B', None)
    assert extract_option_letter('E', None) is None
    with pytest.raises(ValueError, match='names no single option'):
        _mc('A', 'red car', None)


def test_more_options_than_four():
    options = ['one', 'two', 'three', 'four', 'five', 'six']
    assert _mc('F', 'F', options) and _mc('six', 'F', options)
    assert extract_option_letter('G', options) is None


@pytest.mark.parametrize('gt', [None, '', 'E', 'A or B', 'purple car'])
@pytest.mark.parametrize('response', ['A', None])
def test_unresolvable_ground_truth_is_an_error(gt, response):
    with pytest.raises(ValueError, match='names no single option'):
        _mc(response, gt)


def test_options_with_capital_letters_in_their_text():
    options = {'A': 'Building A', 'B': 'Building B', 'C': 'Tower', 'D': 'Bridge'}
    assert extract_option_letter('Building B', options) == 'B'
    assert extract_option_letter('B. Building B', options) == 'B'
    assert extract_option_letter('A. Building B', options) is None


def test_option_texts_that_look_lettered():
    options = {'A': 'C. elegans', 'B': 'E. coli', 'C': 'yeast', 'D': 'algae'}
    assert extract_option_letter('C. elegans', options) == 'A'
    assert extract_option_letter('E. coli', options) == 'B'
    assert extract_option_letter('E: coli', options) == 'B'
    assert extract_option_letter('C. yeast', options) == 'C'
    assert extract_option_letter('C', options) == 'C'


_RESPONSES = st.lists(st.sampled_from(
    ['A', 'B', 'C', 'D', 'a', 'b', 'red car', 'blue car', 'bus', 'or', 'and', 'the', 'answer',
     'is', '.', ',', '(', ')', ':', ' ', '\n', 'I', 'think', 'Option', '*', 'not']),
    max_size=12).map(''.join)


@settings(max_examples=1000, deadline=None)
@given(response=_RESPONSES | st.text(max_size=40))
def test_no_response_is_correct_for_two_different_answers(response):
    correct = [gt for gt in LETTERS if _mc(response, gt)]
    assert len(correct) <= 1
    assert correct == ([] if extract_option_letter(response, OPTIONS) is None
                       else [extract_option_letter(response, OPTIONS)])


# ------------------------------------------------------------------------ open

@pytest.mark.parametrize('response,gt', [
    ('red', 'red'), ('Red.', 'red'), ('the red one', 'Red one'), ('a bicycle', 'bicycle'),
    ('motorcycles', 'motorcycle'), ('cars', 'car'), ('  WHITE  ', 'white'), ('3', '3'),
    ('parking lot', 'parking-lot'), ('rot', 'Rot'),
])
@pytest.mark.parametrize('stage', ['explorer', 'refiner'])
def test_open_matches(response, gt, stage):
    assert answer_is_correct(response, gt, 'open', stage=stage)


@pytest.mark.parametrize('response,gt', [
    ('blue', 'red'), ('gray', 'grey'), ('3', '4'), ('truck', 'car'),
    ('red blue green white', 'red'),  # listing candidates
    ('red car blue car', 'red car'), ('', 'red'), ('   ', 'red'), ('the', 'the'),
    ('', ''), ('A', 'red'),
])
@pytest.mark.parametrize('stage', ['explorer', 'refiner'])
def test_open_mismatches(response, gt, stage):
    assert not answer_is_correct(response, gt, 'open', stage=stage)


def test_open_ratio_threshold_is_a_keyword():
    assert not answer_is_correct('gray', 'grey', 'open')
    assert answer_is_correct('gray', 'grey', 'open', min_ratio=0.7)
    assert not answer_is_correct('red', 'red', 'open', min_ratio=1.01)


def test_refiner_open_answers_longer_than_three_words_score_zero():
    gt = 'dark blue pickup truck'
    assert answer_is_correct(gt, gt, 'open', stage='explorer')
    assert not answer_is_correct(gt, gt, 'open', stage='refiner')
    assert answer_is_correct(gt, gt, 'open', stage='refiner', refiner_max_words=4)
    assert answer_is_correct('blue pickup truck', 'blue pickup truck', 'open', stage='refiner')


def test_normalize_answer():
    assert normalize_answer('  The Red-Car!  ') == 'red car'
    assert normalize_answer('An apple, a pear & THE plum') == 'apple pear plum'
    assert normalize_answer('Ｒｅｄ') == 'red'
    assert normalize_answer('theatre another') == 'theatre another'  # words, not prefixes
    assert normalize_answer('...') == ''


# ---------------------------------------------------------------------- common

@pytest.mark.parametrize('qtype,gt', [('segmentation', None), ('multiple_choice', 'A'),
                                      ('open', 'red')])
@pytest.mark.parametrize('response', [None, 3, ['A']])
def test_missing_or_non_text_response_is_wrong(qtype, gt, response):
    assert not answer_is_correct(response, gt, qtype, OPTIONS)


@pytest.mark.parametrize('kwargs,match', [
    (dict(question_type='option'), 'unknown question type'),
    (dict(question_type='open', stage='lpr'), 'unknown stage'),
])
def test_unknown_question_type_or_stage(kwargs, match):
    with pytest.raises(ValueError, match=match):
        answer_is_correct('A', 'A', **kwargs)
