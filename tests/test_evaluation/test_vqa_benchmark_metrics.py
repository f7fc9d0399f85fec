# Copyright (c) finers_mm contributors. All rights reserved.
"""The VQA benchmark metrics against hand-computed values: V* per subset, HR-Bench's cycle rule,
MME-RealWorld per task; an invalid answer counts as wrong; the authors' no-region rule."""
import pytest

from finers_mm.evaluation import HRBenchMetric, MMERealWorldMetric, VStarMetric

OPTIONS = {'A': 'red', 'B': 'blue', 'C': 'green', 'D': 'white'}


def _sample(benchmark, answer='B', pred='B', **extra):
    return dict(question_type='multiple_choice', options=OPTIONS, answer=answer,
                pred_answer=pred, pred_answer_stage='explorer', benchmark=benchmark,
                img_id='x', **extra)


def _run(metric, samples):
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def test_vstar_accuracy_per_subset_and_overall():
    d, r = dict(subset='direct_attributes'), dict(subset='relative_position')
    samples = [_sample(d), _sample(d, pred='The answer is B.'), _sample(d, pred='C'),
               _sample(r, answer='A', pred='A'), _sample(r, answer='A', pred='A or B')]
    metrics = _run(VStarMetric(), samples)
    assert metrics['accuracy'] == pytest.approx(60.0)
    assert metrics['accuracy_direct_attributes'] == pytest.approx(200 / 3)
    assert metrics['accuracy_relative_position'] == pytest.approx(50.0)
    # "A or B" names two options: wrong, and counted as naming no single option
    assert metrics['no_option_rate'] == pytest.approx(20.0)
    assert metrics['num_samples'] == 5 and metrics['invalid_rate'] == 0.0


def test_hrbench_averages_the_cycles_not_the_rows():
    def row(cycle, category, right):
        return _sample(dict(cycle_category=cycle, category=category, index=0),
                       pred='B' if right else 'D')
    samples = [row('c1', 'FSP', True), row('c1', 'FCP', True),          # c1: 100, FSP 100, FCP 100
               row('c2', 'FSP', True), row('c2', 'FCP', False),         # c2: 50, FSP 100, FCP 0
               row('c3', 'FSP', True), row('c3', 'FSP', False),         # c3: 25, FSP 50, FCP 0
               row('c3', 'FCP', False), row('c3', 'FCP', False)]
    metrics = _run(HRBenchMetric(), samples)
    assert metrics['accuracy_cycle_c1'] == 100.0
    assert metrics['accuracy_cycle_c2'] == 50.0
    assert metrics['accuracy_cycle_c3'] == 25.0
    assert metrics['accuracy'] == pytest.approx(175 / 3)  # not the row mean, 50
    assert metrics['accuracy_FSP'] == pytest.approx(250 / 3)
    assert metrics['accuracy_FCP'] == pytest.approx(100 / 3)


def test_mme_realworld_sums_per_task_and_subtask():
    def row(task, subtask, right, answer='E'):
        options = dict(OPTIONS, E='none of them')
        return dict(_sample(dict(task=task, subtask=subtask, category='c', question_id='q'),
                            answer=answer, pred=answer if right else 'A'), options=options)
    samples = [row('Perception', 'Remote Sensing', True),
               row('Perception', 'Remote Sensing', False),
               row('Perception', 'Monitoring', True), row('Reasoning', 'Monitoring', False)]
    metrics = _run(MMERealWorldMetric(), samples)
    assert metrics['accuracy'] == 50.0
    assert metrics['accuracy_Perception'] == pytest.approx(200 / 3)
    assert metrics['accuracy_Reasoning'] == 0.0
    assert metrics['accuracy_Perception/Remote_Sensing'] == 50.0
    assert metrics['accuracy_Perception/Monitoring'] == 100.0


def test_an_invalid_or_missing_answer_is_wrong_and_the_authors_rule_needs_a_region():
    b = dict(subset='direct_attributes')
    samples = [_sample(b, pred=''), _sample(b, pred=None, invalid_reason='explorer:no_answer'),
               _sample(b, pred='B', pred_region=None),
               _sample(b, pred='B', pred_region=[0, 0, 1, 1])]
    ours = _run(VStarMetric(protocol='finers_mm'), samples)
    assert ours['accuracy'] == 50.0 and ours['accuracy_authors'] == 25.0
    assert ours['no_option_rate'] == 50.0 and ours['invalid_rate'] == 25.0
    authors = _run(VStarMetric(protocol='authors'), samples)
    assert authors['accuracy'] == 25.0 and authors['accuracy_finers_mm'] == 50.0


def test_a_sample_without_benchmark_fields_names_the_fix():
    sample = _sample(None)
    sample.pop('benchmark')
    with pytest.raises(KeyError, match='meta_keys'):
        VStarMetric().process({}, [sample])
