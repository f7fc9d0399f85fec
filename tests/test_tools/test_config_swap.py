# Copyright (c) finers_mm contributors. All rights reserved.
"""Config swap, refiner part: the SAME FineRS test config (``configs/finers/finers_tiny_test.py``)
through ``tools/test.py`` with the VLM refiner and with an mmdet refiner (``MMDetRefiner`` of
``projects/mmdet_refiner``, the tiny random RTMDet), swapped by ``--cfg-options`` alone (the project
config ``finers_tiny_mmdet_refiner.py`` is checked to be that same swap); each run gives full-size
masks and valid ``FineRSMetric`` metrics. (The mask-head part of the swap, SAM / SAM 2 / mmseg, is
in ``tests/test_models/test_mask_heads/test_sam2_mask_head.py``.) ``tools/test.py`` imports ``custom_imports`` when it reads the
config file, before ``--cfg-options``, so both runs read ``finers_tiny_test.py`` through a one-line
child config that only adds the imports (checked equal otherwise).

The random tiny explorer never writes a parsable region, so the refiner would never run: in both
runs the explorer's and the VLM refiner's ``generate`` are scripted
(:class:`finers_mm.testing.scripted.OracleQwen25VLAdapter`: the real Qwen2.5-VL adapter, prompts
and parsers, with completions that name the GT); the mmdet run's refiner is a real detector.
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

from finers_mm.testing import REPO_ROOT

TINY_CONFIG = osp.join(REPO_ROOT, 'configs', 'finers', 'finers_tiny_test.py')
MMDET_REFINER = osp.join(REPO_ROOT, 'projects', 'mmdet_refiner')
PROJECT_CONFIG = osp.join(MMDET_REFINER, 'configs', 'finers_tiny_mmdet_refiner.py')
RTMDET_CONFIG = osp.join(MMDET_REFINER, 'configs', 'rtmdet_tiny_1cls.py')
BUILD_TOOL = osp.join(MMDET_REFINER, 'tools', 'build_tiny_detector.py')
METRIC_KEYS = ('gIoU', 'cIoU', 'MVQA', 'OVQA', 'invalid_rate', 'num_samples')


@pytest.fixture(scope='module')
def swap_config(tmp_path_factory):
    """``finers_tiny_test.py`` read through a child that only adds the imports of the scripted
    adapters and of the mmdet refiner's module: tools/test.py imports custom_imports when it reads
    the config file, before --cfg-options."""
    config = tmp_path_factory.mktemp('swap') / 'finers_tiny_test_swap.py'
    config.write_text(f"_base_ = '{TINY_CONFIG}'\n"
                      "custom_imports = dict(imports=['finers_mm', 'finers_mm.testing.scripted', "
                      "'projects.mmdet_refiner.mmdet_refiner'], allow_failed_imports=False)\n")
    return str(config)


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


def test_the_swap_config_is_finers_tiny_test_and_the_project_config_is_that_swap(swap_config):
    """The runs' config is ``finers_tiny_test.py`` plus imports; the project config
    ``finers_tiny_mmdet_refiner.py`` is ``finers_tiny_test.py`` with only the refiner block (and the
    import of its module) replaced: the --cfg-options below are the same swap."""
    tiny = Config.fromfile(TINY_CONFIG, import_custom_modules=False).to_dict()
    swap = Config.fromfile(swap_config, import_custom_modules=False).to_dict()
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


@pytest.mark.slow
@pytest.mark.parametrize('refiner', ['vlm', 'mmdet'])
def test_same_config_with_the_vlm_or_an_mmdet_refiner_gives_full_size_masks_and_valid_metrics(
        tiny_models, oracle, swap_config, rtmdet_checkpoint, tmp_path, refiner):
    out = tmp_path / 'preds.pkl'
    result = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'test.py'), swap_config, '--work-dir',
         str(tmp_path), '--out', str(out), '--cfg-options',
         f"model.explorer.vlm.pretrained={tiny_models['qwen2_5_vl']}",
         'model.explorer.vlm.type=OracleQwen25VLAdapter',
         f"model.explorer.vlm.oracle={oracle['file']}", 'model.explorer.vlm.role=explorer',
         f"model.mask_head.config={tiny_models['sam_config']}",
         f"model.mask_head.checkpoint={tiny_models['sam']}",
         *_refiner_options(refiner, tiny_models, oracle, rtmdet_checkpoint)],
        cwd=REPO_ROOT, env=dict(os.environ, OMP_NUM_THREADS='1'),
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
