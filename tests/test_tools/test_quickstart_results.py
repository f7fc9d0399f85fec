# Copyright (c) finers_mm contributors. All rights reserved.
"""What the quick start reads from its steps (tools/misc/quickstart_results.py): the training
progress lines it shows, the metrics and rewards it reads, and the tables it prints."""
import json

import pytest
import torch

from finers_mm.testing.tools import load_tool


@pytest.fixture(scope='module')
def results():
    return load_tool('misc', 'quickstart_results.py')


def test_about_five_training_lines_are_shown_with_the_loss_or_the_reward(results):
    pattern = results.train_progress(100)
    shown = [i for i in range(1, 101)
             if pattern.search(f'Epoch(train) Iter(train) [{i:>3}/100]  lr: 1e-5  eta: 0:01:00  '
                               f'time: 1.2  reward: 0.{i}  loss: -0.5')]
    assert shown == [20, 40, 60, 80, 100]
    match = pattern.search('Iter(train) [ 40/100]  lr: 1e-5  loss: 1.5e-03  grad_norm: 2.0')
    assert match.group(0).endswith('loss: 1.5e-03')
    assert pattern.search('Iter(train) [ 40/1000]  loss: 1.0') is None
    assert [i for i in range(1, 3) if results.train_progress(2).search(
        f'Iter(train) [{i}/2]  loss: 1.0')] == [1, 2]


def test_metrics_and_rewards_are_read_from_the_tools_outputs(results, tmp_path):
    for stamp, value in (('20240101_000000', 1.0), ('20240102_000000', 2.0)):  # the last run
        (tmp_path / 'eval' / stamp).mkdir(parents=True)
        (tmp_path / 'eval' / stamp / f'{stamp}.json').write_text(
            json.dumps({'finers/gIoU': value, 'finers/invalid_rate': 50.0, 'time': 3}))
    assert results.read_metrics(str(tmp_path / 'eval')) == dict(gIoU=2.0, invalid_rate=50.0)
    with pytest.raises(SystemExit, match='no metrics file under'):
        results.read_metrics(str(tmp_path / 'nothing'))

    scalars = tmp_path / 'train' / '20240101_000000' / 'vis_data' / 'scalars.json'
    scalars.parent.mkdir(parents=True)
    scalars.write_text(''.join(json.dumps(dict(reward=r, step=i)) + '\n'
                               for i, r in enumerate([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])))
    rows = results.read_rewards(str(tmp_path / 'train'))
    assert [row['reward'] for row in rows] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]

    preds = tmp_path / 'demo' / 'preds' / '0000_train_000000.json'
    preds.parent.mkdir(parents=True)
    preds.write_text(json.dumps(dict(answer='red', mask_file='m.png')))
    assert results.read_prediction(str(tmp_path / 'demo'), '/x/train_000000.jpg') == dict(
        answer='red', mask_file='m.png')


def test_reward_summary_compares_the_first_and_last_iterations(results):
    rows = [{'reward': float(i), 'reward/format': 1.0, 'invalid_rate': 1 - i / 10, 'loss': 9.0}
            for i in range(10)]
    rows[4].pop('reward/format')
    summary = results.reward_summary(rows)
    assert list(summary) == ['reward', 'reward/format', 'invalid_rate']  # 'loss' left out
    assert summary['reward'] == dict(first=0.0, last=9.0, first_k=1.0, last_k=8.0, k=3, iters=10)
    assert summary['reward/format']['iters'] == 9
    assert results.reward_summary(rows[:2])['reward']['k'] == 1


def test_tables_put_untrained_and_trained_side_by_side(results):
    table = results.format_metrics(dict(gIoU=0.0444, cIoU=0.0, invalid_rate=100.0, OVQA=None),
                                   dict(gIoU=3.0, cIoU=0.5, invalid_rate=8.333, MVQA=50.0))
    assert table.splitlines() == [
        'metric (%)      untrained    trained',
        'gIoU               0.0444       3.00',  # a small gIoU is not printed as 0
        'cIoU                 0.00      0.500',
        'invalid_rate       100.00       8.33',
        'MVQA                    -      50.00',
        'OVQA                    -          -']
    assert [results.format_percent(v) for v in (55.123, 0.045, 0.00012, -0.5, 0)] == [
        '55.12', '0.0450', '0.000120', '-0.500', '0.00']
    rewards = results.format_rewards('LPR', results.reward_summary(
        [dict(reward=float(i)) for i in range(30)]))
    assert rewards.splitlines() == [
        'LPR GRPO (30 iters)          first    last  first 10  last 10',
        'reward                       0.000  29.000     4.500   24.500']


def test_window_recall_and_region_band_count_where_the_chain_looked(results):
    # a 960 x 540 image seen in a 480 x 270 explorer frame, regions of 64 frame pixels
    base = dict(explorer_frame=(480, 270), ori_shape=(540, 960), region_size=64,
                gt_bbox_explorer=[100.0, 50.0, 110.0, 60.0])  # original [200, 100, 220, 120]
    preds = [
        dict(base, pred_window=[200, 100, 220, 120], pred_region=[140, 40, 268, 168],
             pred_instances=dict(bboxes=torch.tensor([[200.0, 100.0, 220.0, 120.0]]))),  # hit, in
        dict(base, pred_window=[201, 100, 400, 300], pred_region=[0, 0, 960, 540],
             pred_instances=dict(bboxes=torch.tensor([[210.0, 100.0, 230.0, 120.0]]))),  # miss, out
        dict(base, pred_window=None, pred_region=None),  # no region: miss, out
        dict(base, pred_window=[0, 0, 512, 512], pred_region=[0, 0, 128 + 30, 128 - 30],
             pred_instances=dict(bboxes=torch.zeros(0, 4))),
    ]
    figures = results.localisation_figures(preds)
    # the last: in the window; sides 79 and 49 frame pixels: 64 +- 15, just in the band.
    # Box IoU with the GT in ORIGINAL pixels: 1, 1/3 (half a box's width off), 0 and 0 (no box)
    box_iou = figures.pop('box_iou')
    assert figures == dict(window_recall=50.0, region_in_band=50.0, num_samples=4)
    assert box_iou == pytest.approx(100.0 * (1 + 1 / 3) / 4)
    assert results.localisation_figures(preds, band=14)['region_in_band'] == 25.0
    table = results.format_chains(dict(untrained=dict(gIoU=0.0, window_recall=10.0),
                                       trained=dict(gIoU=35.5, window_recall=90.0)))
    lines = table.splitlines()
    assert lines[0].split() == ['metric', '(%)', 'untrained', 'trained']
    assert lines[1].split() == ['gIoU', '0.00', '35.50']
    assert lines[2].split() == ['window_recall', '10.00', '90.00']
