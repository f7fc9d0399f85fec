# Copyright (c) finers_mm contributors. All rights reserved.
r"""The responses the stages give and the one place that decides whether a response answers the
question.

:data:`FOUND_RESPONSE` and :data:`ABSENT_RESPONSE` are what a model is asked to answer to a
segmentation instruction (the prompts, the SFT targets and the synthetic data use them).

Rewards (the "answer correct" term), inference and the QA metrics all call
:func:`answer_is_correct` on ``ParsedCompletion.response``. Rules per question type:

**Segmentation.** The response must SAY FOUND and must not SAY ABSENT:

- says found: some sentence (split at ``. ! ? ;`` and line breaks) contains ``is found`` or
  ``is detected`` (case-insensitive, the authors' phrases) and no negation word (``no``, ``not``,
  ``none``, ``nothing``, ``never``, ``cannot``, ``without``, ``...n't``);
- says absent: some sentence contains ``found`` or ``detected`` together with a negation word
  (``"No object found"``, ``"The object is not detected"``, ``"No object is found"``).

So the refiner's absent-target reply "No object found" is wrong for a present target, and a reply
hedging both ways is wrong whatever the truth. A ground truth that itself says absent (a window
without the target) is answered correctly by a response that says absent and not found; any other
ground truth (None, ``""``, ``"The object is found."``) means the target is present.

**Multiple choice.** :func:`extract_option_letter` must find exactly ONE option and it must be the
ground truth's option; the ground truth may be a letter or an option's text (read with the same
function). The authors' regex also rewarded ``"A B C D"`` and ``"It is a red car"`` for A; a
reward that can be gamed is a bug, so naming several options or none scores 0.

**Open.** Both texts are normalised (:func:`normalize_answer`) and compared with
``difflib.SequenceMatcher(None, response, gt).ratio() >= min_ratio`` (0.8). At the refiner stage a
response of more than ``refiner_max_words`` (3) whitespace-separated words scores 0 (the authors'
LPR rule; not applied at the explorer stage).

**The authors' evaluation rule** (``rule='authors'``, :func:`authors_eval_answer_is_correct`): the
QA scoring of their ``eval_hd_reasoning_seg_zero_cascade_qa_add_dist_for_region_prompt_cross_stage
.py``, reproduced with ONE fix. Response and ground truth are lower-cased (nothing else), then

- multiple choice: their pattern ``(?:\b|[([{'" ])<gt>(?:\b|[)\]}'" ,.!?])`` is searched in the
  response. **Fix (a)**, ``AUTHORS_FIXES['a']`` of :mod:`.protocols`: when the ground truth is one
  letter, the response must NAME EXACTLY ONE OPTION, i.e. among the question's option letters
  (A-D without options; the ground truth's letter included) exactly one is found by that same
  pattern, and it is the ground truth's. Their pattern alone scores ``"A B C D"``, ``"a, b"`` or
  ``"(a) or (c)"`` right for every letter named; with the fix a response is right for at most one
  letter, so naming several options never beats chance. An option is named by its capital letter
  between their delimiters, or by a response that is the letter alone in either case
  (:func:`authors_options_named`): the article of ``"It is a red car"`` names no option, which their
  lower-cased pattern reads as A. A ground truth that is not one letter (the released data has letters only) is matched by their
  pattern alone;
- open: right when ANY whitespace-separated word of the response has
  ``difflib.SequenceMatcher(None, word, gt).ratio() >= 0.8`` with the WHOLE ground truth (no word
  limit at either stage; a ground truth of several words is rarely reached by one word);
- segmentation: their evaluation scores no answer; their reward's test is used: the response
  contains ``is found`` or ``is detected``, whatever the ground truth.

Their evaluation also counts the answer wrong when GSE gave no box; that is the metric's business
(:class:`~finers_mm.evaluation.FineRSMetric`), as this module sees only the response.

The two rules judge apart 9.0 % of the 2400 seeded fuzzed (response, ground truth, question
type) cases of ``tests/test_structures/test_answers_authors.py`` (8.9 % with ``finers_mm``'s
refiner word limit; multiple choice 4.7 %, open 23.0 %, segmentation 4.3 %), a property of that
fuzz, not of a model's answers: the authors' rule reads any one word of a longer open answer and
``"is found"`` beside a sentence saying absent; ``finers_mm`` reads option texts, articles and
whole-answer similarity. Fix (a) changes 276 of those cases from right (their code) to wrong.
"""
import difflib
import functools
import re
import string
import unicodedata
from typing import FrozenSet, Iterable, Mapping, Optional, Union

from .protocols import AUTHORS, FINERS_MM
from .vocabulary import (EXPLORER, MULTIPLE_CHOICE, REFINER, SEGMENTATION, check_question_type,
                         check_stage, normalize_options)

#: the ``response`` to a segmentation instruction when the object is there
FOUND_RESPONSE = 'The object is found.'
#: the refiner's ``response`` when the object is not in its crop (with an all-zero box)
ABSENT_RESPONSE = 'No object found'

#: difflib ratio at or above which an open answer is correct
OPEN_MIN_RATIO = 0.8
#: most words of a correct open answer at the refiner stage
REFINER_MAX_WORDS = 3
#: option letters assumed when a multiple-choice question comes without its options
DEFAULT_OPTION_LETTERS = ('A', 'B', 'C', 'D')
#: the answer rules of :func:`answer_is_correct` (the protocols' ``answer_rule`` setting)
ANSWER_RULES = (AUTHORS, FINERS_MM)
#: the authors' test of a segmentation answer (their reward's phrases, in the lower-cased response)
AUTHORS_FOUND_PHRASES = ('is found', 'is detected')

_SENTENCE_SPLIT = re.compile(r'[.!?;\n]+')
_SAYS_FOUND = re.compile(r'\bis\s+(?:found|detected)\b', re.IGNORECASE)
_FOUND_WORD = re.compile(r'\b(?:found|detected)\b', re.IGNORECASE)
_NEGATION = re.compile(r"\b(?:no|not|none|nothing|never|cannot|without)\b|n['’]t\b",
                       re.IGNORECASE)

_ARTICLES = re.compile(r'\b(?:a|an|the)\b')
_NON_WORD = re.compile(r'[\W_]+')
#: an uppercase letter standing alone (not part of a word or number)
_LETTER_TOKEN = re.compile(r'(?<![^\W_])([A-Z])(?![^\W_])')
#: what may precede a sentence-initial word: start, or the end of a sentence, then quotes/brackets
_SENTENCE_START = re.compile(r'(?:^|[.!?]\s|\n)[\s"\'“‘*_(\[]*$')
_NEXT_WORD = re.compile(r'\s+(\w+)')
#: words that cannot follow the article "A", so a capital before them is an option letter
_AFTER_LETTER_ONLY = frozenset({'is', 'was', 'or', 'and', 'nor', 'but', 'vs', 'versus', 'because',
                                'seems', 'appears', 'looks', 'matches'})
#: a response starting with a letter marker: "A. text", "A: text", "(A) text", "A) text"
_LETTERED = re.compile(r'\s*[(\[]?([A-Z])\s*[.:)\]]\s*(\S.*)$', re.DOTALL)
_BARE_LETTER_STRIP = string.whitespace + string.punctuation + '“”‘’'


def normalize_answer(text: str) -> str:
    """Text reduced for comparing answers.

    Unicode NFKC, lowercase, every run of characters other than letters and digits becomes one
    space, the articles ``a``, ``an``, ``the`` are dropped, whitespace is collapsed and stripped.

    Args:
        text (str): an answer.

    Returns:
        str: e.g. ``'The Red-Car!'`` -> ``'red car'``.
    """
    text = _NON_WORD.sub(' ', unicodedata.normalize('NFKC', str(text)).lower())
    return ' '.join(_ARTICLES.sub(' ', text).split())


def _sentences(text: str) -> list:
    """Non-blank sentences of ``text``, split at ``. ! ? ;`` and line breaks."""
    return [part for part in _SENTENCE_SPLIT.split(text) if part.strip()]


def says_found(text: Optional[str]) -> bool:
    """The text states that the object is found (module docstring, "Segmentation").

    Args:
        text (str, optional): a response or ground-truth answer.

    Returns:
        bool: some sentence has ``is found`` / ``is detected`` and no negation.
    """
    return text is not None and any(
        _SAYS_FOUND.search(s) and not _NEGATION.search(s) for s in _sentences(str(text)))


def says_absent(text: Optional[str]) -> bool:
    """The text states that the object is not found (module docstring, "Segmentation").

    Args:
        text (str, optional): a response or ground-truth answer.

    Returns:
        bool: some sentence has ``found`` / ``detected`` and a negation.
    """
    return text is not None and any(
        _FOUND_WORD.search(s) and _NEGATION.search(s) for s in _sentences(str(text)))


def _letters_by_text(text: str, options: Mapping[str, str]) -> set:
    """Letters of the options whose normalised text equals the normalised ``text``."""
    normalized = normalize_answer(text)
    if not normalized:
        return set()
    return {letter for letter, option in options.items() if normalize_answer(option) == normalized}


def _may_be_word(text: str, start: int, end: int) -> bool:
    """The capital at ``text[start:end]`` may be the article "A" / the pronoun "I", not a letter.

    It starts a sentence and a lowercase word follows that is not in ``_AFTER_LETTER_ONLY``.
    """
    following = _NEXT_WORD.match(text, end)
    return (following is not None and following.group(1)[0].islower()
            and following.group(1) not in _AFTER_LETTER_ONLY
            and _SENTENCE_START.search(text[:start]) is not None)


def extract_option_letter(response: Optional[str],
                          options: Union[list, dict, str, None] = None) -> Optional[str]:
    """The ONE option a response names, or None when it names none or several.

    Rules, in order (``response`` NFKC-normalised and stripped first):

    1. the whole response is one letter, any case, inside punctuation (``"b"``, ``"(B)"``,
       ``"**B.**"``) -> that letter;
    2. a letter marker then text (``"A. red car"``, ``"(A) red car"``, ``"A: red car"``): the text
       is the marker's option -> that letter; another option's -> None (contradiction, so the
       article-like ``"A."`` can never turn into another option's text); no option's -> go on;
    3. the whole response equals one option's text (compared with :func:`normalize_answer`,
       which drops articles: ``"A red car."`` is the option ``"red car"`` whatever its letter,
       and an option text that looks lettered, ``"E. coli"``, is still found) -> that option;
    4. every standalone UPPERCASE option letter is a mention (``"The answer is A"``,
       ``"Option (C)."``, ``"A is correct"``). A capital that starts a sentence and is followed
       by a lowercase word (``"A red car ..."``) is ambiguous (the article "A", the pronoun "I")
       unless that word is one that cannot follow an article (``is``, ``or``, ``and``, ... in
       ``_AFTER_LETTER_ONLY``): an ambiguous capital names nothing by itself but makes the answer
       ambiguous when it differs from the letter named. Lowercase letters inside a sentence are
       never letters (``"It is a red car"`` names no option). Exactly one distinct letter named
       and no ambiguous capital other than it -> that letter; else None (``"A B C D"``,
       ``"A or B"``, ``"A, C"``, ``"A red car is visible, so B"``).

    Args:
        response (str, optional): the model's response.
        options (list | dict | str, optional): the question's options in any form
            ``normalize_options`` accepts; without them the letters are A-D and only rules 1 and 4
            apply.

    Returns:
        str, optional: the option letter.
    """
    if not isinstance(response, str):
        return None
    text = unicodedata.normalize('NFKC', response).strip()
    options = normalize_options(options)
    letters = tuple(options) or DEFAULT_OPTION_LETTERS
    bare = text.strip(_BARE_LETTER_STRIP)
    if len(bare) == 1 and bare.upper() in letters:
        return bare.upper()

    marker = _LETTERED.match(text)
    if marker is not None and marker.group(1) in letters:
        by_text = _letters_by_text(marker.group(2), options)
        if by_text:
            return marker.group(1) if by_text == {marker.group(1)} else None
    by_text = _letters_by_text(text, options)
    if by_text:
        return by_text.pop() if len(by_text) == 1 else None

    named, ambiguous = set(), set()
    for match in _LETTER_TOKEN.finditer(text):
        letter = match.group(1)
        if letter in letters:
            word = _may_be_word(text, match.start(), match.end())
            (ambiguous if word else named).add(letter)
    if len(named) != 1 or not ambiguous <= named:
        return None
    return named.pop()


def answer_is_correct(response: Optional[str],
                      gt_answer: Optional[str],
                      question_type: str,
                      options: Union[list, dict, str, None] = None,
                      stage: str = EXPLORER,
                      min_ratio: float = OPEN_MIN_RATIO,
                      refiner_max_words: int = REFINER_MAX_WORDS,
                      rule: str = FINERS_MM) -> bool:
    """Whether ``response`` answers the question (module docstring has the rules).

    Args:
        response (str, optional): the parsed response; None (unparsable) is never correct.
        gt_answer (str, optional): the record's answer: for segmentation None or a text (absent
            only if it says so), for multiple choice a letter or an option's text, for open the
            reference answer.
        question_type (str): ``'segmentation'``, ``'multiple_choice'`` or ``'open'``.
        options (list | dict | str, optional): the options of a multiple-choice question.
        stage (str): ``'explorer'`` or ``'refiner'``; the refiner's open answers are capped at
            ``refiner_max_words`` words.
        min_ratio (float): open answers: least ``difflib`` ratio of a correct answer.
        refiner_max_words (int): open answers at the refiner stage: most words of a correct one.
        rule (str): ``'finers_mm'`` (default, the rules above) or ``'authors'`` (their
            evaluation's rule with fix (a): :func:`authors_eval_answer_is_correct`; ``stage`` and
            ``refiner_max_words`` do not apply to it).

    Returns:
        bool: True when the response is correct.

    Raises:
        ValueError: unknown stage, question type or rule, or a multiple-choice ground truth that
            names no single option (bad data, reported instead of silently scoring 0).
    """
    check_stage(stage)
    check_question_type(question_type)
    if check_answer_rule(rule) == AUTHORS:
        return authors_eval_answer_is_correct(response, gt_answer, question_type, options,
                                              min_ratio=min_ratio)
    if question_type == MULTIPLE_CHOICE:
        gt_letter = extract_option_letter(None if gt_answer is None else str(gt_answer), options)
        if gt_letter is None:
            raise ValueError(f'multiple-choice answer {gt_answer!r} names no single option of '
                             f'{options!r}; give its letter or its exact text')
        return extract_option_letter(response, options) == gt_letter
    if not isinstance(response, str):
        return False
    if question_type == SEGMENTATION:
        if says_absent(gt_answer):
            return says_absent(response) and not says_found(response)
        return says_found(response) and not says_absent(response)
    # open question
    if stage == REFINER and len(response.split()) > refiner_max_words:
        return False
    normalized = normalize_answer(response)
    reference = normalize_answer('' if gt_answer is None else gt_answer)
    if not normalized or not reference:
        return False
    return difflib.SequenceMatcher(None, normalized, reference).ratio() >= min_ratio


def check_answer_rule(rule: str) -> str:
    """Return ``rule`` if it is one of :data:`ANSWER_RULES`.

    Args:
        rule (str): ``'authors'`` or ``'finers_mm'``.

    Returns:
        str: ``rule``.

    Raises:
        ValueError: any other value.
    """
    if rule not in ANSWER_RULES:
        raise ValueError(f'unknown answer rule {rule!r}; expected one of {ANSWER_RULES}')
    return rule


@functools.lru_cache(maxsize=256)
def _authors_option_pattern(option: str) -> 're.Pattern':
    """The authors' pattern of one lower-cased option: the option between their delimiters.

    Escaped, unlike theirs: identical for the letters of the released data, and a ground truth
    holding ``(`` no longer stops the evaluation with a regex error.
    """
    return re.compile(r"(?:\b|[\(\[\{'\" ])" + re.escape(option) + r"(?:\b|[\)\]\}'\" ,.!?])")


def authors_options_named(response: str, letters: Iterable[str]) -> FrozenSet[str]:
    """The options a response NAMES, for fix (a): their pattern, read case-aware.

    A letter is named when, in the response as written, the CAPITAL letter stands between the
    authors' delimiters (``"A"``, ``"(B)"``, ``"The answer is C."``, ``"A B C D"`` names four), or
    when the whole response is that letter in either case, give or take spaces and punctuation
    (``"a"``, ``"(b)."``). A lower-case letter inside a sentence is a word, not an option: their
    lower-cased pattern reads the article of ``"It is a red car"`` as option A, the gameable case.

    Args:
        response (str): the response as the model wrote it.
        letters (Iterable[str]): candidate option letters, any case.

    Returns:
        frozenset[str]: the lower-case letters named, e.g. ``{'a', 'b'}`` for ``"A or B"``.
    """
    text = str(response)
    bare = text.strip(_BARE_LETTER_STRIP).lower()
    candidates = {str(x).lower() for x in letters}
    if bare in candidates:
        return frozenset({bare})
    return frozenset(letter for letter in candidates
                     if _authors_option_pattern(letter.upper()).search(text))


def authors_eval_answer_is_correct(response: Optional[str],
                                   gt_answer: Optional[str],
                                   question_type: str,
                                   options: Union[list, dict, str, None] = None,
                                   min_ratio: float = OPEN_MIN_RATIO) -> bool:
    """The authors' evaluation answer rule with fix (a) (module docstring, "The authors'
    evaluation rule").

    Args:
        response (str, optional): the parsed response; None (unparsable: theirs is ``''``) is
            never correct.
        gt_answer (str, optional): the record's answer (a letter for multiple choice in the
            released data).
        question_type (str): ``'segmentation'``, ``'multiple_choice'`` or ``'open'``.
        options (list | dict | str, optional): the options of a multiple-choice question; their
            letters are the candidates of fix (a) (A-D without options).
        min_ratio (float): open answers: least ``difflib`` ratio of one word with the ground truth.

    Returns:
        bool: True when the response is correct.

    Raises:
        ValueError: unknown question type, or an empty multiple-choice ground truth (their
            pattern would then match nearly any response).
    """
    check_question_type(question_type)
    if response is None:
        return False
    text = str(response).lower()
    gt = '' if gt_answer is None else str(gt_answer).lower()
    if question_type == SEGMENTATION:
        return any(phrase in text for phrase in AUTHORS_FOUND_PHRASES)
    if question_type == MULTIPLE_CHOICE:
        if not gt:
            raise ValueError(f'multiple-choice answer {gt_answer!r} is empty: the authors\' rule '
                             'needs the option letter')
        if _authors_option_pattern(gt).search(text) is None:
            return False
        if len(gt) == 1 and gt.isalpha():  # fix (a): no other option named
            letters = set(normalize_options(options) or DEFAULT_OPTION_LETTERS) | {gt}
            return authors_options_named(str(response), letters) == {gt}
        return True
    return any(difflib.SequenceMatcher(None, word, gt).ratio() >= min_ratio
               for word in text.split())
