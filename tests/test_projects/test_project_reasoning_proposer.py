# Copyright (c) finers_mm contributors. All rights reserved.
"""projects/reasoning_proposer: FineRS's explorer as a region proposer for mmdet detectors.

The README's commands run here verbatim (``work_dirs/`` moved to a temporary folder), through
``tools/test.py`` with the project configs; unit tests pin the crop -> original mapping, the NMS merge,
the tiling and the build-time errors.
"""
import copy
import json
import os
import os.path as osp
import pickle
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from finers_mm.testing import REPO_ROOT

PROJECT = osp.join(REPO_ROOT, 'projects', 'reasoning_proposer')
README = osp.join(PROJECT, 'README.md')
PROPOSER_CFG = osp.join(PROJECT, 'configs', 'finers_tiny_reasoning_proposer.py')
SLICED_CFG = osp.join(PROJECT, 'configs', 'sliced_tiny_rtmdet.py')
DETECTOR_CFG = osp.join(REPO_ROOT, 'projects', 'mmdet_refiner', 'configs', 'rtmdet_tiny_1cls.py')
ENV = dict(os.environ, OMP_NUM_THREADS='1')

sys.path.insert(0, REPO_ROOT)
from finers_mm.registry import DATASETS, MODELS  # noqa: E402
from finers_mm.structures import crop_window_from_region  # noqa: E402
from projects.reasoning_proposer.reasoning_proposer import (merge_detections,  # noqa: E402
                                                            region_for, slice_windows)


def readme_commands():
    """The commands of the README's "Run it" bash block, one per line."""
    with open(README) as f:
        text = f.read()
    section = text.split('## Run it', 1)[1]
    block = re.search(r'```bash\n(.*?)```', section, re.S).group(1)
    return [line for line in block.replace('\\\n', ' ').splitlines() if line.strip()]


def run_command(command: str, work_dirs: str) -> subprocess.CompletedProcess:
    argv = shlex.split(command.replace('work_dirs/', work_dirs + '/'))
    assert argv[0] == 'python'
    result = subprocess.run([sys.executable] + argv[1:], cwd=REPO_ROOT, env=ENV,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-3000:])
    return result


@pytest.fixture(scope='module')
def readme_run(tmp_path_factory):
    """Every README command, in order; their outputs by index."""
    work_dirs = str(tmp_path_factory.mktemp('work_dirs'))
    commands = readme_commands()
    return work_dirs, commands, [run_command(c, work_dirs) for c in commands]


@pytest.fixture(scope='module')
def data_infos():
    init_default_scope('finers_mm')
    cfg = Config.fromfile(PROPOSER_CFG)
    data_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    data_cfg.data_root = osp.join(REPO_ROOT, 'finers_mm', 'data', 'synthetic') + '/'
    dataset = DATASETS.build(data_cfg)
    return dataset, {dataset.get_data_info(i)['sample_idx']: dataset.get_data_info(i)
                     for i in range(len(dataset))}


def _load(path):
    with open(path, 'rb') as f:
        return pickle.load(f)


def _metric(stdout: str, key: str) -> float:
    return float(re.findall(rf'coco/{key}: (-?[0-9.]+)', stdout)[-1])


def test_readme_commands_are_the_ones_tested():
    commands = readme_commands()
    assert len(commands) == 8
    assert sum('tools/test.py' in c for c in commands) == 4
    assert all(c.startswith('python ') for c in commands)


@pytest.mark.slow
def test_project_config_runs_end_to_end_with_the_tiny_random_explorer(readme_run, data_infos):
    work_dirs, commands, results = readme_run
    preds = _load(osp.join(work_dirs, 'reasoning_proposer', 'tiny', 'preds.pkl'))
    assert len(preds) == 12
    for pred in preds:  # the random tiny VLM never writes a parsable region
        assert len(pred['pred_instances']['bboxes']) == 0
        assert pred['invalid_reason'].startswith('explorer:')
        assert pred['num_detector_inputs'] == 0
    assert 'whole dataset is empty' in results[3].stdout + results[3].stderr


def test_scripted_explorer_with_tiny_rtmdet_maps_boxes_into_original_pixels(readme_run,
                                                                           data_infos):
    work_dirs, _, results = readme_run
    _, infos = data_infos
    assert 0.0 <= _metric(results[5].stdout, 'bbox_mAP') <= 1.0
    with open(osp.join(work_dirs, 'reasoning_proposer', 'regions.json')) as f:
        regions = json.load(f)
    preds = _load(osp.join(work_dirs, 'reasoning_proposer', 'scripted', 'preds.pkl'))
    assert len(preds) == 12
    for pred in preds:
        info = infos[pred['sample_idx']]
        size = (info['width'], info['height'])
        window = crop_window_from_region(np.asarray(regions[info['question']]), size, 512)
        np.testing.assert_array_equal(pred['pred_windows'], window[None])
        assert pred['num_detector_inputs'] == 1 and pred['invalid_reason'] is None
        boxes = pred['pred_instances']['bboxes'].numpy()
        assert 0 < len(boxes) <= 100  # score_thr 0: the random detector always answers
        assert (boxes[:, 0] >= window[0] - 1e-3).all() and (boxes[:, 2] <= window[2] + 1e-3).all()
        assert (boxes[:, 1] >= window[1] - 1e-3).all() and (boxes[:, 3] <= window[3] + 1e-3).all()
        scores = pred['pred_instances']['scores'].numpy()
        assert (np.diff(scores) <= 1e-6).all()
        assert (pred['pred_instances']['labels'].numpy() == 0).all()


def test_oracle_detector_scores_map_1_through_coco_metric(readme_run):
    work_dirs, _, results = readme_run
    assert _metric(results[6].stdout, 'bbox_mAP') == pytest.approx(1.0)
    assert _metric(results[6].stdout, 'bbox_mAP_50') == pytest.approx(1.0)


def test_sliced_baseline_runs_fifteen_tiles_per_image(readme_run, data_infos):
    work_dirs, _, results = readme_run
    assert 0.0 <= _metric(results[7].stdout, 'bbox_mAP') <= 1.0
    preds = _load(osp.join(work_dirs, 'reasoning_proposer', 'sliced', 'preds.pkl'))
    assert len(preds) == 12
    for pred in preds:
        assert pred['num_detector_inputs'] == 15
        np.testing.assert_array_equal(pred['pred_windows'], slice_windows((1920, 1080), 512, 0.2))
        assert 0 < len(pred['pred_instances']['bboxes']) <= 100


def test_slice_windows_cover_the_image_inside_it():
    windows = slice_windows((1920, 1080), 512, 0.2)
    assert len(windows) == 15
    assert (windows[:, 0] >= 0).all() and (windows[:, 2] <= 1920).all()
    assert (windows[:, 1] >= 0).all() and (windows[:, 3] <= 1080).all()
    assert ((windows[:, 2] - windows[:, 0]) == 512).all()
    covered = np.zeros((1080, 1920), bool)
    for x1, y1, x2, y2 in windows:
        covered[y1:y2, x1:x2] = True
    assert covered.all()
    # every object smaller than the overlap lies wholly inside one tile
    rng = np.random.default_rng(0)
    for _ in range(200):
        x, y = rng.uniform(0, 1920 - 100), rng.uniform(0, 1080 - 100)
        box = (x, y, x + 100, y + 100)
        assert any(w[0] <= box[0] and w[1] <= box[1] and w[2] >= box[2] and w[3] >= box[3]
                   for w in windows)
    assert slice_windows((300, 200), 512, 0.2).tolist() == [[0, 0, 300, 200]]
    with pytest.raises(ValueError, match='overlap_ratio'):
        slice_windows((100, 100), 50, 1.0)


def _instances(boxes, scores, labels):
    out = InstanceData()
    out.bboxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    out.scores = torch.tensor(scores, dtype=torch.float32)
    out.labels = torch.tensor(labels, dtype=torch.long)
    return out


def test_merge_maps_clips_and_suppresses_across_windows():
    windows = [np.array([100, 50, 612, 562]), np.array([400, 50, 912, 562])]
    parts = [
        # the same object seen by both windows, a box reaching outside its crop, a NaN
        _instances([[310, 10, 350, 50], [500, 500, 600, 600], [float('nan'), 0, 1, 1]],
                   [0.9, 0.5, 0.99], [3, 1, 0]),
        _instances([[10, 10, 52, 50]], [0.8], [2]),
    ]
    merged = merge_detections(parts, windows, dict(type='nms', iou_threshold=0.5))
    np.testing.assert_allclose(merged.bboxes.numpy(),
                               [[410, 60, 450, 100], [600, 550, 612, 562]], atol=1e-4)
    np.testing.assert_allclose(merged.scores.numpy(), [0.9, 0.5], atol=1e-6)
    assert merged.labels.tolist() == [0, 0]
    # per class: the two views of the object have different labels, both stay
    kept = merge_detections(parts, windows, dict(type='nms', iou_threshold=0.5),
                            class_agnostic=False)
    assert sorted(kept.labels.tolist()) == [1, 2, 3]
    assert len(merge_detections([_instances([], [], [])], windows[:1], None)) == 0
    assert len(merge_detections(parts, windows, dict(type='nms', iou_threshold=0.5),
                                max_per_img=1)) == 1


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    from projects.mmdet_refiner.tools.build_tiny_detector import main
    return main([DETECTOR_CFG, str(tmp_path_factory.mktemp('det') / 'rtmdet.pth')])


def _model_cfg(explorer, detector, **kwargs):
    cfg = copy.deepcopy(Config.fromfile(PROPOSER_CFG).model)
    cfg.explorer = explorer
    cfg.detector = detector
    cfg.update(kwargs)
    return cfg


def test_crop_detector_equals_mmdet_inference_detector_on_the_crop(checkpoint, data_infos):
    """The proposer's boxes = mmdet's inference_detector on the crop + the window offset."""
    from mmdet.apis import inference_detector
    init_default_scope('finers_mm')
    dataset, infos = data_infos
    info = dataset.get_data_info(0)
    region = region_for(info['gt_bbox'], (info['width'], info['height']))
    model = MODELS.build(_model_cfg(
        dict(type='ScriptedRegionExplorer', regions={info['question']: region.tolist()}),
        dict(config=DETECTOR_CFG, checkpoint=checkpoint), nms=None, max_per_img=None,
        class_agnostic=False)).eval()
    with torch.no_grad():
        [result] = model.test_step(pseudo_collate([dataset[0]]))
    x1, y1, x2, y2 = result.pred_windows[0]
    import mmcv
    image = mmcv.imread(info['img_path'])  # BGR, as inference_detector takes arrays
    detector = model.detector.detector
    detector.cfg = Config.fromfile(DETECTOR_CFG)
    init_default_scope('mmdet')
    try:
        reference = inference_detector(detector, np.ascontiguousarray(image[y1:y2, x1:x2]))
    finally:
        init_default_scope('finers_mm')
    ref = reference.pred_instances
    order = torch.argsort(ref.scores, descending=True)
    expected = ref.bboxes[order].numpy() + np.array([x1, y1, x1, y1], np.float32)
    expected = np.clip(expected, [x1, y1, x1, y1], [x2, y2, x2, y2])
    np.testing.assert_allclose(result.pred_instances.bboxes.numpy(), expected, atol=1e-2)
    np.testing.assert_allclose(result.pred_instances.scores.numpy(), ref.scores[order].numpy(),
                               atol=1e-5)


class _SequenceExplorer(torch.nn.Module):
    """Answers the given regions in turn (None: no region)."""

    def __init__(self, regions):
        super().__init__()
        self.regions = list(regions)

    def explore(self, views, image_sizes, queries, num_regions=1):
        from finers_mm.models.stages import ExplorerOutput
        outs = []
        for _ in range(len(queries) * num_regions):
            region = self.regions.pop(0)
            outs.append(ExplorerOutput(
                region=None if region is None else np.asarray(region, np.float32),
                answer=None if region is None else 'ok', completion='seq',
                invalid='no_json' if region is None else None))
        return outs


def test_num_regions_batches_all_windows_and_dedupes(data_infos):
    init_default_scope('finers_mm')
    dataset, _ = data_infos
    model = MODELS.build(_model_cfg(dict(type='ScriptedRegionExplorer', regions={}),
                                    dict(type='OracleCropDetector'), num_regions=2)).eval()
    model.explorer = _SequenceExplorer([
        [0, 0, 100, 100], [1000, 500, 1100, 600],      # sample 0: two windows
        [0, 0, 100, 100], [10, 10, 90, 90],            # sample 1: the same window twice -> once
        None, None])                                   # sample 2: no region
    model.detector.reset_counters()
    with torch.no_grad():
        results = model.test_step(pseudo_collate([dataset[i] for i in range(3)]))
    assert [r.num_detector_inputs for r in results] == [2, 1, 0]
    assert model.detector.num_inputs == 3 and model.detector.num_forwards == 1
    assert results[2].invalid_reason == 'explorer:no_json'
    assert len(results[2].pred_instances) == 0
    assert results[0].invalid_reason is None and len(results[0].pred_regions) == 2


def test_tiled_fallback_runs_the_tiles_only_for_samples_without_a_region(data_infos):
    init_default_scope('finers_mm')
    dataset, _ = data_infos
    model = MODELS.build(_model_cfg(dict(type='ScriptedRegionExplorer', regions={}),
                                    dict(type='OracleCropDetector'),
                                    tiled_fallback=dict(tile_size=512, overlap_ratio=0.2))).eval()
    info = dataset.get_data_info(0)
    model.explorer = _SequenceExplorer([region_for(info['gt_bbox'], (info['width'],
                                                                     info['height'])), None])
    model.detector.reset_counters()
    with torch.no_grad():
        results = model.test_step(pseudo_collate([dataset[i] for i in range(2)]))
    second = dataset.get_data_info(1)
    tiles = slice_windows((second['width'], second['height']), 512, 0.2)
    assert [r.num_detector_inputs for r in results] == [1, len(tiles)]
    assert model.detector.num_inputs == 1 + len(tiles) and model.detector.num_forwards == 1
    assert [r.fallback for r in results] == [None, 'tiled']
    np.testing.assert_array_equal(results[1].pred_windows, tiles)
    assert results[1].invalid_reason == 'explorer:no_json'  # the explorer's failure still counts
    assert len(results[1].pred_instances) >= 1  # the oracle finds the GT in the tiles
    with pytest.raises(KeyError, match=r"model\.tiled_fallback: unknown key\(s\) \['tile'\]"):
        MODELS.build(_model_cfg(dict(type='ScriptedRegionExplorer', regions={}),
                                dict(type='OracleCropDetector'), tiled_fallback=dict(tile=512)))


@pytest.mark.slow
def test_missing_checkpoint_fails_at_build_time_naming_key_and_path(tmp_path):
    missing = str(tmp_path / 'nope' / 'rtmdet.pth')
    result = subprocess.run(
        [sys.executable, 'tools/test.py', PROPOSER_CFG, '--work-dir', str(tmp_path),
         '--cfg-options', f'model.detector.checkpoint={missing}'],
        cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert 'model.detector.checkpoint: no checkpoint file at' in result.stderr
    assert missing in result.stderr


def test_unknown_detector_type_fails_at_build_time_naming_key_and_path(tmp_path):
    bad = tmp_path / 'bad_detector.py'
    bad.write_text(f"_base_ = '{DETECTOR_CFG}'\nmodel = dict(type='NoSuchDetector')\n")
    init_default_scope('finers_mm')
    cfg = _model_cfg(dict(type='ScriptedRegionExplorer', regions={}),
                     dict(config=str(bad), checkpoint=None))
    with pytest.raises(ValueError) as error:
        MODELS.build(cfg)
    message = str(error.value)
    assert 'model.detector.config.type' in message and "'NoSuchDetector'" in message
    assert str(bad) in message
    cfg.detector.config = str(tmp_path / 'missing.py')
    with pytest.raises(FileNotFoundError, match=r'model\.detector\.config: no mmdet detector '
                                                r'config file at .*missing\.py'):
        MODELS.build(cfg)
