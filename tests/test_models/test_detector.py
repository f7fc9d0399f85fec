# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRSDetector end to end on the bundled synthetic samples with the tiny models.

Scripted completions (a real Qwen2.5-VL adapter whose ``generate`` returns fixed text) pin down the
frame chain exactly: a completion that names the GT in model coordinates must come back as the GT in
ORIGINAL pixels. The real tiny models check batching and the tools.
"""
import copy
import os
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from finers_mm.registry import DATASETS, MODELS
from finers_mm.testing import REPO_ROOT
from finers_mm.testing.scripted import THINK, OracleScripts, completion, record_for
from finers_mm.testing.tools import load_tool

TINY_CONFIG = osp.join(REPO_ROOT, 'configs', 'finers', 'finers_tiny_test.py')


def _tiny_cfg(tiny_models) -> Config:
    cfg = Config.fromfile(TINY_CONFIG)
    root = osp.dirname(tiny_models['sam'])
    cfg.merge_from_dict({
        'model.explorer.vlm.pretrained': tiny_models['qwen2_5_vl'],
        'model.refiner.vlm.pretrained': tiny_models['qwen2_5_vl'],
        'model.mask_head.config': osp.join(root, 'sam_tiny.json'),
        'model.mask_head.checkpoint': tiny_models['sam'],
        'test_dataloader.dataset.data_root': osp.join(REPO_ROOT, 'finers_mm/data/synthetic/'),
    })
    return cfg


@pytest.fixture(scope='module')
def tiny_cfg(tiny_models):
    init_default_scope('finers_mm')
    return _tiny_cfg(tiny_models)


@pytest.fixture(scope='module')
def dataset(tiny_cfg):
    return DATASETS.build(tiny_cfg.test_dataloader.dataset)


@pytest.fixture(scope='module')
def scripted_detector(tiny_cfg):
    cfg = copy.deepcopy(tiny_cfg.model)
    cfg.explorer.vlm.type = 'ScriptedQwen25VLAdapter'
    cfg.refiner.vlm.type = 'ScriptedQwen25VLAdapter'
    return MODELS.build(cfg).eval()


def _infos(dataset):
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def _predict(detector, dataset, indices):
    with torch.no_grad():
        return detector.test_step(pseudo_collate([dataset[i] for i in indices]))


def test_oracle_completions_come_back_as_the_gt_in_original_pixels(scripted_detector, dataset):
    oracle = OracleScripts(scripted_detector, dataset)
    points = {dataset.get_data_info(i)['ann_index']: np.array([[0.0, 0.0], [0.0, 0.0]])
              for i in range(len(dataset))}
    for i in range(len(dataset)):  # two points inside each GT box: its two halves' centres
        info = dataset.get_data_info(i)
        x1, y1, x2, y2 = info['gt_bbox']
        points[info['ann_index']] = np.array([[(3 * x1 + x2) / 4, (y1 + y2) / 2],
                                              [(x1 + 3 * x2) / 4, (y1 + y2) / 2]])
    scripted_detector.explorer.vlm.script = oracle.explorer
    scripted_detector.refiner.vlm.script = lambda im, p: oracle.refiner(im, p, points)
    scripted_detector.explorer.vlm.seen_sizes.clear()
    scripted_detector.refiner.vlm.seen_sizes.clear()

    indices = list(range(4))
    results = _predict(scripted_detector, dataset, indices)

    # one batched generate per stage, each in its own frame
    assert scripted_detector.explorer.vlm.seen_sizes == [[(1920, 1080)] * 4]
    assert scripted_detector.refiner.vlm.seen_sizes == [[(512, 512)] * 4]
    for index, result in zip(indices, results):
        info = dataset.get_data_info(index)
        height, width = info['height'], info['width']
        pred = result.pred_instances
        assert len(pred) == 1 and result.invalid_reason is None
        np.testing.assert_allclose(pred.bboxes[0].numpy(), info['gt_bbox'], atol=1e-3)
        np.testing.assert_allclose(pred.points[0].numpy(), points[info['ann_index']], atol=1e-3)
        assert pred.masks.shape == (1, height, width) and pred.masks.dtype == torch.bool
        x1, y1, x2, y2 = (int(v) for v in result.pred_window)
        inside = np.zeros((height, width), bool)
        inside[y1:y2, x1:x2] = True
        assert not (pred.masks[0].numpy() & ~inside).any()  # the mask is pasted into its window
        np.testing.assert_array_equal(result.pred_window, oracle.window(info))
        gt = info['gt_bbox']
        assert x1 <= gt[0] and y1 <= gt[1] and x2 >= gt[2] and y2 >= gt[3]
        assert result.pred_answer == 'The object is found.'
        assert 0.0 <= float(pred.scores[0]) <= 1.5


def _run_scripts(detector, dataset, explorer_script, refiner_script, indices):
    detector.explorer.vlm.script = explorer_script
    detector.refiner.vlm.script = refiner_script
    detector.refiner.vlm.seen_sizes.clear()
    return _predict(detector, dataset, indices)


@pytest.mark.parametrize('completion, reason', [
    ('lorem ipsum dolor', 'explorer:no_answer_tag'),
    (THINK + '<answer>{"response": "The object is found."}</answer>', 'explorer:missing_key:bbox'),
    (THINK + '<answer>{"bbox": [1, 2, 3], "response": "x"}</answer>', 'explorer:bad_bbox'),
    (THINK + '<answer>{"bbox": [NaN, 0, 10, 10], "response": "x"}</answer>', 'explorer:non_finite'),
])
def test_invalid_explorer_output_gives_an_empty_prediction(scripted_detector, dataset, completion,
                                                           reason):
    def refiner_must_not_run(image, prompt):
        raise AssertionError('the refiner ran without a region')

    [result] = _run_scripts(scripted_detector, dataset, lambda im, p: completion,
                            refiner_must_not_run, [0])
    height, width = dataset.get_data_info(0)['height'], dataset.get_data_info(0)['width']
    assert len(result.pred_instances) == 0
    assert result.pred_instances.masks.shape == (0, height, width)
    assert result.invalid_reason == reason
    assert result.pred_region is None and result.pred_window is None


def test_invalid_refiner_outputs_and_absent_object_in_one_mixed_batch(scripted_detector, dataset):
    oracle = OracleScripts(scripted_detector, dataset)
    questions = {}

    def refiner(image, prompt):
        index = record_for(_infos(dataset), prompt)['ann_index']
        questions[index] = True
        info = dataset.get_data_info(index)
        if index == 0:
            return THINK + '<answer>{"bbox": [NaN, 1, 2, 3], "points_1": [1, 1], "points_2": [2, 2], ' \
                           '"response": "The object is found."}</answer>'
        if index == 1:
            return completion(dict(bbox=[0, 0, 0, 0], points_1=[0, 0], points_2=[0, 0],
                                response='No object found'))
        x1, y1, x2, y2 = info['gt_bbox']
        centre = [[(x1 + x2) / 2, (y1 + y2) / 2]] * 2
        return oracle.refiner(image, prompt, {index: np.asarray(centre)})

    explorer_calls = {0: oracle.explorer, 1: oracle.explorer, 2: oracle.explorer,
                      3: lambda im, p: 'no answer at all'}

    def explorer(image, prompt):
        return explorer_calls[record_for(_infos(dataset), prompt)['ann_index']](image, prompt)

    results = _run_scripts(scripted_detector, dataset, explorer, refiner, [0, 1, 2, 3])
    assert scripted_detector.refiner.vlm.seen_sizes == [[(512, 512)] * 3]  # sample 3 never cropped
    assert results[0].invalid_reason == 'refiner:non_finite' and len(results[0].pred_instances) == 0
    assert results[1].invalid_reason is None and len(results[1].pred_instances) == 0
    assert results[1].pred_answer == 'No object found'
    assert results[2].invalid_reason is None and len(results[2].pred_instances) == 1
    np.testing.assert_allclose(results[2].pred_instances.bboxes[0].numpy(),
                               dataset.get_data_info(2)['gt_bbox'], atol=1e-3)
    assert results[3].invalid_reason == 'explorer:no_answer_tag'


def test_region_outside_the_image_is_shifted_in(scripted_detector, dataset):
    def far(image, prompt):  # a 256 px region well beyond the bottom-right corner of the frame
        frame = (image.shape[1], image.shape[0])
        box = scripted_detector.explorer.vlm.frame_to_model([3000, 3000, 3256, 3256], frame)
        return completion(dict(bbox=box.tolist(), response='The object is found.'))

    [result] = _run_scripts(scripted_detector, dataset, far, lambda im, p: 'garbage', [0])
    info = dataset.get_data_info(0)
    x1, y1, x2, y2 = result.pred_window
    assert 0 <= x1 and 0 <= y1 and x2 <= info['width'] and y2 <= info['height']
    assert (x2 - x1, y2 - y1) == (512, 512)
    assert result.invalid_reason == 'refiner:no_answer_tag'


def test_batch_of_one_and_of_four_agree_under_greedy_decoding(tiny_cfg, dataset):
    detector = MODELS.build(tiny_cfg.model).eval()
    batched = _predict(detector, dataset, [0, 1, 2, 3])
    for index, together in enumerate(batched):
        [alone] = _predict(detector, dataset, [index])
        assert alone.explorer_completion == together.explorer_completion
        assert alone.refiner_completion == together.refiner_completion
        assert alone.invalid_reason == together.invalid_reason
        torch.testing.assert_close(alone.pred_instances.bboxes, together.pred_instances.bboxes)


@pytest.mark.slow
def test_tools_test_runs_the_tiny_chain_with_finers_metric(tiny_models, tmp_path):
    root = osp.dirname(tiny_models['sam'])
    out = tmp_path / 'preds.pkl'
    result = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'test.py'), TINY_CONFIG,
         '--work-dir', str(tmp_path), '--out', str(out), '--show-dir', 'vis', '--cfg-options',
         f"model.explorer.vlm.pretrained={tiny_models['qwen2_5_vl']}",
         f"model.refiner.vlm.pretrained={tiny_models['qwen2_5_vl']}",
         f'model.mask_head.config={root}/sam_tiny.json',
         f"model.mask_head.checkpoint={tiny_models['sam']}"],
        cwd=REPO_ROOT, env=dict(os.environ, OMP_NUM_THREADS='1'), capture_output=True, text=True,
        timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'finers/gIoU' in result.stdout and 'finers/invalid_rate' in result.stdout
    with open(out, 'rb') as f:
        predictions = pickle.load(f)
    assert len(predictions) == 12
    drawn = [name for _, _, names in os.walk(tmp_path) for name in names if name.endswith('.jpg')]
    assert len(drawn) == 12


def test_mmdet_coco_metric_scores_detector_output(scripted_detector, dataset, tmp_path):
    """The COCO GT of the same data (tools/misc/finers_to_coco.py) + FineRSCocoMetric on the
    detector's predictions: oracle boxes give bbox mAP 1.0."""
    from mmengine.evaluator import Evaluator
    to_coco = load_tool('misc', 'finers_to_coco.py')
    bundled = osp.join(REPO_ROOT, 'finers_mm', 'data', 'synthetic')
    gt_file = to_coco.main([osp.join(bundled, 'annotations', 'train.json'),
                            osp.join(bundled, 'images'), str(tmp_path / 'coco_gt.json')])

    oracle = OracleScripts(scripted_detector, dataset)
    centres = {}
    for i in range(len(dataset)):
        x1, y1, x2, y2 = dataset.get_data_info(i)['gt_bbox']
        centres[dataset.get_data_info(i)['ann_index']] = np.array([[(x1 + x2) / 2,
                                                                    (y1 + y2) / 2]] * 2)
    evaluator = Evaluator([dict(type='FineRSCocoMetric', ann_file=gt_file,
                                metric=['bbox', 'segm']),
                           dict(type='FineRSMetric')])
    evaluator.dataset_meta = dataset.metainfo
    indices = list(range(len(dataset)))
    results = _run_scripts(scripted_detector, dataset, oracle.explorer,
                           lambda im, p: oracle.refiner(im, p, centres), indices)
    evaluator.process(data_samples=results)
    metrics = evaluator.evaluate(len(indices))
    assert metrics['coco/bbox_mAP'] == pytest.approx(1.0)
    assert 0.0 <= metrics['coco/segm_mAP'] <= 1.0
    assert metrics['finers/num_samples'] == len(indices)
    assert metrics['finers/invalid_rate'] == 0.0
