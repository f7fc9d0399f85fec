# Copyright (c) finers_mm contributors. All rights reserved.
"""benchmarks/bench_grpo_iteration.py runs end to end with ``--quick`` (the tiny pixel budget, n = 3,
8 tokens): the three sides (ours with share_prompt on and off, trl's GRPOTrainer) each run their
iterations in lock-step with completions of exactly the asked length and the same prompt lengths;
timings are printed, never asserted (speed lives in the benchmark)."""
import importlib.util
import math
import os.path as osp
import sys

import pytest

from finers_mm.testing import REPO_ROOT

BENCHMARKS = osp.join(REPO_ROOT, 'benchmarks')


@pytest.mark.slow
def test_quick_run_reports_three_sides(monkeypatch, capsys):
    monkeypatch.syspath_prepend(BENCHMARKS)
    name = '_bench_grpo_iteration_quick'
    spec = importlib.util.spec_from_file_location(
        name, osp.join(BENCHMARKS, 'bench_grpo_iteration.py'))
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        results = module.main(['--quick', '--stages', 'lpr'])
    finally:
        sys.modules.pop(name, None)
    result = results['lpr']
    assert result['completion_tokens'] == 8
    assert result['prompt_tokens'] == result['trl_prompt_tokens'] > 0
    for side in ('shared', 'unshared', 'trl'):
        assert result[f'{side}_total'] > 0 and result[f'{side}_generate'] > 0
    for key in ('unshared_ratio', 'trl_ratio'):
        assert math.isfinite(result[key]) and result[key] > 0
    assert 'x unsh' in capsys.readouterr().out
