# Copyright (c) finers_mm contributors. All rights reserved.
"""The quick start's step runner (tools/misc/quickstart_steps.py): stamps and reuse, --force,
failures, progress lines, the demo-like steps that run every time, and chains side by side. The
steps are ``python -c`` one-liners: no models."""
import os
import os.path as osp
import re
import threading
import time

import pytest

from finers_mm.testing.tools import load_tool

WRITE = "import pathlib, sys; pathlib.Path(sys.argv[1], 'out.txt').write_text(sys.argv[2])"


@pytest.fixture(scope='module')
def steps_module():
    return load_tool('misc', 'quickstart_steps.py')


def test_a_step_reruns_when_its_command_or_a_dependency_changes(steps_module, tmp_path):
    steps = steps_module.Steps(total=2, force=False)
    first, second = str(tmp_path / 'first'), str(tmp_path / 'second')
    write = "import pathlib, sys; pathlib.Path(sys.argv[1], 'out.txt').write_text(sys.argv[2])"
    assert steps.run('first', 'first', first, ['-c', write, first, 'a'])
    assert steps.run('second', 'second', second, ['-c', write, second, 'b'], depends=['first'])

    again = steps_module.Steps(total=2, force=False)
    assert not again.run('first', 'first', first, ['-c', write, first, 'a'])
    assert not again.run('second', 'second', second, ['-c', write, second, 'b'],
                         depends=['first'])

    changed = steps_module.Steps(total=2, force=False)
    assert changed.run('first', 'first', first, ['-c', write, first, 'c'])
    # same command, but what it depends on changed: it runs again
    assert changed.run('second', 'second', second, ['-c', write, second, 'b'], depends=['first'])
    assert (tmp_path / 'first' / 'out.txt').read_text() == 'c'


def test_a_failed_step_stops_with_its_log_and_is_never_reused(steps_module, tmp_path):
    steps = steps_module.Steps(total=1, force=False)
    folder = str(tmp_path / 'step')
    fail = "import sys; print('half done'); sys.exit(3)"
    with pytest.raises(SystemExit, match=r'(?s)FAILED \(exit code 3\).*half done'):
        steps.run('step', 'a failing step', folder, ['-c', fail])
    assert not osp.exists(osp.join(folder, '.quickstart_done.json'))
    # the next run starts the step afresh (its folder emptied), not from the broken output
    again = steps_module.Steps(total=1, force=False)
    assert again.run('step', 'a failing step', folder, ['-c', 'print(1)'])
    assert sorted(os.listdir(folder)) == ['.quickstart_done.json', 'quickstart_step.log']


def test_force_reruns_a_done_step_and_headers_count_the_steps(steps_module, tmp_path, capsys):
    folder = str(tmp_path / 'step')
    steps = steps_module.Steps(total=2)
    assert steps.run('step', 'write a', folder, ['-c', WRITE, folder, 'a'])
    assert not steps_module.Steps(total=1).run('step', 'write a', folder,
                                               ['-c', WRITE, folder, 'a'])
    forced = steps_module.Steps(total=1, force=True)
    assert forced.run('step', 'write a', folder, ['-c', WRITE, folder, 'a'])
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == '[1/2] write a ...' and printed[1].startswith('[1/2] write a: done in ')
    assert printed[2].startswith('[1/1] write a: done before, reusing ')
    assert printed[3] == '[1/1] write a ...'
    assert set(forced.timings) == {'step'} and forced.timings['step'] > 0


def test_progress_lines_are_printed_and_everything_is_logged(steps_module, tmp_path, capsys):
    folder = str(tmp_path / 'train')
    script = ("import sys\nfor i in range(1, 5): print(f'Iter(train) [{i}/4] loss: {i / 10}')\n"
              "print('a warning', file=sys.stderr)")
    steps_module.Steps(total=1).run('train', 'training', folder, ['-c', script],
                                    progress=re.compile(r'\[(2|4)/4\].*'))
    printed = capsys.readouterr().out
    assert '    train: [2/4] loss: 0.2\n    train: [4/4] loss: 0.4\n' in printed
    assert '[1/4]' not in printed and 'a warning' not in printed
    with open(osp.join(folder, 'quickstart_step.log')) as f:
        log = f.read()
    assert log.count('Iter(train)') == 4 and 'a warning' in log


def test_a_step_run_always_prints_its_output_and_keeps_its_folder(steps_module, tmp_path,
                                                                  capsys):
    (tmp_path / 'earlier.txt').write_text('kept')
    log_file = str(tmp_path / 'demo.log')
    # one write per line: the child's stderr goes straight into the log beside the stdout lines
    # the step copies there, and print() writes a line's text and its newline apart (stderr is
    # written through), so a print to stderr could be split by a stdout line (seen once in CI)
    script = "import sys; print('answer   : 42'); sys.stderr.write('loading\\n')"
    for _ in range(2):  # runs every time, the log replaced
        steps = steps_module.Steps(total=1)
        assert steps.run_always('demo', 'the demo', log_file, ['-c', script]) > 0
        assert capsys.readouterr().out == '[1/1] the demo ...\nanswer   : 42\n'
    with open(log_file) as f:
        assert sorted(f.read().splitlines()) == ['answer   : 42', 'loading']
    assert sorted(os.listdir(tmp_path)) == ['demo.log', 'earlier.txt']  # no stamp, nothing removed
    assert set(steps.timings) == {'demo'}

    with pytest.raises(SystemExit, match=r'(?s)the demo FAILED \(exit code 1\).*Traceback'):
        steps.run_always('demo', 'the demo', log_file, ['-c', 'raise ValueError'])


def test_chains_run_side_by_side_and_the_first_failure_is_raised(steps_module):
    both = threading.Barrier(2, timeout=30)  # each chain waits for the other: both must run

    def chain(value):
        both.wait()
        return value

    assert steps_module.run_parallel(dict(a=lambda: chain(1), b=lambda: chain(2)), jobs=2) == dict(
        a=1, b=2)

    ended = []

    def fails(message, delay):
        time.sleep(delay)
        ended.append(message)
        raise SystemExit(message)

    with pytest.raises(SystemExit, match='first'):  # the first in the order given, not in time
        steps_module.run_parallel(dict(ok=lambda: 'ok', first=lambda: fails('first', 0.5),
                                       second=lambda: fails('second', 0.0)), jobs=2)
    assert ended == ['second', 'first']  # every chain ended before the error was raised
