# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRSMetric against brute-force numpy, the QA rules, the exports and mmdet's CocoMetric."""
import json
import os

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope

from finers_mm.evaluation import FineRSCocoMetric, FineRSMetric, dump_coco_gt
from finers_mm.registry import METRICS
from finers_mm.structures.masks import rasterize_polygon
from finers_mm.testing.samples import make_sample

BUCKETS = ('S', 'XS', 'XXS')


def run_metric(samples, as_dicts=True, **kwargs):
    metric = FineRSMetric(**kwargs)
    metric.process({}, [s.to_dict() for s in samples] if as_dicts else samples)
    return metric.compute_metrics(metric.results), metric


def brute_force(gts, preds, buckets, rule):
    """gIoU / cIoU in percent per bucket, written with plain loops."""
    out = {}
    for name in ('',) + BUCKETS:
        ious, inter_sum, union_sum = [], 0, 0
        for gt, pred_stack, bucket in zip(gts, preds, buckets):
            if name and bucket != name:
                continue
            pred = np.zeros(gt.shape, bool)
            for m in pred_stack:
                pred = np.logical_or(pred, m)
            inter = int(np.logical_and(pred, gt).sum())
            union = int(np.logical_or(pred, gt).sum())
            inter_sum += inter
            union_sum += union
            if union == 0:
                if rule == 'skip':
                    continue
                ious.append(1.0 if rule == 'one' else 0.0)
            else:
                ious.append(inter / union)
        if ious:
            suffix = f'_{name}' if name else ''
            out['gIoU' + suffix] = 100 * sum(ious) / len(ious)
            out['cIoU' + suffix] = 100 * inter_sum / union_sum
    return out


def random_case(seed):
    """Samples of varied size, buckets, K = 0 / 1 / 2, empty GT with empty and non-empty preds."""
    rng = np.random.default_rng(seed)
    gts, preds, buckets = [], [], []
    for i in range(12):
        h, w = int(rng.integers(8, 20)), int(rng.integers(8, 20))
        gt = rng.random((h, w)) < 0.3
        k = [1, 2, 0][i % 3]
        pred = rng.random((k, h, w)) < 0.3
        if i in (4, 9):  # empty GT, empty prediction
            gt, pred = np.zeros((h, w), bool), np.zeros((0, h, w), bool)
        if i == 7:  # empty GT, non-empty prediction
            gt = np.zeros((h, w), bool)
        gts.append(gt)
        preds.append(pred)
        buckets.append(BUCKETS[i % 3])
    samples = [make_sample(g, p, size_bucket=b, ann_index=i)
               for i, (g, p, b) in enumerate(zip(gts, preds, buckets))]
    return samples, gts, preds, buckets


@pytest.mark.parametrize('rule', ['one', 'zero', 'skip'])
def test_segmentation_matches_brute_force(rule):
    samples, gts, preds, buckets = random_case(seed=3)
    metrics, _ = run_metric(samples, empty_rule=rule)
    expected = brute_force(gts, preds, buckets, rule)
    assert set(expected) <= set(metrics)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value), key
    assert metrics['num_samples'] == 12


def test_rules_differ_and_dict_form_equals_data_sample_form():
    samples = random_case(seed=5)[0]
    one, _ = run_metric(samples, empty_rule='one')
    zero, _ = run_metric(samples, empty_rule='zero')
    skip, _ = run_metric(samples, empty_rule='skip')
    assert one['gIoU'] > skip['gIoU'] > zero['gIoU']
    assert one['cIoU'] == zero['cIoU'] == skip['cIoU']  # both-empty samples add 0 / 0
    assert run_metric(samples, as_dicts=False, empty_rule='one')[0] == one


def test_all_both_empty_follows_the_rule_and_absent_buckets_are_omitted():
    samples = [make_sample(np.zeros((6, 7)), np.zeros((0, 6, 7)), size_bucket='XS', ann_index=i)
               for i in range(2)]
    one = run_metric(samples, empty_rule='one')[0]
    assert (one['gIoU'], one['cIoU'], one['gIoU_XS'], one['cIoU_XS']) == (100, 100, 100, 100)
    assert not {'gIoU_S', 'cIoU_S', 'gIoU_XXS', 'MVQA', 'OVQA'} & set(one)
    zero = run_metric(samples, empty_rule='zero')[0]
    assert (zero['gIoU'], zero['cIoU']) == (0, 0)
    skip = run_metric(samples, empty_rule='skip')[0]
    assert not any(key.startswith(('gIoU', 'cIoU')) for key in skip)
    assert skip['num_samples'] == 2 and skip['invalid_rate'] == 0


@pytest.mark.parametrize('rule', ['one', 'zero', 'skip'])
def test_empty_prediction_on_present_target_is_zero(rule):
    gt = np.zeros((5, 5), bool)
    gt[1:3, 1:3] = True
    metrics = run_metric([make_sample(gt, np.zeros((0, 5, 5)))], empty_rule=rule)[0]
    assert metrics['gIoU'] == 0 and metrics['cIoU'] == 0


def test_results_hold_no_masks():
    _, metric = run_metric(random_case(seed=1)[0], outfile_prefix=None)
    for record in metric.results:
        assert not any(isinstance(v, (np.ndarray, torch.Tensor)) for v in record.values())
        assert set(record) >= {'intersection', 'union', 'pred_area', 'gt_area'}


def qa_samples():
    gt = np.ones((4, 4), bool)
    options = {'A': 'red', 'B': 'white', 'C': 'blue', 'D': 'black'}
    mc = [('B', 'colors'), ('A B C D', 'colors'), ('It is a red car', 'colors'), ('', 'colors'),
          ('white', 'shape'), ('The answer is B', 'shape'), (None, 'shape'), ('C', 'shape')]
    opened = [('red car', 'red car', 'colors'), ('the red cars', 'red car', 'colors'),
              ('dark red sports car', 'dark red sports car', 'shape'), ('blue', 'red car', 'shape')]
    samples = [make_sample(gt, gt[None], 'multiple_choice', answer='B', pred_answer=p,
                           options=options, attribute=a, ann_index=100 + i)
               for i, (p, a) in enumerate(mc)]
    samples += [make_sample(gt, gt[None], 'open', answer=g, pred_answer=p, attribute=a,
                            ann_index=110 + i) for i, (p, g, a) in enumerate(opened)]
    samples.append(make_sample(gt, gt[None], pred_answer='No object found', ann_index=120))
    return samples


def test_qa_accuracy_overall_and_per_attribute():
    metrics = run_metric(qa_samples())[0]
    # multiple choice: right are 'B', 'white' (B's text), 'The answer is B'
    assert metrics['MVQA'] == pytest.approx(100 * 3 / 8)
    assert metrics['MVQA_colors'] == pytest.approx(25.0)
    assert metrics['MVQA_shape'] == pytest.approx(50.0)
    # open at the refiner stage: an answer of more than 3 words is wrong, even when it is the GT
    assert metrics['OVQA'] == pytest.approx(50.0)
    assert metrics['OVQA_colors'] == pytest.approx(100.0)
    assert metrics['OVQA_shape'] == pytest.approx(0.0)
    explorer = run_metric(qa_samples(), answer_stage='explorer')[0]
    assert explorer['OVQA_shape'] == pytest.approx(50.0)
    assert 'MVQA_others' not in metrics


def test_qa_accuracy_under_both_answer_rules_from_the_same_predictions():
    """MVQA / OVQA by the configured rule, MVQA_<other> / OVQA_<other> by the other one."""
    finers = run_metric(qa_samples())[0]
    authors = run_metric(qa_samples(), protocol='authors')[0]
    # the authors' rule reads 'It is a red car' as naming A (wrong for B) and not the option text
    # 'white': right are 'B', 'The answer is B'; their open rule: any one word close to the GT
    # ('red car' is two words: no single word reaches 0.8), no word limit
    assert finers['MVQA_authors'] == authors['MVQA'] == pytest.approx(100 * 2 / 8)
    assert authors['MVQA_finers_mm'] == finers['MVQA'] == pytest.approx(100 * 3 / 8)
    assert finers['OVQA_authors'] == authors['OVQA'] == pytest.approx(0.0)
    assert finers['OVQA'] == pytest.approx(50.0)
    # the authors' protocol answers from the explorer: finers_mm's refiner word limit is off, so
    # 'dark red sports car' (4 words) is right there
    assert authors['OVQA_finers_mm'] == pytest.approx(75.0)
    # per attribute by the configured rule: shape loses 'white' (B's text) under the authors'
    assert (authors['MVQA_colors'], authors['MVQA_shape']) == (25.0, 25.0)
    assert (finers['MVQA_colors'], finers['MVQA_shape']) == (25.0, 50.0)
    assert not {'MVQA_finers_mm', 'OVQA_finers_mm'} & set(finers)
    assert not {'MVQA_authors', 'OVQA_authors'} & set(authors)
    assert not any(key.startswith(('MVQA_authors_', 'OVQA_authors_')) for key in finers)
    # an explicit answer_rule beats the protocol's
    assert run_metric(qa_samples(), protocol='authors', answer_rule='finers_mm',
                      answer_stage='refiner')[0] == finers
    with pytest.raises(ValueError, match='protocol'):
        FineRSMetric(protocol='paper')
    with pytest.raises(ValueError, match='answer rule'):
        FineRSMetric(answer_rule='paper')


def _open_sample(pred_answer, ann_index, answer='red', **meta):
    gt = np.ones((4, 4), bool)
    sample = make_sample(gt, gt[None], 'open', answer=answer, pred_answer=pred_answer,
                         ann_index=ann_index)
    sample.set_metainfo(meta)
    return sample


def test_authors_rule_counts_the_answer_wrong_without_an_explorer_region():
    region = np.array([0, 0, 2, 2], np.float32)
    samples = [_open_sample('red', 0, pred_region=region),
               _open_sample('red', 1, pred_region=None),  # the explorer gave no region
               _open_sample('red', 2)]  # a model that reports no region: not judged on it
    metrics, metric = run_metric(samples, protocol='authors')
    assert [r['correct'] for r in metric.results] == [True, False, True]
    assert [r['correct_finers_mm'] for r in metric.results] == [True, True, True]
    assert metrics['OVQA'] == pytest.approx(200 / 3) and metrics['OVQA_finers_mm'] == 100.0


def test_the_word_limit_follows_the_stage_that_answered():
    long, gt = 'the dark red sports car', 'dark red sports car'  # 5 words: over the limit
    samples = [_open_sample(long, 0, gt, pred_answer_stage='explorer'),
               _open_sample(long, 1, gt, pred_answer_stage='refiner'),
               _open_sample(long, 2, gt)]
    by_sample = [r['correct'] for r in run_metric(samples)[1].results]
    assert by_sample == [True, False, False]  # no stage reported: the protocol's qa_stage
    assert [r['correct'] for r in run_metric(samples, protocol='authors',
                                             answer_rule='finers_mm')[1].results] == [
        True, False, True]  # the authors' qa_stage is the explorer
    assert [r['correct'] for r in run_metric(samples, answer_stage='explorer')[1].results] == [
        True, True, True]  # an explicit answer_stage beats the samples'
    assert [r['answer_stage'] for r in run_metric(samples)[1].results] == [
        'explorer', 'refiner', 'refiner']


def test_every_figure_is_in_percent():
    """One unit: percent (0.5 of the pixels right is 50, not 0.5), counts aside."""
    gt = np.zeros((4, 4), bool)
    gt[:2] = True
    pred = np.zeros((4, 4), bool)
    pred[:1] = True  # IoU 0.5
    samples = [make_sample(gt, pred[None], ann_index=0, invalid_reason='refiner:bad_json',
                           size_bucket='XXS'),
               make_sample(gt, pred[None], ann_index=1, size_bucket='XXS')] + qa_samples()
    metrics = run_metric(samples)[0]
    assert metrics['gIoU_XXS'] == pytest.approx(50.0) and metrics['cIoU_XXS'] == 50.0
    counts = {'num_samples', 'num_invalid_refiner'}
    assert set(metrics) >= counts
    for name, value in metrics.items():
        if name not in counts:
            assert 0.0 <= value <= 100.0, name
    assert metrics['invalid_rate'] == pytest.approx(100 / len(samples))


def test_invalid_rate_and_counts_per_prefix():
    gt = np.ones((3, 3), bool)
    reasons = [None, 'explorer:no_json', 'refiner:missing_key:bbox', 'refiner:bad_json', None]
    samples = [make_sample(gt, np.zeros((0, 3, 3)) if r else gt[None], invalid_reason=r,
                           ann_index=i) for i, r in enumerate(reasons)]
    metrics = run_metric(samples)[0]
    assert metrics['invalid_rate'] == pytest.approx(60.0)
    assert metrics['num_invalid_explorer'] == 1 and metrics['num_invalid_refiner'] == 2
    assert metrics['gIoU'] == pytest.approx(40.0)


def test_bad_inputs_name_the_sample():
    sample = make_sample(np.ones((4, 4)), np.ones((1, 4, 4)), ann_index=7).to_dict()
    sample['pred_instances']['masks'] = torch.ones(1, 8, 8, dtype=torch.bool)
    with pytest.raises(ValueError, match='ann_index=7.*not of the GT mask size'):
        FineRSMetric().process({}, [sample])
    del sample['gt_instances']['masks']
    with pytest.raises(KeyError, match='LoadFineRSMask'):
        FineRSMetric().process({}, [sample])
    with pytest.raises(ValueError, match='empty_rule'):
        FineRSMetric(empty_rule='nan')


def test_exports(tmp_path):
    samples = random_case(seed=2)[0] + qa_samples()
    prefix = str(tmp_path / 'out' / 'finers')
    metrics, _ = run_metric(samples, outfile_prefix=prefix)
    results = json.loads(open(prefix + '.segm.json').read())
    by_image = {}
    for r in results:
        by_image.setdefault(r['image_id'], []).append(r)
        assert r['category_id'] == 1
    for s in samples:
        pred = s.pred_instances
        exported = by_image.get(s.ann_index + 1, [])
        assert len(exported) == len(pred)
        for k, r in enumerate(exported):
            np.testing.assert_array_equal(mask_util.decode(r['segmentation']).astype(bool),
                                          pred.masks[k].numpy())
            x1, y1, x2, y2 = pred.bboxes[k].tolist()
            assert r['bbox'] == pytest.approx([x1, y1, x2 - x1, y2 - y1])
            assert r['score'] == pytest.approx(float(pred.scores[k]))
    lines = [json.loads(line) for line in open(prefix + '.answers.jsonl', encoding='utf-8')]
    assert len(lines) == len(samples) == metrics['num_samples']
    assert {'img_id', 'ann_index', 'question', 'question_type', 'answer', 'pred_answer',
            'answer_stage', 'correct', 'correct_authors', 'iou', 'invalid_reason'} <= set(lines[0])
    mc = [line for line in lines if line['question_type'] == 'multiple_choice']
    assert [line['correct'] for line in mc] == [True, False, False, False, True, True, False,
                                                False]
    assert [line['correct_authors'] for line in mc] == [True, False, False, False, False, True,
                                                        False, False]
    for line, sample in zip(lines, samples):  # the per-sample IoU in percent, as the metrics
        union = line['union']
        expected = 100.0 * line['intersection'] / union if union else 100.0  # empty_rule 'one'
        assert line['iou'] == pytest.approx(expected)
    assert all(line['correct'] is None for line in lines if line['question_type'] == 'segmentation')
    assert sorted(os.listdir(tmp_path / 'out')) == ['finers.answers.jsonl', 'finers.segm.json']


def polygon_case(shift):
    """Data infos with polygons, and predictions equal to their raster shifted by ``shift`` px."""
    rng = np.random.default_rng(0)
    infos, samples = [], []
    for i in range(6):
        h, w = 60, 80
        cx, cy = rng.uniform(20, 60), rng.uniform(20, 40)
        angles = np.sort(rng.uniform(0, 2 * np.pi, 7))
        radius = rng.uniform(6, 12, 7)
        polygon = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], 1)
        img_id = f'img{i // 2}.jpg'  # two questions per image
        infos.append(dict(img_id=img_id, ann_index=i, height=h, width=w,
                          gt_polygon=polygon.astype(np.float32)))
        gt = rasterize_polygon(polygon, h, w)
        pred = np.roll(gt, shift, axis=1)
        samples.append(make_sample(gt, pred[None], img_id=img_id, ann_index=i))
    return infos, samples


def test_dump_coco_gt_writes_the_finers_raster(tmp_path):
    infos, _ = polygon_case(shift=0)
    out_file = str(tmp_path / 'gt.json')
    dump_coco_gt(infos, out_file)
    coco = json.load(open(out_file))
    assert [image['id'] for image in coco['images']] == [1, 2, 3, 4, 5, 6]
    assert [image['file_name'] for image in coco['images']][:2] == ['img0.jpg', 'img0.jpg']
    for info, ann in zip(infos, coco['annotations']):
        assert isinstance(ann['segmentation'], dict)
        mask = mask_util.decode(ann['segmentation']).astype(bool)
        np.testing.assert_array_equal(
            mask, rasterize_polygon(info['gt_polygon'], info['height'], info['width']))
        assert ann['area'] == mask.sum() and ann['image_id'] == info['ann_index'] + 1
    with pytest.raises(ValueError, match='ann_index'):
        dump_coco_gt(infos + infos[:1], str(tmp_path / 'dup.json'))


@pytest.mark.parametrize('shift,perfect', [(0, True), (3, False)])
def test_mmdet_coco_metric_on_the_gt_export(tmp_path, shift, perfect):
    init_default_scope('finers_mm')
    infos, samples = polygon_case(shift)
    ann_file = str(tmp_path / 'gt.json')
    dump_coco_gt(infos, ann_file)
    evaluator = Evaluator([
        METRICS.build(dict(type='FineRSMetric')),
        METRICS.build(dict(type='FineRSCocoMetric', metric=['bbox', 'segm'], ann_file=ann_file))])
    evaluator.dataset_meta = dict(classes=('object', ))
    evaluator.process(samples)
    metrics = evaluator.evaluate(len(samples))
    assert isinstance(evaluator.metrics[1], FineRSCocoMetric)
    dicts = [s.to_dict() for s in samples]
    evaluator.metrics[1].process({}, dicts)
    assert dicts[0]['img_id'] == 'img0.jpg'  # mapped on a copy: FineRSMetric beside it unaffected
    if perfect:
        assert metrics['coco/segm_mAP'] == 1.0 and metrics['coco/bbox_mAP'] == 1.0
        assert metrics['finers/gIoU'] == 100.0
    else:
        assert metrics['coco/segm_mAP'] < 1.0 and metrics['finers/gIoU'] < 100.0
