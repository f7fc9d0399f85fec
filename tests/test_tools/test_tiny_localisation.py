# Copyright (c) finers_mm contributors. All rights reserved.
"""The locating chain's tools (issue 16): tools/misc/train_tiny_locator.py trains both stages and
writes them as float16 with a manifest; benchmarks/bench_tiny_localisation.py evaluates chains on
a held-out set with window recall and the region size band. Smoke runs (1 step, 3 questions): the
flow and its outputs, not the quality (the benchmark's docstring holds the measured figures)."""
import json

import pytest
from safetensors import safe_open

from finers_mm.testing.tools import load_benchmark, load_tool


@pytest.mark.slow
def test_trained_stages_are_written_with_their_manifest_and_benchmarked(tmp_path, capsys):
    out = tmp_path / 'tiny_locator'
    train = load_tool('misc', 'train_tiny_locator.py')
    train.main(['--out', str(out), '--work-dir', str(tmp_path / 'work'), '--num-images', '1',
                '--sft-iters', '1', '--jobs', '1', '--seed', '3'])
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['seed'] == 3 and manifest['script_version'] == train.SCRIPT_VERSION
    assert manifest['data'] == dict(train.DATA, image_size=[960, 540], num_images=1, seed=3)
    assert set(manifest['stages']) == {'explorer', 'refiner'}
    for stage, info in manifest['stages'].items():
        assert info['iters'] == 1 and info['config'] == train.CONFIGS[stage]
        weights = out / stage / 'model.safetensors'
        with safe_open(str(weights), 'pt') as f:
            assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {'torch.float16'}
        assert weights.stat().st_size < 3 * 2**20  # a few MB in the repository
        assert (out / stage / 'processor_config.json').is_file()

    bench = load_benchmark('bench_tiny_localisation.py')
    results = bench.main([f'trained={out}/explorer,{out}/refiner', '--num-images', '1',
                          '--out-dir', str(tmp_path / 'bench')])
    printed = capsys.readouterr().out
    assert list(results) == ['untrained', 'trained']
    for figures in results.values():
        assert figures['num_samples'] == 3
        for name in ('gIoU', 'invalid_rate', 'MVQA', 'window_recall', 'region_in_band'):
            assert name in figures and any(line.split()[:1] == [name]
                                           for line in printed.splitlines())
    # random weights never close an answer tag, so never give a region or a window
    assert results['untrained']['invalid_rate'] == 100.0
    assert results['untrained']['window_recall'] == results['untrained']['region_in_band'] == 0
    saved = json.loads((tmp_path / 'bench' / 'figures.json').read_text())
    assert saved['trained']['gIoU'] == results['trained']['gIoU']
