# Copyright (c) finers_mm contributors. All rights reserved.
"""tools/search_best_region.py and its resumable job (tools/region_search_job.py): state shards,
resuming, the output file, the config, the checkpoint and the launches.

The oracle refiner of :mod:`finers_mm.testing.region_search` (the real LocalRefiner whose adapter
answers a box that misses the GT by a shift growing with the distance between the window's centre
and a point near the GT) makes some candidate windows clearly better than others. The subprocess
runs import that module (``custom_imports``) to get the same classes.
"""
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

from finers_mm.datasets import FineRS4kDataset
from finers_mm.registry import MODELS
from finers_mm.rl.region_search import CandidateRegions, SearchResult
from finers_mm.structures import box_contains
from finers_mm.testing import REPO_ROOT
from finers_mm.testing.region_search import (BUNDLED_ANN, BUNDLED_IMAGES, CROP_MIN_SIDE,
                                             EXPLORER_SIZE, REGION_SIZE, WindowAwareRefiner,
                                             bundled_infos, oracle_box)
from finers_mm.testing.tools import load_tool

TOOL = osp.join(REPO_ROOT, 'tools', 'search_best_region.py')
JOB = osp.join(REPO_ROOT, 'tools', 'region_search_job.py')
TINY_CONFIG = osp.join(REPO_ROOT, 'configs', 'finers', 'region_search_tiny.py')
SUBPROCESS_ENV = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='', HF_HUB_OFFLINE='1',
                      TRANSFORMERS_OFFLINE='1')


def shifted_box_iou(gt_bbox, box) -> float:
    """IoU of two boxes of the same size (written out, independent of the tool's IoU)."""
    width, height = gt_bbox[2] - gt_bbox[0], gt_bbox[3] - gt_bbox[1]
    inter = (max(width - abs(box[0] - gt_bbox[0]), 0) * max(height - abs(box[1] - gt_bbox[1]), 0))
    return inter / (2 * width * height - inter)


def _load_tool():
    return load_tool('search_best_region.py')


@pytest.fixture(scope='module')
def tool():
    return _load_tool()


@pytest.fixture(scope='module')
def job():
    return load_tool('region_search_job.py')


def _oracle_config(directory, tiny_models, subprocess_imports=False, **region_search) -> str:
    """A config: the tiny one with the scripted refiner and ``region_search`` overrides."""
    imports = "custom_imports = dict(imports=['finers_mm', 'finers_mm.testing.region_search'])"
    path = osp.join(str(directory), 'oracle_config.py')
    with open(path, 'w') as f:
        f.write(textwrap.dedent(f"""
            _base_ = ['{TINY_CONFIG}']
            model = dict(type='WindowAwareRefiner',
                         vlm=dict(type='WindowScriptedAdapter',
                                  pretrained='{tiny_models['qwen2_5_vl']}'))
            region_search = dict({', '.join(f'{k}={v!r}' for k, v in region_search.items())})
            {imports if subprocess_imports else ''}
            """))
    return path


ORACLE_SEARCH = dict(num_candidates=6, batch_size=2, save_interval=2)


def _read(path) -> bytes:
    with open(path, 'rb') as f:
        return f.read()


def _shards(out) -> list:
    return sorted(name for name in os.listdir(osp.dirname(out))
                  if name.startswith(osp.basename(out) + '.partial'))


@pytest.fixture(scope='module')
def reference(tool, tiny_models, tmp_path_factory):
    """One uninterrupted in-process run of the oracle config: (output bytes, summary)."""
    directory = tmp_path_factory.mktemp('reference')
    out = str(directory / 'out.json')
    summary = tool.main([_oracle_config(directory, tiny_models, **ORACLE_SEARCH), 'none',
                         BUNDLED_ANN, '--out', out])
    return _read(out), summary


# ----------------------------------------------------------------------------------------------
# State and output
# ----------------------------------------------------------------------------------------------


def test_state_resumes_only_with_the_same_settings(job, tmp_path):
    out = str(tmp_path / 'out.json')
    settings = dict(candidates=dict(num_candidates=8, seed=0), checkpoint=None)
    state = job.SearchState(out, settings, rank=1)
    state.add(3, SearchResult((1.0, 2.0, 3.0, 4.0), (0.5, 0.7)))
    state.save()
    assert _shards(out) == ['out.json.partial.rank1.json']

    again = job.SearchState(out, dict(settings), rank=0)
    assert again.done == {3: SearchResult((1.0, 2.0, 3.0, 4.0), (0.5, 0.7))} and again.own == {}

    with pytest.raises(job.RegionSearchStateError,
                       match=r'rank1\.json.*other settings.*candidates'):
        job.SearchState(out, dict(settings, candidates=dict(num_candidates=8, seed=1)))
    with open(out + '.partial.rank0.json', 'w') as f:
        f.write('{"format": "finers_mm.region_search.state/v1", "digest"')
    with pytest.raises(job.RegionSearchStateError, match=r'rank0\.json: unreadable'):
        job.SearchState(out, settings)


def test_output_needs_every_record_and_touches_nothing_else(job):
    results = {0: SearchResult((1.0, 2.0, 3.0, 4.0), (0.2, 0.6)),
               2: SearchResult((5.0, 6.0, 7.0, 8.0), (0.5, 0.5))}
    content = dict(info='kept', annotations=[dict(Q='a'), dict(Q='b'), dict(Q='c')])
    with pytest.raises(ValueError, match=r'no result for records \[1\] \(of 3\); rerun'):
        job.add_best_regions(content, results)

    results[1] = SearchResult((0.0, 0.0, 9.0, 9.0), (0.0, 0.0))
    assert job.add_best_regions(content, results) is content
    assert content == dict(info='kept', annotations=[
        dict(Q='a', best_region=[1.0, 2.0, 3.0, 4.0]),
        dict(Q='b', best_region=[0.0, 0.0, 9.0, 9.0]),
        dict(Q='c', best_region=[5.0, 6.0, 7.0, 8.0])])
    assert job.summarize(results) == dict(num_records=3, mean_best_iou=pytest.approx(1.1 / 3),
                                          mean_centred_iou=pytest.approx(0.7 / 3), num_improved=1)
    assert job.summarize({}) == dict(num_records=0, mean_best_iou=0.0, mean_centred_iou=0.0,
                                     num_improved=0)


# ----------------------------------------------------------------------------------------------
# The tool
# ----------------------------------------------------------------------------------------------


def test_tool_writes_the_oracle_best_region_and_keeps_every_other_field(reference, tmp_path):
    data, summary = reference
    written = json.loads(data)['annotations']
    with open(BUNDLED_ANN, encoding='utf-8') as f:
        original = json.load(f)['annotations']
    assert len(written) == len(original)
    for before, after in zip(original, written):
        assert {k: v for k, v in after.items() if k != 'best_region'} == before

    candidates = CandidateRegions(EXPLORER_SIZE, REGION_SIZE, CROP_MIN_SIDE,
                                  ORACLE_SEARCH['num_candidates'], 'random', seed=0)
    best_ious, improved = [], 0
    for info, record in zip(bundled_infos(), written):
        regions, windows = candidates(info['gt_bbox'], (info['width'], info['height']),
                                      info['ann_index'])
        ious = [shifted_box_iou(info['gt_bbox'], oracle_box(info['gt_bbox'], w)) for w in windows]
        best = int(np.argmax(ious))
        assert record['best_region'] == [float(v) for v in regions[best]]
        best_ious.append(ious[best])
        improved += ious[best] > ious[0]
    assert improved >= 3  # the oracle makes the search matter
    assert summary['num_records'] == 12 and summary['num_improved'] == improved
    assert summary['mean_best_iou'] == pytest.approx(np.mean(best_ious), abs=1e-4)

    out = tmp_path / 'out.json'
    out.write_bytes(data)
    dataset = FineRS4kDataset(ann_file=str(out), data_prefix=dict(img=BUNDLED_IMAGES),
                              test_mode=True, pipeline=[])
    for i, record in enumerate(written):
        np.testing.assert_array_equal(dataset.get_data_info(i)['best_region'],
                                      np.float32(record['best_region']))


class Interrupted(Exception):
    """Stands for a killed run."""


_REFINE = WindowAwareRefiner.refine


def _count_refine_calls(monkeypatch, crash_after=None):
    """Count the records of each refine call; raise :class:`Interrupted` on call ``crash_after``."""
    calls = []

    def refine(self, images, windows, queries):
        if crash_after is not None and len(calls) == crash_after:
            raise Interrupted
        calls.append(len({query.question for query in queries}))
        return _REFINE(self, images, windows, queries)

    monkeypatch.setattr(WindowAwareRefiner, 'refine', refine)
    return calls


def test_interrupted_run_resumes_to_the_same_file(tool, reference, tiny_models, tmp_path,
                                                  monkeypatch):
    config = _oracle_config(tmp_path, tiny_models, **ORACLE_SEARCH)
    out = str(tmp_path / 'out.json')
    argv = [config, 'none', BUNDLED_ANN, '--out', out]
    calls = _count_refine_calls(monkeypatch, crash_after=2)
    with pytest.raises(Interrupted):
        tool.main(argv)
    assert not osp.exists(out) and _shards(out) == ['out.json.partial.rank0.json']
    with open(out + '.partial.rank0.json', encoding='utf-8') as f:
        assert sorted(json.load(f)['records']) == ['0', '1', '2', '3']  # saved every 2 records

    with pytest.raises(SystemExit, match=r'rank0\.json: this region-search state was written '
                                         r'with other settings \(differing: candidates\)'):
        tool.main(argv + ['--cfg-options', 'region_search.seed=1'])

    calls = _count_refine_calls(monkeypatch)
    summary = tool.main(argv + ['--batch-size', '3'])
    assert sum(calls) == 8 and len(calls) == 3  # only the 8 records left, 3 per call
    assert _read(out) == reference[0] and summary == reference[1]
    assert _shards(out) == []


def test_output_is_replaced_atomically_and_a_failed_write_resumes(tool, reference, tiny_models,
                                                                   tmp_path, monkeypatch):
    config = _oracle_config(tmp_path, tiny_models, **ORACLE_SEARCH)
    out = tmp_path / 'out.json'
    out.write_text('the previous output')
    replace = os.replace

    def failing_replace(src, dst):
        if osp.abspath(dst) == str(out):
            raise OSError('disk full')
        replace(src, dst)

    monkeypatch.setattr(os, 'replace', failing_replace)
    with pytest.raises(OSError, match='disk full'):
        tool.main([config, 'none', BUNDLED_ANN, '--out', str(out)])
    assert out.read_text() == 'the previous output'
    assert sorted(os.listdir(tmp_path)) == ['oracle_config.py', 'out.json',
                                            'out.json.partial.rank0.json']

    monkeypatch.setattr(os, 'replace', replace)
    calls = _count_refine_calls(monkeypatch)
    tool.main([config, 'none', BUNDLED_ANN, '--out', str(out)])
    assert calls == [] and out.read_bytes() == reference[0]


def test_config_gives_the_refiner_the_frames_and_the_search_settings(tool):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'finers', 'finers_tiny_test.py'))
    assert tool.refiner_config(cfg).type == 'LocalRefiner'  # a detector config: its refiner
    candidates, run = tool.search_settings(cfg)  # no region_search section: the defaults
    assert candidates.settings == dict(explorer_size=[1920, 1080], region_size=256,
                                       crop_min_side=512, num_candidates=8, rule='random', seed=0,
                                       tie_rule='first')
    assert run == tool.RUN_DEFAULTS
    # the authors' protocol: their 4 random windows + the centred one, their tie rule
    cfg.protocol = 'authors'
    candidates, _ = tool.search_settings(cfg)
    assert (candidates.num_candidates, candidates.tie_rule) == (5, 'centred_then_last')
    cfg.region_search = dict(num_candidates=7, tie_rule='first')  # explicit keys win
    candidates, _ = tool.search_settings(cfg)
    assert (candidates.num_candidates, candidates.tie_rule) == (7, 'first')
    cfg.protocol = 'paper'
    with pytest.raises(ValueError, match='unknown protocol'):
        tool.search_settings(cfg)

    cfg = Config.fromfile(TINY_CONFIG)
    assert tool.refiner_config(cfg).type == 'LocalRefiner'
    candidates, run = tool.search_settings(cfg)
    assert candidates.num_candidates == 4 and run['batch_size'] == 4 and run['save_interval'] == 4
    cfg.region_search.radius = 3
    with pytest.raises(ValueError, match=r"unknown region_search keys \['radius'\]"):
        tool.search_settings(cfg)
    cfg.frames = None
    with pytest.raises(ValueError, match='no `frames` dict'):
        tool.search_settings(cfg)


def _tiny_refiner_cfg(tiny_models):
    from mmengine.config import Config
    init_default_scope('finers_mm')
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.model.vlm.pretrained = tiny_models['qwen2_5_vl']
    return cfg


def test_checkpoint_is_loaded_strictly(tool, tiny_models, tmp_path):
    cfg = _tiny_refiner_cfg(tiny_models)
    state_dict = MODELS.build(cfg.model).state_dict()
    name = 'vlm.model.model.language_model.layers.1.mlp.down_proj.weight'
    state_dict[name] = torch.full_like(state_dict[name], 0.25)
    torch.save(dict(state_dict=state_dict, meta=dict()), tmp_path / 'lpr.pth')
    refiner = tool.build_refiner(cfg.model, str(tmp_path / 'lpr.pth'))
    assert torch.all(refiner.state_dict()[name] == 0.25)

    del state_dict[name]
    torch.save(dict(state_dict=state_dict), tmp_path / 'partial.pth')
    with pytest.raises(RuntimeError, match='missing keys'):
        tool.build_refiner(cfg.model, str(tmp_path / 'partial.pth'))


@pytest.mark.slow
def test_cli_end_to_end_with_the_tiny_refiner_and_a_checkpoint(tiny_models, tmp_path):
    cfg = _tiny_refiner_cfg(tiny_models)
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict()), tmp_path / 'lpr.pth')
    out = tmp_path / 'train_best.json'
    result = subprocess.run(
        [sys.executable, TOOL, TINY_CONFIG, str(tmp_path / 'lpr.pth'), BUNDLED_ANN, '--out',
         str(out), '--img-dir', BUNDLED_IMAGES, '--cfg-options',
         f"model.vlm.pretrained={tiny_models['qwen2_5_vl']}"],
        cwd=REPO_ROOT, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'wrote best_region for 12 records' in result.stdout
    assert 'improved on the centred region:' in result.stdout
    dataset = FineRS4kDataset(ann_file=str(out), data_prefix=dict(img=BUNDLED_IMAGES),
                              test_mode=True, pipeline=[])
    assert len(dataset) == 12
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        assert info['best_region'] is not None
        assert box_contains(info['best_region'], info['gt_bbox'], tol=1e-2)
    assert _shards(str(out)) == []


@pytest.mark.slow
def test_cli_fails_early_on_a_bad_record_naming_the_file(tmp_path):
    with open(BUNDLED_ANN, encoding='utf-8') as f:
        content = json.load(f)
    del content['annotations'][7]['points']
    bad = tmp_path / 'annotations' / 'bad.json'
    bad.parent.mkdir()
    bad.write_text(json.dumps(content))
    result = subprocess.run(
        [sys.executable, TOOL, TINY_CONFIG, 'none', str(bad), '--out', str(tmp_path / 'o.json'),
         '--img-dir', BUNDLED_IMAGES, '--cfg-options', 'model.vlm.pretrained=/no/such/model'],
        cwd=REPO_ROOT, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert f'{bad}, record 7: missing polygon' in result.stderr
    assert 'no/such/model' not in result.stderr  # failed before building the model
    assert not (tmp_path / 'o.json').exists()


@pytest.mark.slow
def test_torchrun_two_processes_write_the_single_process_file(reference, tiny_models, tmp_path):
    config = _oracle_config(tmp_path, tiny_models, subprocess_imports=True, **ORACLE_SEARCH)
    out = tmp_path / 'out.json'
    env = SUBPROCESS_ENV
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
         TOOL, config, 'none', BUNDLED_ANN, '--out', str(out), '--launcher', 'pytorch'],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert '6/6' in result.stdout  # rank 0 searched half of the 12 records
    assert out.read_bytes() == reference[0]
    assert _shards(str(out)) == []


def test_cpu_launch_joins_through_the_shared_helper(monkeypatch):
    """Without a GPU, --launcher pytorch joins through run_config.init_cpu_distributed (the path of
    tools/train.py and tools/test.py), always with gloo and the search's dist_timeout, also for a
    config written for GPUs (nccl); --launcher none joins nothing."""
    import datetime

    from mmengine.config import Config

    from finers_mm.utils import run_config
    tool = _load_tool()
    helper_calls, joined = [], []
    shared = run_config.init_cpu_distributed

    def spy(cfg, **kwargs):
        helper_calls.append(kwargs)
        return shared(cfg, **kwargs)

    monkeypatch.setattr(tool, 'init_cpu_distributed', spy)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.distributed, 'is_initialized', lambda: False)
    monkeypatch.setattr(torch.distributed, 'init_process_group',
                        lambda **kwargs: joined.append(kwargs))
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    tool.init_distributed('none', cfg, 60)
    assert helper_calls == [] and joined == []
    tool.init_distributed('pytorch', cfg, 60)
    timeout = datetime.timedelta(seconds=60)
    assert helper_calls == [dict(timeout=timeout, backend='gloo')]
    assert joined == [dict(backend='gloo', timeout=timeout)]
    assert 'model_wrapper_cfg' not in cfg  # the search's config is left alone
