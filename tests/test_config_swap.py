# Copyright (c) finers_mm contributors. All rights reserved.
"""Config swap, refiner part: the SAME FineRS test config (``configs/finers/finers_tiny_test.py``)
through ``tools/test.py`` with the VLM refiner and with an mmdet refiner (``MMDetRefiner`` of
``projects/mmdet_refiner``, the tiny random RTMDet), swapped by ``--cfg-options`` alone (the project
config ``finers_tiny_mmdet_refiner.py`` is checked to be that same swap); each run gives full-size
masks and valid ``FineRSMetric`` metrics. (The mask-head part of the swap, SAM / SAM 2 / mmseg, is
in ``tests/test_sam2_mask_head.py``.) ``tools/test.py`` imports ``custom_imports`` when it reads the
config file, before ``--cfg-options``, so both runs read ``finers_tiny_test.py`` through a one-line
child config that only adds the imports (checked equal otherwise).

The random tiny explorer never writes a parsable region, so the refiner would never run: in both
runs the explorer's and the VLM refiner's ``generate`` are scripted (TEST SCAFFOLDING, written to a
temporary module: the real Qwen2.5-VL adapter, prompts and parsers, with completions that name the
GT, as ``tests/test_detector.py``'s ``OracleScripts``); the mmdet run's refiner is a real detector.
"""
import json
import math
import os
import os.path as osp
import pickle
import re
import subprocess
import sys

import numpy as np
import pycocotools.mask as mask_util
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from finers_mm.registry import DATASETS
from finers_mm.structures import (crop_window_from_region, explorer_to_original,
                                  original_to_explorer, region_around_box)

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_CONFIG = osp.join(REPO_ROOT, 'configs', 'finers', 'finers_tiny_test.py')
MMDET_REFINER = osp.join(REPO_ROOT, 'projects', 'mmdet_refiner')
PROJECT_CONFIG = osp.join(MMDET_REFINER, 'configs', 'finers_tiny_mmdet_refiner.py')
RTMDET_CONFIG = osp.join(MMDET_REFINER, 'configs', 'rtmdet_tiny_1cls.py')
BUILD_TOOL = osp.join(MMDET_REFINER, 'tools', 'build_tiny_detector.py')
METRIC_KEYS = ('gIoU', 'cIoU', 'MVQA', 'OVQA', 'invalid_rate', 'num_samples')

ORACLE_VLM = '''
import json

import numpy as np
import torch

from finers_mm.models.vlm import GenerationResult, Qwen25VLAdapter
from finers_mm.registry import MODELS
from finers_mm.structures import window_to_frame

THINK = '<think>The target is small; I compare the candidates one by one.</think>'


@MODELS.register_module()
class OracleQwen25VLAdapter(Qwen25VLAdapter):
    """TEST SCAFFOLDING: the tiny Qwen2.5-VL adapter whose generate answers the GT of the question
    its prompt asks (read from the ``oracle`` JSON file), for the explorer or the refiner role."""

    def __init__(self, oracle, role, **kwargs):
        super().__init__(**kwargs)
        with open(oracle) as f:
            self.oracle = json.load(f)
        self.role = role

    def _record(self, prompt):
        [record] = [r for q, r in self.oracle.items() if "'" + q + "'" in prompt]
        return record

    def _complete(self, image, prompt):
        record, frame = self._record(prompt), (image.shape[1], image.shape[0])
        if self.role == 'explorer':
            assert list(frame) == record['explorer_size'], frame
            data = dict(bbox=self.frame_to_model(np.asarray(record['region']), frame).tolist())
        else:
            window = record['window']
            box = window_to_frame(np.asarray(record['gt_bbox']), window, frame)
            points = window_to_frame(np.asarray(record['points']), window, frame)
            points = self.frame_to_model(points, frame)
            data = dict(bbox=self.frame_to_model(box, frame).tolist(),
                        points_1=points[0].tolist(), points_2=points[1].tolist())
        data['response'] = 'The object is found.'
        return THINK + '<answer>' + json.dumps(data) + '</answer>'

    def generate(self, images, prompts, **overrides):
        texts = [self._complete(image, prompt) for image, prompt in zip(images, prompts)]
        ids = torch.zeros(len(texts), 1, dtype=torch.long)
        extra = {}
        if overrides.get('with_scores'):
            extra['mean_logprobs'] = torch.zeros(len(texts))
        return GenerationResult(texts=texts, completion_ids=ids, completion_mask=ids,
                                prompt_inputs=None, num_return_sequences=1, **extra)
'''


@pytest.fixture(scope='module')
def oracle(tmp_path_factory):
    """The oracle JSON (per question: its explorer region, crop window, GT box and two points
    inside it) and the folder of the scripted adapter's module."""
    init_default_scope('finers_mm')
    cfg = Config.fromfile(TINY_CONFIG)
    frame, region_size = tuple(cfg.frames.explorer_size), cfg.frames.region_size
    data_cfg = cfg.test_dataloader.dataset
    data_cfg.data_root = osp.join(REPO_ROOT, 'finers_mm', 'data', 'synthetic') + '/'
    dataset = DATASETS.build(data_cfg)
    records, windows = {}, {}
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        size = (info['width'], info['height'])
        region = region_around_box(original_to_explorer(info['gt_bbox'], size, frame), frame,
                                   region_size)
        window = crop_window_from_region(explorer_to_original(region, size, frame), size,
                                         cfg.model.crop_min_side)
        x1, y1, x2, y2 = (float(v) for v in info['gt_bbox'])
        records[info['question']] = dict(
            explorer_size=list(frame), region=region.tolist(), window=window.tolist(),
            gt_bbox=[x1, y1, x2, y2],
            points=[[(3 * x1 + x2) / 4, (y1 + y2) / 2], [(x1 + 3 * x2) / 4, (y1 + y2) / 2]])
        windows[info['sample_idx']] = window
    assert len(records) == len(dataset)  # the bundled questions are unique
    folder = tmp_path_factory.mktemp('oracle_vlm')
    (folder / 'oracle_vlm_swap.py').write_text(ORACLE_VLM)
    with open(folder / 'oracle.json', 'w') as f:
        json.dump(records, f)
    # tools/test.py imports custom_imports when it reads the config file, before --cfg-options:
    # both runs read finers_tiny_test.py through this file, which only adds the imports of the
    # scaffolding and of the mmdet refiner's module
    config = folder / 'finers_tiny_test_swap.py'
    config.write_text(f"_base_ = '{TINY_CONFIG}'\n"
                      "custom_imports = dict(imports=['finers_mm', 'oracle_vlm_swap', "
                      "'projects.mmdet_refiner.mmdet_refiner'], allow_failed_imports=False)\n")
    return dict(folder=str(folder), file=str(folder / 'oracle.json'), config=str(config),
                windows=windows)


@pytest.fixture(scope='module')
def rtmdet_checkpoint(tmp_path_factory):
    import importlib.util
    spec = importlib.util.spec_from_file_location('_build_tiny_detector', BUILD_TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool.main([RTMDET_CONFIG, str(tmp_path_factory.mktemp('rtmdet') / 'rtmdet.pth')])


def _refiner_options(refiner: str, tiny_models: dict, oracle: dict, checkpoint: str) -> list:
    """The --cfg-options that put the VLM refiner or the mmdet refiner in the chain."""
    if refiner == 'vlm':  # the config's own LocalRefiner, its generate scripted
        return [f"model.refiner.vlm.pretrained={tiny_models['qwen2_5_vl']}",
                'model.refiner.vlm.type=OracleQwen25VLAdapter',
                f"model.refiner.vlm.oracle={oracle['file']}", 'model.refiner.vlm.role=refiner']
    return ['model.refiner._delete_=True', 'model.refiner.type=MMDetRefiner',
            f'model.refiner.detector={RTMDET_CONFIG}', f'model.refiner.checkpoint={checkpoint}']


def test_the_swap_config_is_finers_tiny_test_and_the_project_config_is_that_swap(oracle):
    """The runs' config is ``finers_tiny_test.py`` plus imports; the project config
    ``finers_tiny_mmdet_refiner.py`` is ``finers_tiny_test.py`` with only the refiner block (and the
    import of its module) replaced: the --cfg-options below are the same swap."""
    tiny = Config.fromfile(TINY_CONFIG, import_custom_modules=False).to_dict()
    swap = Config.fromfile(oracle['config'], import_custom_modules=False).to_dict()
    assert swap.pop('custom_imports') != tiny['custom_imports']
    assert swap == {k: v for k, v in tiny.items() if k != 'custom_imports'}
    project = Config.fromfile(PROJECT_CONFIG, import_custom_modules=False).to_dict()
    assert tiny['model'].pop('refiner')['type'] == 'LocalRefiner'
    refiner = project['model'].pop('refiner')
    assert refiner['type'] == 'MMDetRefiner'
    assert set(refiner) == {'type', 'detector', 'checkpoint', 'selection', 'points'}
    assert project.pop('custom_imports')['imports'] == [
        'finers_mm', 'projects.mmdet_refiner.mmdet_refiner']
    tiny.pop('custom_imports')
    assert tiny == project


@pytest.mark.parametrize('refiner', ['vlm', 'mmdet'])
def test_same_config_with_the_vlm_or_an_mmdet_refiner_gives_full_size_masks_and_valid_metrics(
        tiny_models, oracle, rtmdet_checkpoint, tmp_path, refiner):
    out = tmp_path / 'preds.pkl'
    result = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'test.py'), oracle['config'], '--work-dir',
         str(tmp_path), '--out', str(out), '--cfg-options',
         f"model.explorer.vlm.pretrained={tiny_models['qwen2_5_vl']}",
         'model.explorer.vlm.type=OracleQwen25VLAdapter',
         f"model.explorer.vlm.oracle={oracle['file']}", 'model.explorer.vlm.role=explorer',
         f"model.mask_head.config={tiny_models['sam_config']}",
         f"model.mask_head.checkpoint={tiny_models['sam']}",
         *_refiner_options(refiner, tiny_models, oracle, rtmdet_checkpoint)],
        cwd=REPO_ROOT, env=dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=oracle['folder']),
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    metrics = {key: float(value)
               for key, value in re.findall(r'finers/(\w+): (\S+)', result.stdout)}
    print(f'{refiner} refiner:', metrics)
    for key in METRIC_KEYS:  # FineRSMetric's keys, all finite
        assert key in metrics and math.isfinite(metrics[key]), (key, result.stdout[-2000:])
    assert metrics['num_samples'] == 12 and metrics['invalid_rate'] == 0.0
    for key in ('gIoU', 'cIoU', 'MVQA', 'OVQA'):
        assert 0.0 <= metrics[key] <= 100.0, key
    if refiner == 'vlm':  # the scripted refiner names the GT: its masks overlap it
        assert metrics['gIoU'] > 0.0

    with open(out, 'rb') as f:
        predictions = pickle.load(f)
    assert len(predictions) == 12
    for pred in predictions:
        height, width = pred['ori_shape']
        [rle] = pred['pred_instances']['masks']  # one mask, RLE in --out (DumpDetResults)
        mask = mask_util.decode(rle).astype(bool)
        assert mask.shape == (height, width)  # full size
        window = oracle['windows'][pred['sample_idx']]
        np.testing.assert_array_equal(pred['pred_window'], window)
        x1, y1, x2, y2 = window
        inside = np.zeros((height, width), bool)
        inside[y1:y2, x1:x2] = True
        assert not (mask & ~inside).any()  # pasted into its crop window
        assert pred['invalid_reason'] is None
        if refiner == 'mmdet':  # the refiner that ran is the detector, not the VLM
            assert json.loads(pred['refiner_completion'])['detector'] == 'RTMDet'
        else:
            assert pred['refiner_completion'].endswith('</answer>')
