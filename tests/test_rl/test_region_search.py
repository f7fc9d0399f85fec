# Copyright (c) finers_mm contributors. All rights reserved.
"""Retrospective best-region search: candidates, scores, resumable state and the CLI.

A scripted refiner pins down the choice (:mod:`finers_mm.testing.region_search`): the real
LocalRefiner whose adapter answers a box that misses the GT by a shift growing with the distance
between the window's centre and a point near the GT, so some candidate windows are clearly better
than others. The subprocess runs import that module (``custom_imports``) to get the same classes.
"""
import importlib.util
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
from finers_mm.models.stages import RefinerOutput
from finers_mm.registry import MODELS
from finers_mm.rl.region_search import (CandidateRegions, RegionSearchStateError, SearchResult,
                                        SearchState, localization_ious, search_batch)
from finers_mm.structures import (box_contains, crop_window_from_region, explorer_to_original,
                                  region_around_box)
from finers_mm.testing import REPO_ROOT
from finers_mm.testing.region_search import (BUNDLED_ANN, BUNDLED_IMAGES, WindowAwareRefiner,
                                             bundled_infos, oracle_box)
from finers_mm.testing.scripted import THINK, record_for

TOOL = osp.join(REPO_ROOT, 'tools', 'search_best_region.py')
TINY_CONFIG = osp.join(REPO_ROOT, 'configs', 'finers', 'region_search_tiny.py')
EXPLORER_SIZE, REGION_SIZE, CROP_MIN_SIDE = (1920, 1080), 256, 512
SUBPROCESS_ENV = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='', HF_HUB_OFFLINE='1',
                      TRANSFORMERS_OFFLINE='1')


def shifted_box_iou(gt_bbox, box) -> float:
    """IoU of two boxes of the same size (written out, independent of the tool's IoU)."""
    width, height = gt_bbox[2] - gt_bbox[0], gt_bbox[3] - gt_bbox[1]
    inter = (max(width - abs(box[0] - gt_bbox[0]), 0) * max(height - abs(box[1] - gt_bbox[1]), 0))
    return inter / (2 * width * height - inter)


def _load_tool():
    spec = importlib.util.spec_from_file_location('_tool_search_best_region', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tool():
    return _load_tool()


@pytest.fixture(scope='module')
def refiner(tiny_models):
    init_default_scope('finers_mm')
    return MODELS.build(dict(
        type='WindowAwareRefiner', frame_size=(512, 512),
        vlm=dict(type='WindowScriptedAdapter', pretrained=tiny_models['qwen2_5_vl'],
                 freeze=True))).eval()


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
# Candidates
# ----------------------------------------------------------------------------------------------


def _random_boxes(rng, frame, count, max_side):
    boxes = []
    for _ in range(count):
        w, h = rng.uniform(1, max_side, size=2)
        x1, y1 = rng.uniform(0, frame[0] - w), rng.uniform(0, frame[1] - h)
        boxes.append(np.array([x1, y1, x1 + w, y1 + h], np.float32))
    return boxes


@pytest.mark.parametrize('rule, num_candidates', [('random', 8), ('grid', 10)])
@pytest.mark.parametrize('frame, image', [((1920, 1080), (3840, 2160)),
                                          ((1920, 1080), (1920, 1080)), ((300, 200), (1000, 700))])
def test_candidates_contain_the_gt_and_start_with_the_centred_region(rule, num_candidates, frame,
                                                                     image):
    candidates = CandidateRegions(frame, REGION_SIZE, CROP_MIN_SIDE, num_candidates, rule, seed=1)
    sides = np.array([min(REGION_SIZE, frame[0]), min(REGION_SIZE, frame[1])])
    scale = np.array([image[0] / frame[0], image[1] / frame[1]])
    moved = 0
    for index, gt in enumerate(_random_boxes(np.random.default_rng(0), frame, 50, 200)):
        regions = candidates.explorer_regions(gt, index)
        assert regions.shape == (num_candidates, 4)
        np.testing.assert_array_equal(regions[0], region_around_box(gt, frame, REGION_SIZE))
        for region in regions:
            assert box_contains(region, gt, tol=1e-3), (region, gt)
            np.testing.assert_allclose(region[2:] - region[:2], sides, rtol=1e-5)
            assert region[0] >= 0 and region[1] >= 0
            assert region[2] <= frame[0] and region[3] <= frame[1]
        moved += len(np.unique(regions[:, :2], axis=0)) > 1

        gt_original = explorer_to_original(gt, image, frame)
        originals, windows = candidates(gt_original, image, index)
        np.testing.assert_allclose(originals[0], explorer_to_original(regions[0], image, frame),
                                   atol=1e-3)
        assert len(np.unique(windows, axis=0)) == len(windows) <= num_candidates
        for region, window in zip(originals, windows):
            np.testing.assert_allclose(region[2:] - region[:2], sides * scale, rtol=1e-5)
            assert box_contains(region, gt_original, tol=1e-2)
            np.testing.assert_array_equal(window,
                                          crop_window_from_region(region, image, CROP_MIN_SIDE))
            assert box_contains(window, gt_original, tol=1e-2)
    assert moved >= 40  # the candidates do move around


def test_candidates_are_deterministic_per_record_and_seed():
    gt = np.array([900.0, 500.0, 930.0, 520.0])

    def regions(seed, index, rule='random'):
        num = 10 if rule == 'grid' else 8
        return CandidateRegions(EXPLORER_SIZE, REGION_SIZE, CROP_MIN_SIDE, num, rule,
                                seed).explorer_regions(gt, index)

    np.testing.assert_array_equal(regions(0, 3), regions(0, 3))
    assert not np.array_equal(regions(0, 3), regions(0, 4))
    assert not np.array_equal(regions(0, 3), regions(1, 3))
    np.testing.assert_array_equal(regions(0, 3)[0], regions(1, 4)[0])  # centred: no randomness
    np.testing.assert_array_equal(regions(0, 3, 'grid'), regions(5, 9, 'grid'))


def test_grid_spans_the_placements_from_touching_one_side_to_the_other():
    gt = np.array([900.5, 500.5, 930.0, 520.0])
    regions = CandidateRegions(EXPLORER_SIZE, REGION_SIZE, CROP_MIN_SIDE, 10,
                               'grid').explorer_regions(gt, 0)
    lattice = regions[1:]
    xs, ys = [674, 787, 900], [264, 382, 500]  # ceil(930 - 256) .. floor(900.5), same for y
    assert [tuple(r[:2]) for r in lattice] == [(x, y) for y in ys for x in xs]


def test_gt_longer_than_the_region_keeps_the_centred_position_along_that_axis():
    gt = np.array([600.0, 500.0, 900.0, 520.0])  # 300 px wide, the region 256
    candidates = CandidateRegions(EXPLORER_SIZE, REGION_SIZE, CROP_MIN_SIDE, 8, 'random')
    regions = candidates.explorer_regions(gt, 0)
    np.testing.assert_array_equal(regions[:, 0], np.full(8, 750.0 - 128))
    assert len(np.unique(regions[:, 1])) > 1
    assert all(region[1] <= 500 and region[3] >= 520 for region in regions)


def test_repeated_windows_are_dropped():
    # a GT in the top-left corner: every region's window is shifted to [0, 0, 512, 512]
    candidates = CandidateRegions(EXPLORER_SIZE, REGION_SIZE, CROP_MIN_SIDE, 8, 'random')
    regions, windows = candidates(np.array([2.0, 2.0, 12.0, 12.0]), EXPLORER_SIZE, 0)
    assert len(regions) == 1 and windows.tolist() == [[0, 0, 512, 512]]
    np.testing.assert_array_equal(
        regions[0], region_around_box([2.0, 2.0, 12.0, 12.0], EXPLORER_SIZE, REGION_SIZE))


@pytest.mark.parametrize('kwargs, message', [
    (dict(num_candidates=8, rule='grid'), r'1 \+ g \* g'),
    (dict(rule='spiral'), 'rule must be one of'),
    (dict(num_candidates=0), 'num_candidates must be >= 1'),
])
def test_bad_candidate_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CandidateRegions(EXPLORER_SIZE, REGION_SIZE, CROP_MIN_SIDE, **kwargs)


# ----------------------------------------------------------------------------------------------
# Scores and the batched search
# ----------------------------------------------------------------------------------------------


def test_localization_ious_score_only_usable_boxes():
    gt = np.array([10.0, 10.0, 30.0, 30.0])
    points = np.array([[20.0, 20.0], [21.0, 21.0]], np.float32)

    def out(box, pts=points, invalid=None):
        return RefinerOutput(box=None if box is None else np.asarray(box, np.float32), points=pts,
                             answer='x', completion='', invalid=invalid)

    ious = localization_ious([
        out(gt), out([20, 10, 40, 30]), out(None, invalid='bad_bbox'), out([0, 0, 0, 0]),
        out(gt, pts=None, invalid='bad_points'), out(gt, invalid='empty_response')], gt)
    np.testing.assert_allclose(ious, [1.0, 1 / 3, 0.0, 0.0, 0.0, 1.0], atol=1e-6)
    assert localization_ious([], gt).shape == (0, )


def test_search_batch_picks_the_window_where_the_refiner_does_best(refiner):
    infos = [bundled_infos()[i] for i in (1, 5, 10)]
    candidates = CandidateRegions(EXPLORER_SIZE, REGION_SIZE, CROP_MIN_SIDE, 6, 'random', seed=3)
    per_record = {info['ann_index']: candidates(info['gt_bbox'], (info['width'], info['height']),
                                                info['ann_index']) for info in infos}
    targets = {}
    for info in infos:  # the last candidate is the refiner's best window
        assert len(per_record[info['ann_index']][1]) >= 4
        targets[info['ann_index']] = len(per_record[info['ann_index']][1]) - 1

    def script(view, prompt, window):
        info = record_for(bundled_infos(), prompt)
        windows = per_record[info['ann_index']][1]
        [k] = [k for k, w in enumerate(windows) if np.array_equal(w, window)]
        gt = np.asarray(info['gt_bbox'], np.float64)
        if k == targets[info['ann_index']]:
            return refiner.vlm.answer(gt, view, window)
        if k == 1:
            return 'garbage without an answer'
        if k == 2:
            return THINK + '<answer>{"bbox": [0, 0, 0, 0], "points_1": [0, 0], "points_2": ' \
                           '[0, 0], "response": "No object found"}</answer>'
        return refiner.vlm.answer(gt + (gt[2] - gt[0]) * 0.3, view, window)  # a worse box

    refiner.vlm.script, refiner.vlm.calls = script, []
    images = [np.zeros((info['height'], info['width'], 3), np.uint8) for info in infos]
    results = search_batch(refiner, images, infos, candidates)

    assert refiner.vlm.calls == [sum(len(w) for _, w in per_record.values())]  # ONE refine call
    for info, result in zip(infos, results):
        regions, windows = per_record[info['ann_index']]
        target = targets[info['ann_index']]
        assert result.best_region == tuple(float(v) for v in regions[target])
        assert len(result.ious) == len(windows)
        assert result.ious[target] == pytest.approx(1.0, abs=1e-4)
        assert result.ious[1] == result.ious[2] == 0.0
        assert 0.0 < result.ious[0] < 0.9 and result.improved


def test_ties_keep_the_first_candidate_the_centred_region(refiner):
    infos = [bundled_infos()[4]]
    candidates = CandidateRegions(EXPLORER_SIZE, REGION_SIZE, CROP_MIN_SIDE, 6, 'random', seed=3)
    regions, _ = candidates(infos[0]['gt_bbox'], (infos[0]['width'], infos[0]['height']), 4)
    refiner.vlm.script = lambda view, prompt, window: 'no answer at all'
    [result] = search_batch(refiner, [np.zeros((1080, 1920, 3), np.uint8)], infos, candidates)
    assert result.best_region == tuple(float(v) for v in regions[0])
    assert set(result.ious) == {0.0} and not result.improved


# ----------------------------------------------------------------------------------------------
# State
# ----------------------------------------------------------------------------------------------


def test_state_resumes_only_with_the_same_settings(tmp_path):
    out = str(tmp_path / 'out.json')
    settings = dict(candidates=dict(num_candidates=8, seed=0), checkpoint=None)
    state = SearchState(out, settings, rank=1)
    state.add(3, SearchResult((1.0, 2.0, 3.0, 4.0), (0.5, 0.7)))
    state.save()
    assert _shards(out) == ['out.json.partial.rank1.json']

    again = SearchState(out, dict(settings), rank=0)
    assert again.done == {3: SearchResult((1.0, 2.0, 3.0, 4.0), (0.5, 0.7))} and again.own == {}

    with pytest.raises(RegionSearchStateError, match=r'rank1\.json.*other settings.*candidates'):
        SearchState(out, dict(settings, candidates=dict(num_candidates=8, seed=1)))
    with open(out + '.partial.rank0.json', 'w') as f:
        f.write('{"format": "finers_mm.region_search.state/v1", "digest"')
    with pytest.raises(RegionSearchStateError, match=r'rank0\.json: unreadable'):
        SearchState(out, settings)


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
                                       crop_min_side=512, num_candidates=8, rule='random', seed=0)
    assert run == tool.RUN_DEFAULTS

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
