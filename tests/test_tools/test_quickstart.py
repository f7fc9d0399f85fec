# Copyright (c) finers_mm contributors. All rights reserved.
"""The README's main job (tools/misc/quickstart.py): train the tiny stages through our tools,
evaluate before/after, run the demo. Here with --quick (2 steps per stage, 2 eval questions): the
flow and its outputs, not the quality (the full run is the quick start itself). Its step runner:
test_quickstart_steps.py; its tables: test_quickstart_results.py."""
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from finers_mm.testing.tools import load_tool

#: the steps in the order they run (the refiner's, the explorer's and the first evaluation run
#: side by side, each chain in order)
CHAINS = (('synthetic training set', 'UNTRAINED tiny models', 'TRAINED stages'),
          ('synthetic training set', 'refiner (LPR): supervised warm-up, 2 iterations',
           'export the LPR SFT checkpoint', 'refiner (LPR): GRPO from the warm-up, 2 iterations',
           'export the LPR GRPO checkpoint', 'TRAINED stages'),
          ('synthetic training set', 'explorer (GSE): supervised warm-up, 2 iterations',
           'export the GSE SFT checkpoint', 'explorer (GSE): GRPO from the warm-up, 2 iterations',
           'export the GSE GRPO checkpoint', 'TRAINED stages'))
STEPS = {title for chain in CHAINS for title in chain}


@pytest.fixture(scope='module')
def quickstart():
    return load_tool('misc', 'quickstart.py')


def _stamps(out_dir) -> dict:
    return {osp.relpath(osp.join(root, name), out_dir): os.stat(osp.join(root, name)).st_mtime_ns
            for root, _, names in os.walk(out_dir) for name in names
            if name == '.quickstart_done.json'}


@pytest.mark.slow
def test_quickstart_trains_evaluates_and_runs_the_demo(quickstart, tmp_path, tiny_models, capsys):
    models_dir = osp.dirname(tiny_models['sam'])  # the session's tiny models: reused, not rebuilt
    out_dir = tmp_path / 'quickstart'
    argv = ['--quick', '--out-dir', str(out_dir), '--models-dir', models_dir]
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


def test_quick_sets_only_what_is_not_given(quickstart):
    args = quickstart.parse_args(['--quick', '--grpo-iters', '5'])
    assert (args.num_images, args.sft_iters, args.grpo_iters, args.eval_samples) == (2, 2, 5, 2)
    args = quickstart.parse_args([])
    assert (args.num_images, args.sft_iters, args.grpo_iters, args.eval_samples) == (
        64, None, None, None)
