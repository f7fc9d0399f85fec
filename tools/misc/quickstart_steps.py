# Copyright (c) finers_mm contributors. All rights reserved.
"""The quick start's step runner: each step a subprocess with its own log, reused when done before.

A step runs ``python COMMAND...`` (this interpreter), its output (stdout and stderr) going to a log
file; the lines that match the step's ``progress`` pattern are printed as they come.

:meth:`Steps.run` runs a step that owns a folder: its log is ``FOLDER/quickstart_step.log`` and its
stamp ``FOLDER/.quickstart_done.json``, written last (atomically), holds the digest of its command
and of the stamps of the steps it depends on. A later run with the same digest reuses the folder;
otherwise the folder is emptied and the step runs again (``force``: every step). A failed step
stops the quick start with its log's tail and leaves no stamp, so it is never reused.

:meth:`Steps.run_always` runs a step whose outputs lie beside other steps' (the demo writes into
the output folder): it runs every time, removes nothing, writes no stamp and prints its own output.

:func:`run_parallel` runs independent chains of steps side by side (a thread each; every step is
a process of its own).

Each step is a separate process because mmengine keeps process-wide singletons by name (the
``visualizer`` of the configs, message hubs, loggers): a second runner in the same process would
get the first run's visualizer and write its scalars into the first run's folder.
"""
import hashlib
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

from finers_mm.utils.fileio import write_atomic

#: a finished step's stamp, in its folder
STAMP = '.quickstart_done.json'
#: a step's log, in its folder
LOG = 'quickstart_step.log'
#: how much of a failed step's log the error shows
TAIL_CHARS = 4000

T = TypeVar('T')


def step_env() -> Dict[str, str]:
    """The environment of the steps: offline, unbuffered, one intra-op thread (unless set).

    One thread is much faster for the tiny models than several on a busy machine, and lets the
    two stages train side by side on one core each.
    """
    env = dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', PYTHONUNBUFFERED='1')
    for name in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
        env.setdefault(name, '1')
    return env


def relative(path: str) -> str:
    """``path`` relative to the current folder when below it, else as given (for printing)."""
    rel = osp.relpath(path)
    return path if rel.startswith('..') else rel


class Steps:
    """Runs the steps of one quick start: numbering, subprocesses, logs, stamps and timings.

    Args:
        total (int): the number of steps, for the ``[i/total]`` headers.
        force (bool): run every step even when its stamp says it is done. Defaults to False.
        cwd (str, optional): the folder the steps run in; None: the current one.
    """

    def __init__(self, total: int, force: bool = False, cwd: Optional[str] = None) -> None:
        self.total = total
        self.force = force
        self.cwd = cwd
        self.started = 0
        self.lock = threading.Lock()  # the chains of run_parallel share the counter and digests
        #: seconds each step took (0 when reused), by name
        self.timings: Dict[str, float] = {}
        #: each step's digest (command and dependencies), by name
        self.digests: Dict[str, str] = {}
        self.env = step_env()

    def run(self, name: str, title: str, folder: str, command: List[str],
            depends: Sequence[str] = (), progress: Optional[re.Pattern] = None) -> bool:
        """Run a step unless ``folder`` holds the stamp of the same command and dependencies.

        Args:
            name (str): the step's name (what ``depends`` of later steps names).
            title (str): what the printed header says.
            folder (str): the step's own folder: emptied before it runs, its log and stamp.
            command (list[str]): the arguments after ``python`` (a script and its options).
            depends (Sequence[str]): names of steps that ran before whose outputs it reads.
            progress (re.Pattern, optional): output lines to print (the match) while it runs.

        Returns:
            bool: whether it ran (False: reused).

        Raises:
            SystemExit: the command failed; the message holds the end of its log.
        """
        header, key, digest = self._start(name, title, command, depends)
        stamp_file = osp.join(folder, STAMP)
        if not self.force and _read_stamp(stamp_file).get('digest') == digest:
            self.timings[name] = 0.0
            print(f'{header}: done before, reusing {relative(folder)}', flush=True)
            return False
        print(f'{header} ...', flush=True)
        if osp.isdir(folder):
            shutil.rmtree(folder)
        os.makedirs(folder)
        log_file = osp.join(folder, LOG)

        def show(line: str) -> Optional[str]:
            match = progress.search(line) if progress else None
            return f'    {name}: {match.group(0).strip()}' if match else None

        seconds = self._execute(header, command, log_file, show, stderr_to_log=False)
        self.timings[name] = seconds
        write_atomic(stamp_file, json.dumps(dict(digest=digest, key=key, seconds=seconds),
                                            indent=2))
        print(f'{header}: done in {seconds:.0f} s (log: {relative(log_file)})', flush=True)
        return True

    def run_always(self, name: str, title: str, log_file: str, command: List[str]) -> float:
        """Run a step every time, printing what it prints (its stdout) as it comes.

        Args:
            name (str): the step's name.
            title (str): what the printed header says.
            log_file (str): where its stdout and stderr go (replaced).
            command (list[str]): the arguments after ``python``.

        Returns:
            float: the seconds it took.

        Raises:
            SystemExit: the command failed; the message holds the end of its log.
        """
        header, _, _ = self._start(name, title, command, ())
        print(f'{header} ...', flush=True)
        os.makedirs(osp.dirname(osp.abspath(log_file)), exist_ok=True)
        if osp.exists(log_file):
            os.remove(log_file)
        seconds = self._execute(header, command, log_file, lambda line: line.rstrip('\n'),
                                stderr_to_log=True)
        self.timings[name] = seconds
        return seconds

    def _start(self, name: str, title: str, command: List[str],
               depends: Sequence[str]) -> Tuple[str, dict, str]:
        """Number the step and record its digest: ``(header, key, digest)``, the key being what
        the digest is of (the command and the digests of the steps it depends on)."""
        with self.lock:
            self.started += 1
            key = dict(command=list(command), depends=[self.digests[d] for d in depends])
            digest = hashlib.sha1(json.dumps(key).encode()).hexdigest()
            self.digests[name] = digest
            return f'[{self.started}/{self.total}] {title}', key, digest

    def _execute(self, header: str, command: List[str], log_file: str,
                 show: Callable[[str], Optional[str]], stderr_to_log: bool) -> float:
        """Run the command into ``log_file``, printing ``show(line)`` of each stdout line that
        gives one; the seconds it took."""
        start = time.perf_counter()
        # 'a': with stderr_to_log the child appends its stderr to the same file
        with open(log_file, 'a', encoding='utf-8') as log:
            process = subprocess.Popen(
                [sys.executable, *command], cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
                stderr=log if stderr_to_log else subprocess.STDOUT, text=True, errors='replace')
            for line in process.stdout:
                log.write(line)
                log.flush()
                shown = show(line)
                if shown is not None:
                    print(shown, flush=True)
            returncode = process.wait()
        seconds = time.perf_counter() - start
        if returncode != 0:
            with open(log_file, encoding='utf-8', errors='replace') as f:
                tail = f.read()[-TAIL_CHARS:]
            raise SystemExit(f'{header} FAILED (exit code {returncode}); the end of '
                             f'{log_file}:\n{tail}')
        return seconds


def run_parallel(tasks: Dict[str, Callable[[], T]], jobs: int) -> Dict[str, T]:
    """Run independent chains of steps side by side, at most ``jobs`` at a time.

    Args:
        tasks (dict[str, Callable]): each chain, a function of no arguments, by name.
        jobs (int): how many run at once (1: one after the other, in the order given).

    Returns:
        dict[str, Any]: each chain's result, by name.

    Raises:
        BaseException: the error of the first chain (in the order given) that failed, once every
            chain has ended.
    """
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {name: pool.submit(task) for name, task in tasks.items()}
    errors = [future.exception() for future in futures.values()]
    for error in errors:
        if error is not None:
            raise error
    return {name: future.result() for name, future in futures.items()}


def _read_stamp(path: str) -> dict:
    """A stamp's content; ``{}`` when missing or broken (the step then runs again)."""
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}
