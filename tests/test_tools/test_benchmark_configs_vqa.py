# Copyright (c) finers_mm contributors. All rights reserved.
"""``tools/test.py`` on each VQA benchmark's tiny config, with fixtures in the published layouts
and a scripted explorer answering a known set of questions right (the real prompts, parser,
chain and metric): the metrics equal hand-computed values, HR-Bench's cycle rule included. The
7B configs are the paper's zero-shot setting (GSE answers) on the same datasets and metrics."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

import finers_mm.testing.vqa_benchmarks  # noqa: F401  (registers AnswerSheetQwen25VLAdapter)
from finers_mm.registry import DATASETS
from finers_mm.testing import REPO_ROOT
from finers_mm.testing.tools import load_tool
from finers_mm.testing.vqa_benchmarks import (write_hrbench_parquet, write_hrbench_tsv,
                                              write_mme_realworld, write_vstar)

CONFIGS = osp.join(REPO_ROOT, 'configs', 'benchmarks')
BENCHMARKS = {  # name -> (dataset type, metric type)
    'vstar': ('VStarDataset', 'VStarMetric'),
    'hrbench4k': ('HRBenchDataset', 'HRBenchMetric'),
    'hrbench8k': ('HRBenchDataset', 'HRBenchMetric'),
    'mme_realworld': ('MMERealWorldDataset', 'MMERealWorldMetric'),
}


def _wrong(info):
    return next(letter for letter in info['options'] if letter != info['answer'])


def _sheet(dataset_cfg, right):
    """question -> response: the correct letter for the questions in ``right`` (by index), a
    wrong letter or two letters (invalid: wrong) otherwise."""
    init_default_scope('finers_mm')
    dataset = DATASETS.build(dict(dataset_cfg, pipeline=[]))
    sheet = {}
    for k in range(len(dataset)):
        info = dataset.get_data_info(k)
        if k in right:
            sheet[info['question']] = f"The answer is {info['answer']}."
        else:
            sheet[info['question']] = _wrong(info) if k % 2 else 'A or B'
    return sheet


def _vstar(root):
    questions = [dict(subset=subset, name=f'sa_{k}', question=f'What colour is thing {k}?',
                      options=[f'right{k}', f'wrong{k}', f'other{k}', f'none{k}'])
                 for k, subset in enumerate(['direct_attributes'] * 3 + ['relative_position'] * 2)]
    write_vstar(root, questions)
    options = [f'test_dataloader.dataset.data_root={root}']
    # direct_attributes 2 of 3 right, relative_position 1 of 2
    return options, {0, 2, 3}, dict(accuracy=60.0, accuracy_direct_attributes=200 / 3,
                                    accuracy_relative_position=50.0)


def _hrbench_rows():
    # cycles: c1 2 rows (both right), c2 2 rows (1 right), c3 4 rows (1 right)
    cycles = ['c1', 'c1', 'c2', 'c2', 'c3', 'c3', 'c3', 'c3']
    categories = ['FSP', 'FCP', 'FSP', 'FCP', 'FSP', 'FSP', 'FCP', 'FCP']
    return [dict(question=f'Question {k}?', A=f'a{k}', B=f'b{k}', C=f'c{k}', D=f'd{k}',
                 answer='ABCD'[k % 4], category=categories[k], cycle_category=cycles[k])
            for k in range(8)]


HRBENCH_EXPECTED = dict(accuracy=175 / 3, accuracy_FSP=250 / 3, accuracy_FCP=100 / 3,
                        accuracy_cycle_c1=100.0, accuracy_cycle_c2=50.0, accuracy_cycle_c3=25.0)


def _hrbench4k(root):
    os.makedirs(root)
    path = write_hrbench_tsv(osp.join(root, 'hr_bench_4k.tsv'), _hrbench_rows())
    return [f'test_dataloader.dataset.ann_file={path}'], {0, 1, 2, 4}, HRBENCH_EXPECTED


def _hrbench8k(root):  # the parquet variant
    os.makedirs(root)
    path = write_hrbench_parquet(osp.join(root, 'hrbench_8k.parquet'), _hrbench_rows())
    return [f'test_dataloader.dataset.ann_file={path}'], {0, 1, 2, 4}, HRBENCH_EXPECTED


def _mme_realworld(root):
    records = [{'Question_id': f'q{k}', 'Image': f'images/{k}.png', 'Text': f'What is at {k}?',
                'Answer choices': [f'({c}) choice {c}{k}' for c in 'ABCDE'],
                'Ground truth': 'EDCBA'[k], 'Task': task, 'Subtask': subtask, 'Category': 'color'}
               for k, (task, subtask) in enumerate([('Perception', 'Remote Sensing')] * 2
                                                   + [('Perception', 'Monitoring'),
                                                      ('Reasoning', 'Monitoring')])]
    write_mme_realworld(root, records)
    return [f'test_dataloader.dataset.data_root={root}'], {0, 2}, {
        'accuracy': 50.0, 'accuracy_Perception': 200 / 3, 'accuracy_Reasoning': 0.0,
        'accuracy_Perception/Remote_Sensing': 50.0, 'accuracy_Perception/Monitoring': 100.0}


FIXTURES = dict(vstar=_vstar, hrbench4k=_hrbench4k, hrbench8k=_hrbench8k,
                mme_realworld=_mme_realworld)


def _chain_options(tiny_models, sheet_file):
    options = [f"model.mask_head.config={tiny_models['sam_config']}",
               f"model.mask_head.checkpoint={tiny_models['sam']}"]
    for role, stage in (('explorer', 'explorer'), ('refiner', 'refiner')):
        options += [f"model.{stage}.vlm.pretrained={tiny_models['qwen2_5_vl']}",
                    f'model.{stage}.vlm.type=AnswerSheetQwen25VLAdapter',
                    f'model.{stage}.vlm.answers={sheet_file}', f'model.{stage}.vlm.role={role}']
    return options


def _prepare(name, tiny_models, tmp_path):
    data_options, right, expected = FIXTURES[name](str(tmp_path / name))
    cfg = Config.fromfile(osp.join(CONFIGS, f'{name}_finers_tiny.py'))
    cfg.merge_from_dict(dict(option.split('=', 1) for option in data_options))
    sheet_file = tmp_path / 'sheet.json'
    sheet_file.write_text(json.dumps(_sheet(cfg.test_dataloader.dataset.to_dict(), right)))
    return data_options + _chain_options(tiny_models, sheet_file), expected


# 8-13 s each on 2 loaded cores: V* stays in the quick suite, the others are slow
@pytest.mark.parametrize('name', [
    'vstar', *(pytest.param(n, marks=pytest.mark.slow) for n in ('hrbench4k', 'hrbench8k',
                                                                 'mme_realworld'))])
def test_tools_test_on_the_tiny_config_scores_as_the_benchmark(name, tiny_models, tmp_path):
    options, expected = _prepare(name, tiny_models, tmp_path)
    metrics = load_tool('test.py').main([
        osp.join(CONFIGS, f'{name}_finers_tiny.py'), '--work-dir', str(tmp_path / 'work'),
        '--cfg-options', *options])
    prefix = BENCHMARKS[name][1].replace('Metric', '').lower().replace('mmerealworld',
                                                                       'mme_realworld')
    for key, value in expected.items():
        assert metrics[f'{prefix}/{key}'] == pytest.approx(value, abs=0.01), key
    assert metrics[f'{prefix}/invalid_rate'] == 0.0  # the scripted chain always answers


@pytest.mark.parametrize('name', sorted(BENCHMARKS))
def test_7b_configs_are_the_zero_shot_chain_on_the_benchmark(name):
    cfg = Config.fromfile(osp.join(CONFIGS, f'{name}_finers_qwen7b.py'))
    tiny = Config.fromfile(osp.join(CONFIGS, f'{name}_finers_tiny.py'))
    dataset, metric = BENCHMARKS[name]
    for config in (cfg, tiny):
        assert config.test_dataloader.dataset.type == dataset
        assert config.test_evaluator.type == metric and config.model.qa_stage == 'explorer'
        assert [t['type'] for t in config.test_dataloader.dataset.pipeline] == [
            'LoadFineRSImage', 'ExplorerView', 'PackFineRSInputs']
        assert config.val_dataloader.dataset.type == dataset
    assert cfg.protocol == 'authors'  # the paper's evaluation of the released weights
    assert cfg.model.explorer.vlm.pretrained == 'checkpoints/finers_gse_qwen7b'


@pytest.mark.slow
def test_dist_test_sh_runs_the_hrbench_config_on_two_processes(tiny_models, tmp_path):
    """``tools/dist_test.sh`` (torchrun, gloo, 2 CPU processes): the cycle metric over both
    ranks' samples equals the single-process value."""
    options, expected = _prepare('hrbench4k', tiny_models, tmp_path)
    child = tmp_path / 'hrbench4k_child.py'
    child.write_text(f"_base_ = '{osp.join(CONFIGS, 'hrbench4k_finers_tiny.py')}'\n"
                     "custom_imports = dict(imports=['finers_mm', "
                     "'finers_mm.testing.vqa_benchmarks'], allow_failed_imports=False)\n"
                     "env_cfg = dict(dist_cfg=dict(backend='gloo'))\n")
    result = subprocess.run(
        ['bash', osp.join(REPO_ROOT, 'tools', 'dist_test.sh'), str(child), 'none', '2',
         '--work-dir', str(tmp_path / 'work'), '--cfg-options', *options],
        cwd=REPO_ROOT,
        env=dict(os.environ, OMP_NUM_THREADS='1', PORT='29613', PYTHON=sys.executable),
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"hrbench/accuracy: {expected['accuracy']:.4f}" in result.stdout + result.stderr
