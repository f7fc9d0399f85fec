# Copyright (c) finers_mm contributors. All rights reserved.
"""Timing shared by the benchmark scripts (importable as ``timing`` when a script in this folder runs)."""
import statistics
import time
from typing import Callable


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after one warm-up.

    Args:
        fn (callable): the work to time, called with no arguments.
        repeats (int): timed runs (>= 1).

    Returns:
        float: seconds.
    """
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
