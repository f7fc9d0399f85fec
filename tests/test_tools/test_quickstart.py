# Copyright (c) finers_mm contributors. All rights reserved.
"""The README's main job (tools/misc/quickstart.py): train the tiny stages through our tools,
evaluate before/after, run the demo, with either chain (the shipped locating stages, the default;
the random tiny Qwen2.5-VL chain). Here with --quick (2 steps per stage, 2 eval questions): the
flow and its outputs, not the quality (the full run is the quick start itself; the shipped stages'
quality: test_tiny_localisation.py). Its step runner: test_quickstart_steps.py; its tables:
test_quickstart_results.py."""
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from finers_mm.testing.paths import TINY_LOCATOR
from finers_mm.testing.synthetic import REGIONS
from finers_mm.testing.tools import load_tool

#: the steps of --chain tiny in the order they run (the refiner's, the explorer's and the first
#: evaluation run side by side, each chain in order)
CHAINS = (('synthetic training set', 'UNTRAINED tiny models', 'TRAINED stages'),
          ('synthetic training set', 'refiner (LPR): supervised warm-up, 2 iterations',
           'export the LPR SFT checkpoint', 'refiner (LPR): GRPO from the warm-up, 2 iterations',
           'export the LPR GRPO checkpoint', 'TRAINED stages'),
          ('synthetic training set', 'explorer (GSE): supervised warm-up, 2 iterations',
           'export the GSE SFT checkpoint', 'explorer (GSE): GRPO from the warm-up, 2 iterations',
           'export the GSE GRPO checkpoint', 'TRAINED stages'))
STEPS = {title for chain in CHAINS for title in chain}
#: the steps of the locating chain (the default), each chain of steps in order
LOC_CHAINS = (
    ('synthetic training set', 'held-out synthetic set', 'UNTRAINED tiny models on the bundled',
     'UNTRAINED tiny models on the held-out', 'TRAINED stages on the'),
    ('held-out synthetic set', 'SHIPPED (supervised) stages on the bundled',
     'SHIPPED (supervised) stages on the held-out', 'TRAINED stages on the'),
    ('synthetic training set', 'refiner (LPR): GRPO from the shipped stage, 2 iterations',
     'export the LPR GRPO checkpoint', 'TRAINED stages on the'),
    ('synthetic training set', 'explorer (GSE): GRPO from the shipped stage, 2 iterations',
     'export the GSE GRPO checkpoint', 'TRAINED stages on the'))
LOC_STEPS = {title for chain in LOC_CHAINS for title in chain} - {'TRAINED stages on the'} | {
    'TRAINED stages on the bundled', 'TRAINED stages on the held-out'}


@pytest.fixture(scope='module')
def quickstart():
    return load_tool('misc', 'quickstart.py')


def _stamps(out_dir) -> dict:
    return {osp.relpath(osp.join(root, name), out_dir): os.stat(osp.join(root, name)).st_mtime_ns
            for root, _, names in os.walk(out_dir) for name in names
            if name == '.quickstart_done.json'}


@pytest.mark.slow
def test_quickstart_of_the_tiny_chain_trains_evaluates_and_runs_the_demo(quickstart, tmp_path,
                                                                         tiny_models, capsys):
    models_dir = osp.dirname(tiny_models['sam'])  # the session's tiny models: reused, not rebuilt
    out_dir = tmp_path / 'quickstart'
    argv = ['--quick', '--chain', 'tiny', '--out-dir', str(out_dir), '--models-dir', models_dir]
    prediction = quickstart.main(argv)
    printed = capsys.readouterr().out

    # every step ran once, in order, through our tools
    for chain in CHAINS:
        positions = [printed.find(f'{title}') for title in chain]
        assert -1 not in positions and positions == sorted(positions), printed
    assert printed.count('done in') == len(STEPS)

    # before/after FineRSMetric tables side by side, the GRPO rewards of both stages
    summary = json.loads((out_dir / 'summary.json').read_text())
    untrained, trained = summary['metrics']['untrained'], summary['metrics']['trained']
    for name in ('gIoU', 'cIoU', 'invalid_rate'):
        assert name in untrained and name in trained
        assert any(line.split()[:1] == [name] for line in printed.splitlines())
    assert untrained['invalid_rate'] == 100.0  # random weights never close an answer tag
    assert 'untrained' in printed and 'trained' in printed
    for stage, localisation in (('LPR', 'reward/box_iou'), ('GSE', 'reward/region_contains')):
        rewards = summary['grpo_rewards'][stage]
        assert rewards['reward']['iters'] == 2 and localisation in rewards
        assert f'{stage} GRPO (2 iters)' in printed
        assert 0.0 <= rewards['reward']['first'] <= 7.0

    # the exports are Hugging Face dirs, and the trained run evaluated and demoed them
    for name in ('lpr_sft', 'lpr', 'gse_sft', 'gse'):
        assert (out_dir / 'models' / name / 'hf' / 'config.json').is_file()
    assert summary['models'] == dict(explorer=str(out_dir / 'models' / 'gse' / 'hf'),
                                     refiner=str(out_dir / 'models' / 'lpr' / 'hf'))
    after = json.loads((out_dir / 'eval' / 'eval_after' / '.quickstart_done.json').read_text())
    command = ' '.join(after['key']['command'])
    assert f"model.explorer.vlm.pretrained={summary['models']['explorer']}" in command
    assert f"model.refiner.vlm.pretrained={summary['models']['refiner']}" in command

    # the demo on the first bundled question
    record = quickstart.first_bundled_record()
    assert record['Q'] in printed and 'answer   :' in printed
    image = Image.open(osp.join(quickstart.BUNDLED, 'images', record['image_path']))
    mask = np.asarray(Image.open(prediction['mask_file']))
    assert mask.shape == (image.size[1], image.size[0])
    assert osp.isfile(out_dir / 'vis' / f"0000_{osp.splitext(record['image_path'])[0]}.jpg")
    assert 'answer   :' in (out_dir / 'demo.log').read_text()  # tools/demo.py, run as a step

    # run again: every finished step is reused untouched, only the demo runs
    stamps = _stamps(out_dir)
    assert len(stamps) == len(STEPS)
    quickstart.main(argv)
    printed = capsys.readouterr().out
    assert printed.count('done before, reusing') == len(STEPS)
    assert _stamps(out_dir) == stamps
    assert record['Q'] in printed and 'answer   :' in printed


@pytest.mark.slow
def test_quickstart_fine_tunes_the_shipped_locating_stages(quickstart, tmp_path, tiny_models,
                                                           capsys):
    models_dir = osp.dirname(tiny_models['sam'])
    out_dir = tmp_path / 'quickstart'
    argv = ['--quick', '--out-dir', str(out_dir), '--models-dir', models_dir]
    prediction = quickstart.main(argv)
    printed = capsys.readouterr().out
    for chain in LOC_CHAINS:
        positions = [printed.find(title) for title in chain]
        assert -1 not in positions and positions == sorted(positions), printed
    assert printed.count('done in') == len(LOC_STEPS) == quickstart.total_steps(
        quickstart.CHAIN_KINDS['locator']) - 1  # the demo runs every time, without a stamp

    summary = json.loads((out_dir / 'summary.json').read_text())
    with open(osp.join(TINY_LOCATOR, 'manifest.json'), encoding='utf-8') as f:
        manifest = json.load(f)
    assert summary['chain'] == 'locator' and summary['shipped'] == manifest
    for metrics in (summary['metrics'], summary['heldout_metrics']):
        assert list(metrics) == ['untrained', 'warm-up', 'trained']
        assert metrics['untrained']['invalid_rate'] == 100.0
    for figures in summary['heldout_metrics'].values():
        assert {'window_recall', 'region_in_band', 'gIoU'} <= set(figures)
    assert 'warm-up' in printed and 'window_recall' in printed

    # GRPO started from the shipped stages, on scenes of the kind they last trained on; the
    # held-out set is of that kind too, with the benchmark's seed
    for short, stage in (('lpr', 'refiner'), ('gse', 'explorer')):
        stamp = json.loads((out_dir / 'train' / f'{short}_grpo' / '.quickstart_done.json')
                           .read_text())
        command = ' '.join(stamp['key']['command'])
        assert f"model.vlm.pretrained={osp.join(TINY_LOCATOR, stage)}" in command
        assert f'{short}_tiny_loc.py' in command
    scene = quickstart.scene_of(manifest['data']['curriculum'][-1])
    for folder, split in (('data', 'train'), ('heldout', 'test')):
        with open(out_dir / folder / 'annotations' / f'{split}.json', encoding='utf-8') as f:
            records = json.load(f)['annotations']
        images = {r['image_path'] for r in records}
        assert len(records) == scene['questions_per_image'] * len(images), folder
        named = [name for r in records for name in REGIONS
                 if f'the {name} part' in r['Q']]
        assert bool(named) <= scene['region_cues'], folder
    stamp = json.loads((out_dir / 'heldout' / '.quickstart_done.json').read_text())
    command = stamp['key']['command']
    assert command[command.index('--seed') + 1] == str(quickstart.HELDOUT['seed'])

    # the demo ran the locating chain on the first held-out question (a scene of the kind its
    # stages trained on), drawn in vis/
    with open(out_dir / 'heldout' / 'annotations' / 'test.json', encoding='utf-8') as f:
        record = json.load(f)['annotations'][0]
    assert record['Q'] in printed and 'answer   :' in (out_dir / 'demo.log').read_text()
    assert osp.isfile(out_dir / 'vis' / f"0000_{osp.splitext(record['image_path'])[0]}.jpg")
    assert osp.isfile(prediction['mask_file'])

    # run again: every finished step is reused untouched
    stamps = _stamps(out_dir)
    assert len(stamps) == len(LOC_STEPS)
    quickstart.main(argv)
    assert capsys.readouterr().out.count('done before, reusing') == len(LOC_STEPS)
    assert _stamps(out_dir) == stamps


def test_the_locating_chain_without_shipped_stages_says_how_to_get_them(quickstart, tmp_path):
    with pytest.raises(SystemExit, match='train_tiny_locator.py.*--chain tiny'):
        quickstart.read_locator_manifest(str(tmp_path))


def test_quick_sets_only_what_is_not_given(quickstart):
    args = quickstart.parse_args(['--quick', '--grpo-iters', '5'])
    assert (args.num_images, args.sft_iters, args.grpo_iters, args.eval_samples,
            args.heldout_questions) == (2, 2, 5, 2, 2)
    args = quickstart.parse_args([])
    assert (args.num_images, args.sft_iters, args.grpo_iters, args.eval_samples,
            args.heldout_questions) == (64, None, None, None, 48)
    assert args.chain == 'locator' and args.locator_dir == TINY_LOCATOR
