# Copyright (c) finers_mm contributors. All rights reserved.
"""benchmarks/bench_tiny_vision_probe.py: the curriculum schedule, the cell label of a square, the
strict reading of answers, the scenes, and a 2-step run that writes its JSON (accuracy is not
asserted: 2 steps learn nothing; the probe's findings live in its docstring)."""
import json

import numpy as np
import pytest

from finers_mm.testing.tools import load_benchmark


@pytest.fixture(scope='module')
def probe():
    return load_benchmark('bench_tiny_vision_probe.py')


def test_curriculum_moves_linearly_then_holds(probe):
    start, end = (30, 60), (8, 28)
    assert probe.curriculum_sides(0.0, end, start) == (30, 60)
    assert probe.curriculum_sides(0.3, end, start) == (19, 44)  # halfway through the 60 % ramp
    assert probe.curriculum_sides(0.6, end, start) == (8, 28)
    assert probe.curriculum_sides(0.95, end, start) == (8, 28)
    assert probe.curriculum_sides(0.3, end) == (8, 28)  # no curriculum


@pytest.mark.parametrize('box, cell', [
    ((0, 0, 56, 56), (1, 1)),        # centre 28: on a border, the next cell
    ((19, 19, 36, 36), (0, 0)),      # centre 27.5: still the first
    ((20, 48, 36, 64), (1, 2)),      # centre (28, 56)
    ((4, 100, 12, 108), (0, 3)),     # against the margin, bottom-left
    ((80, 4, 108, 32), (3, 0)),      # centre 94 x 18
])
def test_cell_of_a_square(probe, box, cell):
    assert probe.cell_of(box) == cell
    assert probe.truth('cell', 'red', box) == f'{cell[0]} {cell[1]}'


@pytest.mark.parametrize('text, cell', [
    ('2 3', (2, 3)), (' 2 3 ', (2, 3)), ('0 10', (0, 10)),
    ('2,3', None), ('2', None), ('2 3 4', None), ('-1 2', None), ('a b', None), ('', None),
])
def test_read_cell_is_strict(probe, text, cell):
    assert probe.read_cell(text) == cell


def test_answers_are_judged_strictly(probe):
    box = (20, 20, 36, 36)  # cell (1, 1)
    assert probe.is_correct('cell', '1 1', 'red', box)
    assert not probe.is_correct('cell', '1 1 1', 'red', box)
    assert not probe.is_correct('cell', '1 2', 'red', box)
    assert probe.is_correct('colour', ' Red ', 'red', box)
    assert not probe.is_correct('colour', 'reddish', 'red', box)
    assert not probe.is_correct('text_colour', 'blue', 'red', box)


def test_scenes_hold_one_square_in_range(probe):
    rng = np.random.default_rng(0)
    for _ in range(50):
        image, colour, (x1, y1, x2, y2) = probe.sample_scene(rng, 'colour', (8, 12))
        side = x2 - x1
        assert 8 <= side <= 12 and y2 - y1 == side
        assert probe.MARGIN <= min(x1, y1) and max(x2, y2) <= probe.IMAGE_SIZE - probe.MARGIN
        painted = np.all(image == probe.COLORS[colour], axis=-1)
        assert painted.sum() == side * side and painted[y1:y2, x1:x2].all()
    image, colour, _ = probe.sample_scene(rng, 'full_colour', (8, 12))
    assert np.all(image == probe.COLORS[colour])


def test_bad_row_names_the_fix(probe):
    with pytest.raises(ValueError, match='choose one of'):
        probe.ProbeRow('where', (8, 28))
    with pytest.raises(ValueError, match='low <= high'):
        probe.ProbeRow('colour', (28, 8))


@pytest.mark.parametrize('model_name', ['locator', 'qwen3_sincos'])
def test_padded_batch_loss_is_the_token_mean_of_single_losses(probe, tmp_path, model_name):
    """Right padding must not move a sequence's M-RoPE positions nor add loss terms."""
    import torch
    model, processor = probe.build_model(model_name, str(tmp_path), seed=0)
    model.eval()
    rng = np.random.default_rng(0)
    sequences = []
    for task in ('text_colour', 'cell', 'colour', 'cell'):  # prompts and answers of several lengths
        image, colour, box = probe.sample_scene(rng, task, (8, 28))
        sequences.append(probe.answer_tokens(processor, image, probe.question(task, colour),
                                             probe.truth(task, colour, box)))
    assert len({len(s['input_ids']) for s in sequences}) >= 3
    for s in sequences:
        answer = s['labels'] != -100
        assert len(s['mm_token_type_ids']) == len(s['input_ids'])
        assert not s['mm_token_type_ids'][answer].any() and s['mm_token_type_ids'].any()
        assert torch.equal(s['labels'][answer], s['input_ids'][answer])
        assert answer[-int(answer.sum()):].all()  # the answer is the tail
    with torch.no_grad():
        batched = probe.batch_loss(model, processor, sequences)
        counts = [int((s['labels'] != -100).sum()) for s in sequences]
        singles = [probe.batch_loss(model, processor, [s]) for s in sequences]
    expected = sum(loss * n for loss, n in zip(singles, counts)) / sum(counts)
    assert torch.allclose(batched, expected, rtol=1e-4)


def test_two_steps_write_the_json(probe, tmp_path, capsys):
    out = tmp_path / 'probe.json'
    results = probe.main(['--task', 'cell', '--steps', '2', '--eval-size', '2', '--start-sides',
                          '30', '60', '--out', str(out), '--log-every', '1'])
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(results))
    (row, ) = written
    assert row['task'] == 'cell' and row['start_sides'] == [30, 60] and row['steps'] == 2
    assert 0 <= row['accuracy'] <= 100 and row['chance'] >= 50  # 2 images: a constant gets 1
    assert len(row['examples']) == 2 and row['final_loss'] > 0
    printed = capsys.readouterr().out
    assert 'step 2/2' in printed and '| cell' in printed
