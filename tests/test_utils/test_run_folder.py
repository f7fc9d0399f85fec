# Copyright (c) finers_mm contributors. All rights reserved.
"""unique_run_second: two runs in one work_dir never build their runners in the same second."""
import os
import threading
import time

from finers_mm.utils.run_folder import launcher_rank, unique_run_second


def _enter_together(work_dir, count: int = 2) -> list:
    """Enter ``unique_run_second`` from ``count`` threads at once; (second inside, left) each."""
    start, seen = threading.Barrier(count), []

    def run():
        start.wait()
        with unique_run_second(str(work_dir)):
            inside = time.time()
        seen.append((int(inside), time.time()))

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return sorted(seen)


def test_runs_in_one_work_dir_get_different_seconds(tmp_path, monkeypatch):
    for name in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):
        monkeypatch.delenv(name, raising=False)
    (first, first_left), (second, _) = _enter_together(tmp_path / 'work')
    assert second > first  # the timestamp folders mmengine names differ
    assert int(first_left) > first  # leaving waits for the second to end
    assert os.listdir(tmp_path / 'work') == []  # no lock file is left


def test_other_ranks_do_not_lock(tmp_path, monkeypatch):
    monkeypatch.setenv('RANK', '1')
    assert launcher_rank() == 1
    before = time.time()
    _enter_together(tmp_path / 'work')
    assert time.time() - before < 0.5  # neither waited (rank 0 alone picks the timestamp)
    monkeypatch.delenv('RANK')
    monkeypatch.setenv('SLURM_PROCID', '3')
    assert launcher_rank() == 3
