# Copyright (c) finers_mm contributors. All rights reserved.
"""One run folder per run: two runs started in the same second with one ``work_dir`` would share
mmengine's ``work_dir/<YYYYmmdd_HHMMSS>`` folder (its log, config copy and metrics JSON), and one
run's metrics would be lost without a word.

mmengine names the folder by the second its Runner is built in. :func:`unique_run_second` holds an
exclusive lock on ``work_dir`` while the Runner is built, and keeps it until that second is over:
the next run in the same ``work_dir`` builds its Runner, and names its folder, in a later second.
"""
import contextlib
import fcntl
import os
import time
from typing import Iterator

#: environment variables that give a process's rank before torch.distributed is set up
RANK_VARIABLES = ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK')


def launcher_rank() -> int:
    """This process's global rank as its launcher set it (torchrun, slurm, mpi); 0 otherwise."""
    for name in RANK_VARIABLES:
        if os.environ.get(name, '').isdigit():
            return int(os.environ[name])
    return 0


@contextlib.contextmanager
def unique_run_second(work_dir: str) -> Iterator[None]:
    """Build a Runner inside this block: no other run using ``work_dir`` gets the same second.

    Only rank 0 locks (it alone picks the timestamp, which mmengine broadcasts to the other ranks;
    a lock on every rank would stall them in that broadcast). The lock is ``flock`` on the folder
    itself (no lock file is left), released by the system if the process dies. Leaving the block
    waits for the current second to end: at most one second per run.

    Args:
        work_dir (str): the run's ``work_dir`` (created if needed).

    Yields:
        None
    """
    if launcher_rank() != 0:
        yield
        return
    os.makedirs(work_dir, exist_ok=True)
    fd = os.open(work_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
        second = int(time.time())
        while int(time.time()) == second:
            time.sleep(max(second + 1 - time.time(), 0.005))
    finally:
        os.close(fd)  # releases the lock
