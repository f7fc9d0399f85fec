# Copyright (c) finers_mm contributors. All rights reserved.
"""Argument handling of tools/train.py, tools/test.py and the dist / slurm launch scripts."""
import json
import os
import os.path as osp
import pickle
import subprocess
import sys
import textwrap

import pytest

from finers_mm.testing import REPO_ROOT
from finers_mm.testing.tools import load_tool
from finers_mm.testing.toys import toy_test_config


@pytest.fixture(scope='module')
def train_tool():
    return load_tool('train.py')


@pytest.fixture(scope='module')
def test_tool():
    return load_tool('test.py')


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / 'toy_config.py'
    path.write_text(textwrap.dedent(f"""
        _base_ = ['{REPO_ROOT}/configs/_base_/default_runtime.py',
                  '{REPO_ROOT}/configs/_base_/schedules/sgd_100it.py']
        model = dict(type='ToyModel')
        """))
    return str(path)


def test_train_work_dir_precedence(train_tool, config_file, tmp_path):
    cfg = train_tool.build_train_config(train_tool.parse_args([config_file]))
    assert cfg.work_dir == osp.join('./work_dirs', 'toy_config')
    cfg = train_tool.build_train_config(
        train_tool.parse_args([config_file, '--cfg-options', 'work_dir=from_options']))
    assert cfg.work_dir == 'from_options'
    cfg = train_tool.build_train_config(
        train_tool.parse_args([config_file, '--work-dir', str(tmp_path / 'cli'),
                               '--cfg-options', 'work_dir=from_options']))
    assert cfg.work_dir == str(tmp_path / 'cli')


def test_train_resume_amp_launcher_and_options(train_tool, config_file):
    args = train_tool.parse_args([config_file, '--resume'])
    cfg = train_tool.build_train_config(args)
    assert cfg.resume is True and cfg.load_from is None

    cfg = train_tool.build_train_config(train_tool.parse_args([config_file, '--resume', 'a.pth']))
    assert cfg.resume is True and cfg.load_from == 'a.pth'

    cfg = train_tool.build_train_config(train_tool.parse_args([config_file]))
    assert cfg.resume is False and cfg.optim_wrapper.type == 'OptimWrapper'

    cfg = train_tool.build_train_config(train_tool.parse_args(
        [config_file, '--amp', '--launcher', 'pytorch', '--cfg-options',
         'train_cfg.max_iters=7', 'optim_wrapper.optimizer.lr=0.5']))
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    assert cfg.launcher == 'pytorch'
    assert cfg.train_cfg.max_iters == 7
    assert cfg.optim_wrapper.optimizer.lr == 0.5


def test_train_auto_scale_lr(train_tool, config_file):
    cfg = train_tool.build_train_config(train_tool.parse_args([config_file, '--auto-scale-lr']))
    assert cfg.auto_scale_lr.enable is True and cfg.auto_scale_lr.base_batch_size == 16
    with pytest.raises(ValueError, match='base_batch_size'):
        train_tool.build_train_config(train_tool.parse_args(
            [config_file, '--auto-scale-lr', '--cfg-options', 'auto_scale_lr=None']))


def test_train_rejects_a_missing_config_and_unknown_launcher(train_tool, tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.py'):
        train_tool.build_train_config(train_tool.parse_args([str(tmp_path / 'nope.py')]))
    with pytest.raises(SystemExit):
        train_tool.parse_args(['x.py', '--launcher', 'kubernetes'])


def test_test_tool_checkpoint_out_and_show_dir(test_tool, config_file, tmp_path):
    cfg = test_tool.build_test_config(test_tool.parse_args(
        [config_file, 'model.pth', '--work-dir', str(tmp_path), '--show-dir', 'vis']))
    assert cfg.load_from == 'model.pth'
    assert cfg.work_dir == str(tmp_path)
    assert cfg.default_hooks.visualization.draw is True
    assert cfg.default_hooks.visualization.test_out_dir == 'vis'

    for no_checkpoint in ([config_file], [config_file, 'none']):
        assert test_tool.build_test_config(test_tool.parse_args(no_checkpoint)).load_from is None

    args = test_tool.parse_args([config_file, 'model.pth', '--out', 'preds.pkl'])
    assert args.out == 'preds.pkl'
    with pytest.raises(SystemExit):
        test_tool.parse_args([config_file, 'model.pth', '--out', 'preds.json'])


def _fake_executable(directory, name: str) -> str:
    """An executable that writes its arguments, one a line, to ARGS_FILE."""
    path = osp.join(directory, name)
    with open(path, 'w') as f:
        f.write('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$ARGS_FILE"\n')
    os.chmod(path, 0o755)
    return path


def _run_script(script: str, args, tmp_path, **env):
    args_file = tmp_path / 'args.txt'
    full_env = dict(os.environ, ARGS_FILE=str(args_file), **env)
    subprocess.run(['bash', osp.join(REPO_ROOT, 'tools', script), *args], check=True, env=full_env)
    return args_file.read_text().splitlines()


def test_dist_train_uses_torchrun_with_the_pytorch_launcher(tmp_path):
    fake_python = _fake_executable(str(tmp_path), 'python')
    argv = _run_script('dist_train.sh', ['cfg.py', '8', '--amp'], tmp_path,
                       PYTHON=fake_python, PORT='29999')
    assert argv[:2] == ['-m', 'torch.distributed.run']
    assert '--nproc_per_node=8' in argv and '--master_port=29999' in argv
    script = argv.index(osp.join(REPO_ROOT, 'tools', 'train.py'))
    assert argv[script + 1:] == ['cfg.py', '--amp', '--launcher', 'pytorch']


def test_dist_test_passes_config_checkpoint_and_flags(tmp_path):
    fake_python = _fake_executable(str(tmp_path), 'python')
    argv = _run_script('dist_test.sh', ['cfg.py', 'ckpt.pth', '2', '--out', 'r.pkl'], tmp_path,
                       PYTHON=fake_python)
    assert '--nproc_per_node=2' in argv
    script = argv.index(osp.join(REPO_ROOT, 'tools', 'test.py'))
    assert argv[script + 1:] == ['cfg.py', 'ckpt.pth', '--out', 'r.pkl', '--launcher', 'pytorch']


def test_slurm_scripts_call_srun(tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    _fake_executable(str(bin_dir), 'srun')
    path = f'{bin_dir}:{os.environ["PATH"]}'
    argv = _run_script('slurm_train.sh', ['gpu', 'job', 'cfg.py', 'wd', '--amp'], tmp_path,
                       PATH=path, GPUS='16')
    assert argv[:2] == ['-p', 'gpu'] and '--ntasks=16' in argv and '--job-name=job' in argv
    assert argv[-4:] == ['cfg.py', '--work-dir=wd', '--amp', '--launcher=slurm']
    argv = _run_script('slurm_test.sh', ['gpu', 'job', 'cfg.py', 'ckpt.pth'], tmp_path, PATH=path)
    assert argv[-3:] == ['cfg.py', 'ckpt.pth', '--launcher=slurm']
    assert osp.join(REPO_ROOT, 'tools', 'test.py') in argv


def _metrics_files(work_dir) -> list:
    return [osp.join(root, name) for root, _, names in os.walk(work_dir)
            for name in names if name == osp.basename(root) + '.json']


def test_test_metrics_json_keeps_integer_metrics(test_tool, tmp_path):
    """tools/test.py's metrics JSON: an int metric (finers/num_samples) is a number, not null."""
    config = toy_test_config(str(tmp_path))
    test_tool.main([config, '--work-dir', str(tmp_path / 'work')])
    [path] = _metrics_files(tmp_path / 'work')
    with open(path) as f:
        metrics = json.load(f)
    assert metrics['toy/num_samples'] == 5 and isinstance(metrics['toy/num_samples'], int)
    assert metrics['toy/mean'] == pytest.approx(2.0)


def test_test_out_is_written_after_the_metrics_are_saved(test_tool, tmp_path, monkeypatch):
    config = toy_test_config(str(tmp_path))
    out = tmp_path / 'preds' / 'preds.pkl'
    metrics = test_tool.main([config, '--work-dir', str(tmp_path / 'work'), '--out', str(out)])
    assert metrics['toy/num_samples'] == 5
    with open(out, 'rb') as f:
        assert [sample['value'] for sample in pickle.load(f)] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert os.listdir(out.parent) == ['preds.pkl']

    # the write fails (a full disk): the metrics are already logged and saved, the old file kept
    def full_disk(path, data):
        assert _metrics_files(tmp_path / 'again'), 'the metrics must be saved before --out'
        raise OSError(28, f'No space left on device: could not write {path}')

    monkeypatch.setattr(test_tool, 'write_atomic', full_disk)
    old = out.read_bytes()
    with pytest.raises(OSError, match='preds.pkl'):
        test_tool.main([config, '--work-dir', str(tmp_path / 'again'), '--out', str(out)])
    assert out.read_bytes() == old
    [saved] = _metrics_files(tmp_path / 'again')
    with open(saved) as f:
        assert json.load(f)['toy/num_samples'] == 5


def test_test_out_that_cannot_be_written_fails_before_the_run(test_tool, config_file, tmp_path):
    with pytest.raises(IsADirectoryError, match=f'--out {tmp_path}/x.pkl is a folder'):
        (tmp_path / 'x.pkl').mkdir()
        test_tool.main([config_file, '--work-dir', str(tmp_path / 'work'),
                        '--out', str(tmp_path / 'x.pkl')])
    assert not (tmp_path / 'work').exists()  # refused before any runner was built


BARRIER = '''
import os, time
# both runs wait for each other, then build their runners at the start of the same second
marker = os.path.join(os.environ['BARRIER_DIR'], str(os.getpid()))
open(marker, 'w').close()
while len(os.listdir(os.environ['BARRIER_DIR'])) < 2:
    time.sleep(0.01)
time.sleep(1.02 - time.time() % 1)
'''


@pytest.mark.slow
def test_two_runs_started_in_the_same_second_keep_their_own_folders(tmp_path):
    """mmengine names the run folder by the second: both runs' metrics must survive."""
    (tmp_path / 'same_second_barrier.py').write_text(BARRIER)
    (tmp_path / 'barrier').mkdir()
    config = toy_test_config(str(tmp_path), imports=['same_second_barrier'])
    env = dict(os.environ, PYTHONPATH=f'{tmp_path}:{os.environ.get("PYTHONPATH", "")}',
               BARRIER_DIR=str(tmp_path / 'barrier'))
    work_dir = tmp_path / 'work'
    runs = [subprocess.Popen([sys.executable, osp.join(REPO_ROOT, 'tools', 'test.py'),
                              config, '--work-dir', str(work_dir)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    for run in runs:
        output = run.communicate(timeout=300)[0].decode()
        assert run.returncode == 0, output[-3000:]
    folders = sorted(name for name in os.listdir(work_dir) if osp.isdir(work_dir / name))
    assert len(folders) == 2, folders
    assert len(_metrics_files(work_dir)) == 2
