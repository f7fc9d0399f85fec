# Copyright (c) finers_mm contributors. All rights reserved.
"""mmdet's ``RefSegMetric`` on FineRS predictions: :class:`FineRSRefSegMetric` against
:class:`FineRSMetric`, on random masks and through ``tools/test.py`` with
``configs/finers/finers_tiny_test_refseg.py``.

``FineRSRefSegMetric``'s cIoU is FineRSMetric's cIoU and its mIoU FineRSMetric's gIoU with
``empty_rule='zero'``, also with empty predictions (FineRSDetector's 0 instances). Plain
``RefSegMetric`` reads the GT from the metainfo's ``gt_masks`` (``PackFineRSInputs`` packs it when
``'gt_masks'`` is in ``meta_keys``) and agrees whenever every sample has one predicted mask; an
empty prediction makes it raise (mmdet 3.3), as the docs say.
"""
import glob
import json
import os
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmdet.evaluation import RefSegMetric
from mmdet.structures.mask import BitmapMasks
from mmengine.config import Config

from finers_mm.datasets.transforms.formatting import DEFAULT_META_KEYS
from finers_mm.evaluation import FineRSMetric, FineRSRefSegMetric
from finers_mm.registry import METRICS
from finers_mm.testing import REPO_ROOT
from finers_mm.testing.samples import make_sample, random_blobs

REFSEG_CONFIG = osp.join(REPO_ROOT, 'configs', 'finers', 'finers_tiny_test_refseg.py')
TINY_CONFIG = osp.join(REPO_ROOT, 'configs', 'finers', 'finers_tiny_test.py')


def with_gt_masks(sample):
    """The sample as ``PackFineRSInputs(meta_keys=(..., 'gt_masks'))`` packs it."""
    sample.set_metainfo(dict(gt_masks=sample.gt_instances.masks))
    return sample


def evaluate(metric, samples, as_dicts=True):
    metric.process({}, [s.to_dict() for s in samples] if as_dicts else samples)
    return {key: float(value) for key, value in metric.compute_metrics(metric.results).items()}


def random_samples(seed, ks):
    """Samples with random GT blobs and K = ks[i] random predicted masks (K = 0: empty)."""
    rng = np.random.default_rng(seed)
    samples = []
    for index, k in enumerate(ks):
        shape = (int(rng.integers(20, 90)), int(rng.integers(20, 90)))
        gt = random_blobs(rng, shape, 1)[0]
        pred = gt[None].copy() if index == 0 else random_blobs(rng, shape, k)
        samples.append(with_gt_masks(make_sample(gt, pred, ann_index=index)))
    return samples


@pytest.mark.parametrize('seed', range(4))
def test_refseg_equals_finers_metric_with_empty_and_multiple_predictions(seed):
    samples = random_samples(seed, [1, 0, 2, 1, 0, 1, 3, 1])
    finers = evaluate(FineRSMetric(empty_rule='zero'), samples)
    refseg = evaluate(FineRSRefSegMetric(), samples)
    assert set(refseg) == {'cIoU', 'mIoU'}  # RefSegMetric's names, no prefix
    assert refseg['cIoU'] == pytest.approx(finers['cIoU'], rel=1e-9)
    assert refseg['mIoU'] == pytest.approx(finers['gIoU'], rel=1e-9)
    # DetDataSample or dict; GT from gt_masks or (not packed) gt_instances.masks: same numbers
    plain_samples = random_samples(seed, [1, 0, 2, 1, 0, 1, 3, 1])
    for s in plain_samples:
        s.set_metainfo(dict(gt_masks=None))
    assert evaluate(FineRSRefSegMetric(), plain_samples, as_dicts=False) == refseg


def test_plain_refseg_metric_agrees_with_one_mask_per_sample_and_fails_on_empty_predictions():
    samples = random_samples(0, [1] * 6)
    finers = evaluate(FineRSMetric(), samples)
    plain = evaluate(RefSegMetric(), samples)
    assert plain['cIoU'] == pytest.approx(finers['cIoU'], rel=1e-6)  # RefSegMetric: float32
    assert plain['mIoU'] == pytest.approx(finers['gIoU'], rel=1e-6)
    assert evaluate(FineRSRefSegMetric(), samples) == pytest.approx(
        {'cIoU': finers['cIoU'], 'mIoU': finers['gIoU']}, rel=1e-9)

    samples = random_samples(1, [1, 0, 1])  # an empty prediction: (0, H, W) masks
    with pytest.raises(RuntimeError, match='reshape'):  # the docs' claim, for mmdet 3.3
        evaluate(RefSegMetric(), samples)
    # without the GT in the metainfo plain RefSegMetric cannot start (FineRSRefSegMetric can)
    with pytest.raises(KeyError, match='gt_masks'):
        RefSegMetric().process({}, [make_sample(np.ones((4, 4)), np.ones((1, 4, 4))).to_dict()])


def test_empty_gt_follows_refseg_zero_rule():
    gt, pred = np.zeros((6, 8), bool), np.zeros((1, 6, 8), bool)
    hit = np.zeros((6, 8), bool)
    hit[1:3, 2:5] = True
    samples = [with_gt_masks(make_sample(gt, pred, ann_index=0)),  # both empty: 0 / 0
               with_gt_masks(make_sample(gt, np.zeros((0, 6, 8)), ann_index=1)),  # K = 0 too
               with_gt_masks(make_sample(hit, hit[None], ann_index=2))]
    refseg = evaluate(FineRSRefSegMetric(), samples)
    zero = evaluate(FineRSMetric(empty_rule='zero'), samples)
    assert refseg == pytest.approx({'cIoU': zero['cIoU'], 'mIoU': zero['gIoU']}, rel=1e-9)
    assert refseg['mIoU'] == pytest.approx(100 / 3)
    # the FineRS default (LISA's rule) scores both-empty samples 1: only gIoU differs
    assert evaluate(FineRSMetric(), samples)['gIoU'] == pytest.approx(100.0)


def test_errors_and_registry():
    sample = make_sample(np.ones((4, 4), bool), np.ones((1, 4, 4), bool)).to_dict()
    sample['pred_instances']['masks'] = torch.ones(1, 4, 5, dtype=torch.bool)
    with pytest.raises(ValueError, match='not of the GT mask size'):
        FineRSRefSegMetric().process({}, [sample])
    sample = make_sample(np.ones((4, 4), bool), np.ones((1, 4, 4), bool)).to_dict()
    del sample['gt_instances']['masks']
    with pytest.raises(KeyError, match='LoadFineRSMask'):
        FineRSRefSegMetric().process({}, [sample])
    assert isinstance(METRICS.build(dict(type='FineRSRefSegMetric')), FineRSRefSegMetric)
    assert type(METRICS.build(dict(type='RefSegMetric'))) is RefSegMetric  # via mmdet's registry


def test_refseg_config_is_finers_tiny_test_with_gt_masks_and_both_metrics():
    tiny = Config.fromfile(TINY_CONFIG, import_custom_modules=False).to_dict()
    refseg = Config.fromfile(REFSEG_CONFIG, import_custom_modules=False).to_dict()
    assert refseg.pop('test_evaluator') == refseg.pop('val_evaluator') == [
        dict(type='FineRSMetric'), dict(type='FineRSRefSegMetric', metric=['cIoU', 'mIoU'])]
    tiny.pop('test_evaluator'), tiny.pop('val_evaluator')
    for name in ('test_dataloader', 'val_dataloader'):
        pack = refseg[name]['dataset']['pipeline'][-1]
        assert pack['type'] == 'PackFineRSInputs'
        assert tuple(pack.pop('meta_keys')) == DEFAULT_META_KEYS + ('gt_masks', )
    refseg['test_pipeline'][-1].pop('meta_keys')
    assert refseg == tiny


@pytest.mark.slow
@pytest.mark.parametrize('num_blank', [2, 0], ids=['empty_predictions', 'one_mask_each'])
def test_tools_test_refseg_metric_equals_finers_metric_on_the_chain(tiny_models, oracle, tmp_path,
                                                                    num_blank):
    """tools/test.py with finers_tiny_test_refseg.py, the VLMs scripted to name the GT except the
    explorer on ``num_blank`` questions (no region: 0 instances): FineRSRefSegMetric's cIoU / mIoU
    == FineRSMetric's cIoU / gIoU. Without empty predictions, plain RefSegMetric (added here,
    reading the packed ``gt_masks``) gives the same numbers too."""
    with open(oracle['file']) as f:
        blank = sorted(json.load(f))[:num_blank]
    extra = "dict(type='RefSegMetric', prefix='mmdet')" if num_blank == 0 else ''
    config = tmp_path / 'finers_tiny_test_refseg_oracle.py'
    config.write_text(
        f'_base_ = {REFSEG_CONFIG!r}\n'
        "custom_imports = dict(imports=['finers_mm', 'finers_mm.testing.scripted'], "
        'allow_failed_imports=False)\n'
        f"oracle = dict(pretrained={tiny_models['qwen2_5_vl']!r}, oracle={oracle['file']!r})\n"
        'model = dict(\n'
        "    explorer=dict(vlm=dict(oracle, type='BlankingOracleAdapter', role='explorer', "
        f'blank={blank!r})),\n'
        "    refiner=dict(vlm=dict(oracle, type='OracleQwen25VLAdapter', role='refiner')),\n"
        f"    mask_head=dict(config={tiny_models['sam_config']!r}, "
        f"checkpoint={tiny_models['sam']!r}))\n"
        f'test_evaluator = _base_.test_evaluator + [{extra}]\n')
    result = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'test.py'), str(config), '--work-dir',
         str(tmp_path), '--out', str(tmp_path / 'preds.pkl')],
        cwd=REPO_ROOT, env=dict(os.environ, OMP_NUM_THREADS='1'),
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    [log] = glob.glob(str(tmp_path / '*' / '*.json'))  # LoggerHook's metrics, full precision
    with open(log) as f:
        metrics = json.load(f)
    print(metrics)
    assert metrics['finers/num_samples'] == 12 and 0 < metrics['finers/cIoU'] < 100

    with open(tmp_path / 'preds.pkl', 'rb') as f:
        predictions = pickle.load(f)
    empty = [p for p in predictions if len(p['pred_instances']['masks']) == 0]
    assert sorted(p['question'] for p in empty) == blank
    for p in predictions:  # the packed GT travels in the metainfo (here into --out too)
        assert isinstance(p['gt_masks'], BitmapMasks) and p['gt_masks'].areas[0] > 0
    # no empty GT: FineRSMetric's gIoU is the same for any empty_rule
    assert metrics['cIoU'] == pytest.approx(metrics['finers/cIoU'], rel=1e-6, abs=1e-6)
    assert metrics['mIoU'] == pytest.approx(metrics['finers/gIoU'], rel=1e-6, abs=1e-6)
    if num_blank == 0:
        assert metrics['mmdet/cIoU'] == pytest.approx(metrics['finers/cIoU'], rel=1e-6)
        assert metrics['mmdet/mIoU'] == pytest.approx(metrics['finers/gIoU'], rel=1e-6)
