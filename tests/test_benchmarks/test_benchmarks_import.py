# Copyright (c) finers_mm contributors. All rights reserved.
"""Every benchmark script still imports (its modules, configs' builders and helpers exist).

The benchmarks are not run here (speed goals live in them, not in tests); this only catches a
script left pointing at a moved or renamed module.
"""
import glob
import importlib.util
import os.path as osp
import sys

import pytest

from finers_mm.testing import REPO_ROOT

BENCHMARKS = osp.join(REPO_ROOT, 'benchmarks')
SCRIPTS = sorted(glob.glob(osp.join(BENCHMARKS, 'bench_*.py')))


def test_there_are_benchmarks():
    assert len(SCRIPTS) >= 5


@pytest.mark.parametrize('path', SCRIPTS, ids=osp.basename)
def test_benchmark_imports_and_has_a_main(path, monkeypatch):
    monkeypatch.syspath_prepend(BENCHMARKS)  # as when the script runs: its folder on sys.path
    name = f'_bench_{osp.splitext(osp.basename(path))[0]}'
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    assert callable(getattr(module, 'main', None))
