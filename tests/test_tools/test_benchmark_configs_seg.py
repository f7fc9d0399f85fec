# Copyright (c) finers_mm contributors. All rights reserved.
"""The segmentation benchmarks' configs (configs/benchmarks/{reasonseg,refcoco}*) and
``tools/test.py`` on them: the tiny chain with VLMs naming the GT box (the oracle) and a mask head
filling its box prompt (:class:`~finers_mm.testing.seg_benchmarks.BoxFillMaskHead`), so every
predicted mask is the GT's box and the metrics are worked out by hand from the fixture.
"""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from finers_mm.registry import DATASETS
from finers_mm.testing import REPO_ROOT
from finers_mm.testing.seg_benchmarks import (rectangle, write_questions_oracle, write_refcoco,
                                              write_reasonseg_folder, write_reasonseg_parquet)
from finers_mm.utils.run_config import load_config

BENCHMARKS = osp.join(REPO_ROOT, 'configs', 'benchmarks')
SIZE = (160, 120)
#: an L-shaped target: LISA's raster covers x 10..30 for y 10..20 and x 10..20 for y 21..30
L_SHAPE = [[10, 10], [30, 10], [30, 20], [20, 20], [20, 30], [10, 30]]
L_AREA, L_BOX_AREA = 21 * 11 + 11 * 10, 21 * 21

# LISA's folder layout. a: a 31x21 target with a 6x6 ignore hole (the box fills it: IoU 1 only
# because ignore pixels are left out); b: a 16x16 target and a flag covering the image (dropped);
# c: the L (box IoU 341 / 441); d: a 10x10 target the explorer is blanked on (no mask: IoU 0)
REASONSEG_IMAGES = [
    dict(name='a', size=SIZE, text=['the red cup', 'a second query'], is_sentence=False,
         shapes=[dict(label='target', points=rectangle(10, 10, 40, 30)),
                 dict(label='ignore', points=rectangle(20, 15, 25, 20))]),
    dict(name='b', size=SIZE, text=['what would you drink from?'], is_sentence=True,
         shapes=[dict(label='flag', points=rectangle(0, 0, 159, 119)),
                 dict(label='target', points=rectangle(50, 50, 65, 65))]),
    dict(name='c', size=SIZE, text=['which part holds the handle?'], is_sentence=True,
         shapes=[dict(label='target', points=L_SHAPE)]),
    dict(name='d', size=SIZE, text=['the blue lid'], is_sentence=False,
         shapes=[dict(label='target', points=rectangle(100, 80, 109, 89))]),
]
# (intersection, union) of each sample with the box-filled prediction, ignore pixels out
EXPECTED = dict(a=(31 * 21 - 36, 31 * 21 - 36), b=(256, 256), c=(L_AREA, L_BOX_AREA), d=(0, 100))


def lisa(pairs):
    """gIoU / cIoU in percent by LISA's formulas (with its epsilons)."""
    inter = np.array([p[0] for p in pairs], float)
    union = np.array([p[1] for p in pairs], float)
    return dict(gIoU=100 * np.mean(inter / (union + 1e-5) + (union == 0)),
                cIoU=100 * inter.sum() / (union.sum() + 1e-10))


@pytest.mark.parametrize('name', ['reasonseg_finers_qwen7b.py', 'reasonseg_finers_tiny.py'])
def test_reasonseg_configs(name):
    cfg = Config.fromfile(osp.join(BENCHMARKS, name))
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        assert loader.dataset.type == 'ReasonSegDataset'
        assert loader.dataset.data_prefix == dict(img='val/') and loader.dataset.queries == 'first'
        assert [t['type'] for t in loader.dataset.pipeline] == [
            'LoadFineRSImage', 'LoadReasonSegMask', 'ExplorerView', 'PackFineRSInputs']
    assert cfg.test_evaluator == cfg.val_evaluator == dict(type='ReasonSegMetric')
    assert cfg.model.type == 'FineRSDetector'
    # the split and the query types are keys
    cfg = load_config(osp.join(BENCHMARKS, name), {
        'test_dataloader.dataset.data_prefix.img': 'test/',
        'test_dataloader.dataset.query_types': 'long'})
    assert cfg.test_dataloader.dataset.data_prefix.img == 'test/'
    assert cfg.test_dataloader.dataset.query_types == 'long'


@pytest.mark.parametrize('name, ann_file, split_file', [
    ('refcoco_finers_qwen7b.py', 'refcoco/instances.json', 'refcoco/refs(unc).p'),
    ('refcocoplus_finers_qwen7b.py', 'refcoco+/instances.json', 'refcoco+/refs(unc).p'),
    ('refcocog_finers_qwen7b.py', 'refcocog/instances.json', 'refcocog/refs(umd).p'),
    ('refcoco_finers_tiny.py', 'refcoco/instances.json', 'refcoco/refs(unc).p'),
])
def test_refcoco_configs_use_mmdets_dataset_and_metric(name, ann_file, split_file):
    cfg = Config.fromfile(osp.join(BENCHMARKS, name))
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        assert loader.dataset.type == 'RefCocoQuestions'
        inner = loader.dataset.dataset
        assert inner.type == 'RefCocoDataset'  # mmdet's own class, no copy
        assert (inner.ann_file, inner.split_file, inner.split) == (ann_file, split_file, 'val')
        assert inner.text_mode == 'select_first'
        assert [t['type'] for t in inner.pipeline] == [
            'LoadFineRSImage', 'LoadAnnotations', 'RefExpressionToQuestion', 'ExplorerView',
            'PackFineRSInputs']
        assert 'gt_masks' in inner.pipeline[-1]['meta_keys']
    assert cfg.test_evaluator == dict(type='FineRSRefSegMetric', metric=['cIoU', 'mIoU'])
    assert cfg.model.type == 'FineRSDetector'


def _run_test_tool(tmp_path, base, tiny_models, oracle, blank, cfg_options=()):
    """tools/test.py with ``base`` and the oracle VLMs, the box-filling mask head; the metrics."""
    config = tmp_path / 'oracle_config.py'
    config.write_text(
        f'_base_ = {base!r}\n'
        "custom_imports = dict(imports=['finers_mm', 'finers_mm.testing.scripted', "
        "'finers_mm.testing.seg_benchmarks'], allow_failed_imports=False)\n"
        f"oracle = dict(pretrained={tiny_models['qwen2_5_vl']!r}, oracle={oracle!r})\n"
        'model = dict(\n'
        "    explorer=dict(vlm=dict(oracle, type='BlankingOracleAdapter', role='explorer', "
        f'blank={blank!r})),\n'
        "    refiner=dict(vlm=dict(oracle, type='OracleQwen25VLAdapter', role='refiner')),\n"
        "    mask_head=dict(_delete_=True, type='BoxFillMaskHead'))\n")
    command = [sys.executable, osp.join(REPO_ROOT, 'tools', 'test.py'), str(config),
               '--work-dir', str(tmp_path / 'work')]
    if cfg_options:
        command += ['--cfg-options', *cfg_options]
    result = subprocess.run(command, cwd=REPO_ROOT, env=dict(os.environ, OMP_NUM_THREADS='1'),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    [log] = glob.glob(str(tmp_path / 'work' / '*' / '*.json'))
    with open(log) as f:
        return json.load(f)


def _oracle_of(dataset, path):
    """The oracle JSON of a built dataset's samples (GT box from the pipeline's gt_bbox)."""
    samples = []
    for index in range(len(dataset)):
        sample = dataset[index]['data_samples']
        height, width = sample.ori_shape
        samples.append(dict(question=sample.question, width=width, height=height,
                            gt_bbox=sample.gt_instances.bboxes[0].numpy()))
    return write_questions_oracle(samples, str(path))


@pytest.mark.slow
def test_tools_test_reasonseg_folder_layout_by_hand(tiny_models, tmp_path):
    """LISA's layout through tools/test.py: gIoU / cIoU overall and per query type equal the
    values worked out from the fixture (ignore hole left out, flag dropped, an empty prediction)."""
    root = tmp_path / 'ReasonSeg'
    write_reasonseg_folder(str(root / 'val'), REASONSEG_IMAGES)
    base = osp.join(BENCHMARKS, 'reasonseg_finers_tiny.py')
    options = {'test_dataloader.dataset.data_root': str(root) + '/'}
    init_default_scope('finers_mm')
    dataset = DATASETS.build(load_config(base, options).test_dataloader.dataset)
    oracle = _oracle_of(dataset, tmp_path / 'oracle.json')
    metrics = _run_test_tool(tmp_path, base, tiny_models, oracle, ['the blue lid'],
                             [f'{k}={v}' for k, v in options.items()])
    print(metrics)
    expected = lisa(EXPECTED.values())
    assert metrics['reasonseg/num_samples'] == 4
    assert metrics['reasonseg/empty_predictions'] == pytest.approx(25.0)
    assert metrics['reasonseg/gIoU'] == pytest.approx(expected['gIoU'], rel=1e-6)
    assert metrics['reasonseg/cIoU'] == pytest.approx(expected['cIoU'], rel=1e-6)
    for query_type, names in (('short', 'ad'), ('long', 'bc')):
        expected = lisa([EXPECTED[n] for n in names])
        assert metrics[f'reasonseg/{query_type}_gIoU'] == pytest.approx(expected['gIoU'], rel=1e-6)
        assert metrics[f'reasonseg/{query_type}_cIoU'] == pytest.approx(expected['cIoU'], rel=1e-6)


@pytest.mark.slow
def test_tools_test_reasonseg_parquet_mirror_by_hand(tiny_models, tmp_path):
    """The hub mirror's parquet (no ignore region): the L target's box scores 341 / 441, the
    rectangle's 1, a blanked question 0."""
    masks = []
    for shape in (L_SHAPE, rectangle(40, 40, 59, 49), rectangle(5, 60, 14, 69)):
        from finers_mm.datasets.benchmarks import lisa_label_map
        masks.append(lisa_label_map([dict(label='target', points=np.array(shape, float))],
                                    SIZE[1], SIZE[0]) == 1)
    path = write_reasonseg_parquet(
        str(tmp_path / 'ReasonSeg_val' / 'data' / 'test-00000-of-00001.parquet'),
        [dict(size=SIZE, text=t, mask=m) for t, m in zip(['the l', 'the bar', 'the dot'], masks)])
    base = osp.join(BENCHMARKS, 'reasonseg_finers_tiny.py')
    cfg = load_config(base)
    dataset_cfg = dict(cfg.reasonseg_parquet_dataset, ann_file=osp.dirname(path))
    init_default_scope('finers_mm')
    oracle = _oracle_of(DATASETS.build(dataset_cfg), tmp_path / 'oracle.json')
    (tmp_path / 'parquet_base.py').write_text(
        f'_base_ = {base!r}\n'
        f"test_dataloader = dict(dataset=dict(_base_.reasonseg_parquet_dataset, _delete_=True, "
        f"ann_file={osp.dirname(path)!r}))\n")
    metrics = _run_test_tool(tmp_path, str(tmp_path / 'parquet_base.py'), tiny_models, oracle,
                             ['the dot'])
    expected = lisa([(L_AREA, L_BOX_AREA), (200, 200), (0, 100)])
    assert metrics['reasonseg/num_samples'] == 3
    assert metrics['reasonseg/gIoU'] == pytest.approx(expected['gIoU'], rel=1e-6)
    assert metrics['reasonseg/cIoU'] == pytest.approx(expected['cIoU'], rel=1e-6)
    assert 'reasonseg/short_gIoU' not in metrics  # the mirror has no is_sentence


@pytest.mark.slow
def test_tools_test_refcoco_by_hand(tiny_models, tmp_path):
    """RefCOCO's files through mmdet's RefCocoDataset and RefSegMetric: one question per
    expression; box-filled masks against pycocotools' rasters of the fixture's polygons."""
    root = str(tmp_path / 'coco') + '/'
    write_refcoco(root, 'refcoco', [
        dict(id=1, size=SIZE, refs=[
            dict(polygon=[10, 10, 40, 10, 40, 30, 10, 30], sentences=['Left box'], split='val'),
            dict(polygon=[60, 20, 100, 20, 60, 60], sentences=['the triangle'], split='val')]),
        dict(id=2, size=SIZE, refs=[
            dict(polygon=[5, 5, 20, 5, 20, 20, 5, 20], sentences=['small square'], split='val'),
            dict(polygon=[5, 5, 9, 5, 9, 9], sentences=['not in val'], split='testA')]),
    ], 'refs(unc).p')
    base = osp.join(BENCHMARKS, 'refcoco_finers_tiny.py')
    options = {'test_dataloader.dataset.dataset.data_root': root}
    init_default_scope('finers_mm')
    dataset = DATASETS.build(load_config(base, options).test_dataloader.dataset)
    assert sorted(dataset.get_data_info(i)['text'] for i in range(len(dataset))) == [
        'left box', 'small square', 'the triangle']
    pairs = []
    for index in range(len(dataset)):  # pycocotools' raster against its own box, by hand
        sample = dataset[index]['data_samples']
        gt = sample.gt_masks.masks[0].astype(bool)
        x1, y1, x2, y2 = sample.gt_instances.bboxes[0].numpy().astype(int)
        pairs.append((int(gt.sum()) if sample.question != 'small square' else 0,
                      (x2 - x1) * (y2 - y1) if sample.question != 'small square'
                      else int(gt.sum())))
    oracle = _oracle_of(dataset, tmp_path / 'oracle.json')
    metrics = _run_test_tool(tmp_path, base, tiny_models, oracle, ['small square'],
                             [f'{k}={v}' for k, v in options.items()])
    inter, union = np.array(pairs, float).T
    assert metrics['cIoU'] == pytest.approx(100 * inter.sum() / union.sum(), rel=1e-5)
    assert metrics['mIoU'] == pytest.approx(100 * np.mean(inter / union), rel=1e-5)
    assert 0 < metrics['mIoU'] < 100
