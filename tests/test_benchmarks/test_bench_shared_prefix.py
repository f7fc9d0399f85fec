# Copyright (c) finers_mm contributors. All rights reserved.
"""benchmarks/bench_shared_prefix_logprobs.py runs end to end with ``--quick`` (tiny images, n = 3)
and both paths agree; its timings are printed, never asserted (speed lives in the benchmark)."""
import math
import os.path as osp

from finers_mm.testing import REPO_ROOT
from finers_mm.testing.tools import load_benchmark

BENCHMARKS = osp.join(REPO_ROOT, 'benchmarks')


def test_quick_run_reports_both_cases(monkeypatch, capsys):
    monkeypatch.syspath_prepend(BENCHMARKS)
    results = load_benchmark('bench_shared_prefix_logprobs.py').main(['--quick'])
    assert set(results) == {'gse', 'lpr'}
    for result in results.values():
        assert result['max_abs_diff'] < 1e-5
        assert result['prompt_tokens'] > 0
        for key in ('ref_ratio', 'policy_ratio'):
            assert math.isfinite(result[key]) and result[key] > 0
    assert 'x ref' in capsys.readouterr().out
