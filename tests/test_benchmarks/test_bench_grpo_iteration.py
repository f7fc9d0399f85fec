# Copyright (c) finers_mm contributors. All rights reserved.
"""benchmarks/bench_grpo_iteration.py runs end to end with ``--quick`` (the tiny pixel budget, n = 3,
8 tokens): the three sides (ours with share_prompt on and off, trl's GRPOTrainer) each run their
iterations in lock-step with completions of exactly the asked length and the same prompt lengths;
timings are printed, never asserted (speed lives in the benchmark)."""
import math
import os.path as osp

import pytest

from finers_mm.testing import REPO_ROOT
from finers_mm.testing.tools import load_benchmark

BENCHMARKS = osp.join(REPO_ROOT, 'benchmarks')


@pytest.mark.slow
def test_quick_run_reports_three_sides(monkeypatch, capsys):
    monkeypatch.syspath_prepend(BENCHMARKS)
    results = load_benchmark('bench_grpo_iteration.py').main(['--quick', '--stages', 'lpr'])
    result = results['lpr']
    assert result['completion_tokens'] == 8
    assert result['prompt_tokens'] == result['trl_prompt_tokens'] > 0
    for side in ('shared', 'unshared', 'trl'):
        assert result[f'{side}_total'] > 0 and result[f'{side}_generate'] > 0
    for key in ('unshared_ratio', 'trl_ratio'):
        assert math.isfinite(result[key]) and result[key] > 0
    assert 'x unsh' in capsys.readouterr().out
