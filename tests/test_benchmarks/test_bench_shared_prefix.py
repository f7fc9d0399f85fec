# Copyright (c) finers_mm contributors. All rights reserved.
"""benchmarks/bench_shared_prefix_logprobs.py runs end to end with ``--quick`` (tiny images, n = 3)
and both paths agree; its timings are printed, never asserted (speed lives in the benchmark)."""
import importlib.util
import math
import os.path as osp
import sys

from finers_mm.testing import REPO_ROOT

BENCHMARKS = osp.join(REPO_ROOT, 'benchmarks')


def test_quick_run_reports_both_cases(monkeypatch, capsys):
    monkeypatch.syspath_prepend(BENCHMARKS)
    name = '_bench_shared_prefix_quick'
    spec = importlib.util.spec_from_file_location(
        name, osp.join(BENCHMARKS, 'bench_shared_prefix_logprobs.py'))
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        results = module.main(['--quick'])
    finally:
        sys.modules.pop(name, None)
    assert set(results) == {'gse', 'lpr'}
    for result in results.values():
        assert result['max_abs_diff'] < 1e-5
        assert result['prompt_tokens'] > 0
        for key in ('ref_ratio', 'policy_ratio'):
            assert math.isfinite(result[key]) and result[key] > 0
    assert 'x ref' in capsys.readouterr().out
