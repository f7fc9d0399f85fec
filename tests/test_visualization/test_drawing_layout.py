# Copyright (c) finers_mm contributors. All rights reserved.
"""The pure parts of the drawing: panel placement, clipping, notes, caption text and wrapping."""
import numpy as np
import pytest
from mmdet.structures import DetDataSample

from finers_mm.visualization.caption import caption_entries, clean_text, wrap_entries, wrap_text
from finers_mm.visualization.layout import (CROP, INSIDE, NOT_A_BOX, OUTSIDE, OVERVIEW, PARTIAL,
                                            clip_box, clipping_note, place_panels)


@pytest.mark.parametrize('image_size, window', [((1920, 1080), (100, 50, 612, 562)),
                                                ((3840, 2160), (0, 0, 512, 512)),
                                                ((500, 4000), (0, 100, 500, 600)),
                                                ((960, 540), None)])
def test_panels_fit_the_width_share_a_height_and_keep_aspect(image_size, window):
    panels = place_panels(image_size, window, max_width=1600, panel_height=720, margin=12,
                          top=30)
    assert set(panels) == ({OVERVIEW} if window is None else {OVERVIEW, CROP})
    assert max(p.box[2] for p in panels.values()) + 12 <= 1600
    assert len({(p.box[1], p.size[1]) for p in panels.values()}) == 1  # one top, one height
    assert all(p.size[1] <= 720 for p in panels.values())
    for panel in panels.values():
        x1, y1, x2, y2 = panel.window
        assert panel.size[0] / panel.size[1] == pytest.approx((x2 - x1) / (y2 - y1), rel=0.02)
        # the window's corners land on the panel's
        np.testing.assert_allclose(panel.to_canvas(panel.window), panel.box, atol=1e-6)


def test_clip_box_says_how_much_was_inside():
    window = (0, 0, 960, 540)
    box, status = clip_box([10, 20, 100, 200], window)
    assert status == INSIDE and box.tolist() == [10, 20, 100, 200]
    box, status = clip_box([10, 10, 1342, 1321], window)
    assert status == PARTIAL and box.tolist() == [10, 10, 960, 540]
    assert clip_box([1000, 600, 1400, 900], window) == (None, OUTSIDE)
    assert clip_box([-50, 10, 0, 20], window) == (None, OUTSIDE)  # touching an edge only
    for bad in ([5, 5, 1, 9], [0, 0, float('nan'), 1], [1, 2, 3]):
        assert clip_box(bad, window) == (None, NOT_A_BOX)


def test_clipping_notes():
    assert clipping_note('explorer region', [10, 10, 1342, 1321], INSIDE, 'image') is None
    assert clipping_note('explorer region', [10, 10, 1342, 1321], PARTIAL, 'image') == (
        'explorer region 1332x1311 px [10, 10, 1342, 1321] extends beyond the image '
        '(drawn clipped)')
    assert clipping_note('refiner box', [600, 0, 700, 50], OUTSIDE, 'crop window') == (
        'refiner box 100x50 px [600, 0, 700, 50] lies outside the crop window (not drawn)')
    assert clipping_note('box', [5, 5, 1, 9], NOT_A_BOX, 'image') == (
        'box [5, 5, 1, 9] is not a box (not drawn)')


def _measure(text: str) -> float:
    return float(len(text))  # one unit per character


def test_wrap_keeps_words_and_cuts_only_words_wider_than_a_line():
    assert wrap_text('the small red car', 9, _measure) == ['the small', 'red car']
    assert wrap_text('answer: ' + 'y' * 25, 10, _measure) == [
        'answer: yy', 'y' * 10, 'y' * 10, 'yyy']
    assert wrap_text('', 10, _measure) == ['']
    for text in ('a ' * 40, 'word ' + 'z' * 33 + ' end', 'x' * 7):
        lines = wrap_text(text.strip(), 7, _measure)
        assert all(_measure(line) <= 7 for line in lines)
        assert ''.join(lines).replace(' ', '') == text.replace(' ', '')


def test_wrap_entries_stops_at_the_line_budget_with_an_ellipsis():
    entries = [('question', 'one two three four five six'), ('answer', 'seven eight')]
    assert wrap_entries(entries, 10, _measure, 10) == [
        ('question', 'one two'), ('question', 'three four'), ('question', 'five six'),
        ('answer', 'seven'), ('answer', 'eight')]
    assert wrap_entries(entries, 10, _measure, 3) == [
        ('question', 'one two'), ('question', 'three four'), ('question', 'five six…')]


def test_caption_entries_of_each_question_type():
    sample = DetDataSample()
    sample.set_metainfo(dict(question='Which one?\n  Pick', question_type='multiple_choice',
                             options=['A. red', 'B. blue'], pred_answer='A', answer='B',
                             invalid_reason='refiner:no_json'))
    assert caption_entries(sample, draw_gt=True, draw_pred=True, notes=['n1']) == [
        ('question', 'Q (multiple_choice): Which one? Pick'),
        ('question', 'options: A. red   B. blue'),
        ('answer', 'answer: A (red)'),
        ('invalid', 'invalid: refiner:no_json (this output could not be used)'),
        ('gt', 'GT answer: B (blue)'),
        ('note', 'note: n1')]
    assert [kind for kind, _ in caption_entries(sample, draw_gt=False, draw_pred=False)] == [
        'question', 'question']
    open_sample = DetDataSample()
    open_sample.set_metainfo(dict(question='What colour?', question_type='open',
                                  pred_answer=None))
    assert caption_entries(open_sample, False, True) == [
        ('question', 'Q (open): What colour?'), ('answer', 'answer: (none)')]
    assert caption_entries(None, True, True, notes=['n']) == [('note', 'note: n')]


def test_clean_text_makes_one_printable_bounded_line():
    assert clean_text(' a\tb\n\nc ') == 'a b c'
    assert clean_text('x\x00y') == 'x?y'
    assert clean_text(None) == ''
    assert clean_text('z' * 500, max_chars=10) == 'z' * 9 + '…'
