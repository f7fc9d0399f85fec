# Copyright (c) finers_mm contributors. All rights reserved.
"""The caption of a FineRS drawing: what was asked, what was answered, what went wrong.

Pure text: :func:`caption_entries` says what the caption holds, :func:`wrap_entries` breaks it
into lines no wider than the canvas with a measuring function the visualiser passes in (so the
wrap follows the font actually drawn).
"""
import re
from typing import Callable, List, Optional, Sequence, Tuple

from mmdet.structures import DetDataSample

from finers_mm.structures.answers import extract_option_letter
from finers_mm.structures.vocabulary import MULTIPLE_CHOICE, normalize_options

#: characters of one caption field kept (a degenerate model can answer a whole paragraph)
MAX_FIELD_CHARS = 300
ELLIPSIS = '…'
_SPACES = re.compile(r'\s+')

#: ``(kind, text)``; kinds: 'question', 'answer', 'gt', 'invalid', 'note'
Entry = Tuple[str, str]


def clean_text(value, max_chars: int = MAX_FIELD_CHARS) -> str:
    """One printable line: whitespace collapsed, unprintable characters as ``?``, shortened.

    Args:
        value: any value (None: empty).
        max_chars (int): longest text kept; longer ends with an ellipsis.

    Returns:
        str: the cleaned text.
    """
    text = _SPACES.sub(' ', '' if value is None else str(value)).strip()
    text = ''.join(char if char.isprintable() else '?' for char in text)
    return text if len(text) <= max_chars else text[:max_chars - 1] + ELLIPSIS


def _with_option(answer: str, options: dict) -> str:
    """A multiple-choice answer followed by the text of the option it names, if one."""
    letter = extract_option_letter(answer, options) if options else None
    if letter is None or options.get(letter) is None or answer.strip() != letter:
        return answer
    return f'{answer} ({options[letter]})'


def caption_entries(data_sample: Optional[DetDataSample], draw_gt: bool, draw_pred: bool,
                    notes: Sequence[str] = ()) -> List[Entry]:
    """What the caption says about one sample.

    Args:
        data_sample (DetDataSample, optional): metainfo ``question``, ``question_type``,
            ``options``; with ``draw_pred`` ``pred_answer`` and ``invalid_reason``; with
            ``draw_gt`` the GT ``answer``.
        draw_gt (bool): include the GT answer.
        draw_pred (bool): include the predicted answer and the invalid reason.
        notes (Sequence[str]): the layout's notes (predictions drawn clipped or not drawn).

    Returns:
        list[tuple[str, str]]: ``(kind, text)`` entries, in caption order.
    """
    if data_sample is None:
        return [('note', f'note: {note}') for note in notes]
    question_type = clean_text(data_sample.get('question_type', None)) or 'question'
    entries = [('question', f"Q ({question_type}): {clean_text(data_sample.get('question'))}")]
    options = {}
    if question_type == MULTIPLE_CHOICE:
        try:
            options = normalize_options(data_sample.get('options', None))
        except (TypeError, ValueError):  # a caption shows what it can; the metric reports it
            options = {}
        if options:
            entries.append(('question', 'options: ' + '   '.join(
                f'{letter}. {clean_text(text, 60)}' for letter, text in options.items())))
    if draw_pred:
        answer = clean_text(data_sample.get('pred_answer', None))
        entries.append(('answer', f"answer: {_with_option(answer, options) or '(none)'}"))
        invalid = data_sample.get('invalid_reason', None)
        if invalid:
            entries.append(('invalid', f"invalid: {clean_text(invalid)} (this output could not be "
                                       'used)'))
    if draw_gt and data_sample.get('answer', None) is not None:
        gt_answer = _with_option(clean_text(data_sample.answer), options)
        entries.append(('gt', f'GT answer: {gt_answer}'))
    entries.extend(('note', f'note: {note}') for note in notes)
    return entries


def wrap_text(text: str, max_width: float, measure: Callable[[str], float]) -> List[str]:
    """Break a text into lines of at most ``max_width`` (words kept whole unless one is wider).

    Args:
        text (str): one line of text.
        max_width (float): the widest line allowed, in the units of ``measure``.
        measure (Callable[[str], float]): the drawn width of a string.

    Returns:
        list[str]: the lines (one empty line for an empty text).
    """
    lines, current = [], ''
    for word in text.split(' '):
        candidate = f'{current} {word}' if current else word
        if measure(candidate) <= max_width:
            current = candidate
            continue
        if measure(word) <= max_width:
            lines.append(current)
            current = word
            continue
        # a word wider than a line: cut it, the first piece filling the current line
        prefix = f'{current} ' if current else ''
        while measure(prefix + word) > max_width:
            cut = _longest_fit(prefix, word, max_width, measure)
            if cut == 0:  # not even one character fits after the prefix: next line
                lines.append(prefix.rstrip())
                prefix = ''
                continue
            lines.append(prefix + word[:cut])
            prefix, word = '', word[cut:]
        current = prefix + word
    lines.append(current)
    return lines


def _longest_fit(prefix: str, word: str, max_width: float,
                 measure: Callable[[str], float]) -> int:
    """The most characters of ``word`` that fit after ``prefix`` (at least 1 without a prefix)."""
    low, high = 0, len(word)  # binary search: measure is monotonic in the length
    while low < high:
        middle = (low + high + 1) // 2
        if measure(prefix + word[:middle]) <= max_width:
            low = middle
        else:
            high = middle - 1
    return low if low or prefix else 1


def wrap_entries(entries: Sequence[Entry], max_width: float, measure: Callable[[str], float],
                 max_lines: int) -> List[Entry]:
    """Wrap every entry; keep at most ``max_lines`` lines (the last one then ends with ``…``).

    Args:
        entries (Sequence[tuple[str, str]]): from :func:`caption_entries`.
        max_width (float): the widest line allowed, in the units of ``measure``.
        measure (Callable[[str], float]): the drawn width of a string.
        max_lines (int): the most lines the caption may take.

    Returns:
        list[tuple[str, str]]: ``(kind, line)``.
    """
    lines = [(kind, line) for kind, text in entries for line in wrap_text(text, max_width, measure)]
    if len(lines) <= max_lines:
        return lines
    kind, last = lines[max_lines - 1]
    while last and measure(last + ELLIPSIS) > max_width:
        last = last[:-1]
    return lines[:max_lines - 1] + [(kind, last + ELLIPSIS)]
