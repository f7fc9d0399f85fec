# Copyright (c) finers_mm contributors. All rights reserved.
"""Accuracy on the high-resolution VQA benchmarks, aggregated as each benchmark's own code does.

Every metric reads a sample's answer the one way the project reads a multiple-choice answer
(:func:`~finers_mm.evaluation.finers_metric.answer_verdicts`: the protocol's answer rule of
:func:`~finers_mm.structures.answers.answer_is_correct` on the chain's ``pred_answer``, whose
stage is ``pred_answer_stage``; under the authors' rule an answer is also wrong when GSE gave no
region). **An invalid answer counts as wrong**: a response that names no single option (none,
several, an unparsable completion, an empty answer) is never correct; ``no_option_rate`` reports
their share and ``invalid_rate`` the share of samples the chain flagged (``invalid_reason``).
Every accuracy is in percent; ``accuracy_<other rule>`` is the overall accuracy under the other
answer rule.

- :class:`VStarMetric` (V*): accuracy over all questions and per subset
  (``accuracy_direct_attributes``, ``accuracy_relative_position``), as V*'s
  ``vstar_bench_eval.py`` prints them (which, unlike the FineRS paper's setting, picks the option
  by likelihood).
- :class:`HRBenchMetric` (HR-Bench 4K / 8K): HR-Bench's ``HRBenchDataset.evaluate``: the rows
  grouped by ``cycle_category``; in each cycle the accuracy of all rows and of each category
  (FSP, FCP); ``accuracy`` / ``accuracy_FSP`` / ``accuracy_FCP`` are the means over the cycles
  (their ``avg`` rows: a category's sum over cycles divided by the number of cycles), and
  ``accuracy_cycle_<c>`` each cycle's.
- :class:`MMERealWorldMetric` (MME-RealWorld): letter exact match; accuracy over all questions,
  per ``Task`` and per ``Task/Subtask`` (spaces written ``_``), counts summed as their
  ``eval_your_results.py`` does.
"""
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.structures import BaseDataElement

from finers_mm.registry import METRICS
from finers_mm.structures.answers import extract_option_letter
from finers_mm.structures.protocols import DEFAULT_PROTOCOL
from finers_mm.structures.vocabulary import check_stage
from finers_mm.utils.protocol_config import register_protocol_type
from .finers_metric import answer_verdicts, set_answer_settings

#: the data-info / metainfo key of a benchmark's own fields (``finers_mm.datasets.benchmarks``)
BENCHMARK_KEY = 'benchmark'


def percent(verdicts: Sequence[bool]) -> float:
    """The share of True verdicts in percent (0 for none).

    Args:
        verdicts (Sequence[bool]): the verdicts.

    Returns:
        float: percent.
    """
    return 100.0 * float(np.mean(verdicts)) if len(verdicts) else 0.0


class VQABenchmarkMetric(BaseMetric):
    """Base of the VQA benchmark metrics: per-sample verdicts, the aggregation in subclasses.

    Args:
        answer_stage (str, optional): whose answers the ``'finers_mm'`` rule judges
            (``'explorer'`` / ``'refiner'``); None (default): each sample's ``pred_answer_stage``,
            else the protocol's ``qa_stage``.
        protocol (str): ``'finers_mm'`` or ``'authors'``; gives ``answer_rule`` when it is None.
        answer_rule (str, optional): ``'finers_mm'`` or ``'authors'``; None: the protocol's.
        collect_device (str): ``'cpu'`` or ``'gpu'``.
        prefix (str, optional): prefix of the metric names; defaults to the class's.
    """

    default_prefix: Optional[str] = 'vqa'

    def __init__(self, answer_stage: Optional[str] = None, protocol: str = DEFAULT_PROTOCOL,
                 answer_rule: Optional[str] = None, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        set_answer_settings(self, protocol, answer_rule, answer_stage)

    def process(self, data_batch: Optional[dict], data_samples: Sequence) -> None:
        """Keep each sample's verdicts and benchmark fields.

        Args:
            data_batch (dict, optional): unused.
            data_samples (Sequence): model outputs (``DetDataSample`` or its ``to_dict()``).
        """
        for sample in data_samples:
            if isinstance(sample, BaseDataElement):
                sample = sample.to_dict()
            if BENCHMARK_KEY not in sample:
                raise KeyError(
                    f"sample img_id={sample.get('img_id')!r}: no '{BENCHMARK_KEY}' in the metainfo;"
                    f" add '{BENCHMARK_KEY}' to PackFineRSInputs' meta_keys (see "
                    'configs/_base_/datasets/vqa_benchmarks.py)')
            stage = self.answer_stage or sample.get('pred_answer_stage') \
                or self.default_answer_stage
            verdicts = answer_verdicts(sample, check_stage(stage))
            self.results.append(dict(
                benchmark=sample[BENCHMARK_KEY],
                correct=verdicts[self.answer_rule],
                correct_other=verdicts[self.other_rule],
                named_option=extract_option_letter(sample.get('pred_answer'),
                                                   sample.get('options')) is not None,
                invalid=sample.get('invalid_reason') is not None))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """The benchmark's accuracies, the other rule's overall accuracy and the answer counts.

        Args:
            results (list[dict]): the per-sample records of every rank.

        Returns:
            dict: metric name -> value (percent, except ``num_samples``).
        """
        metrics = self.accuracies(results, 'correct')
        metrics[f'accuracy_{self.other_rule}'] = self.accuracies(results,
                                                                 'correct_other')['accuracy']
        metrics['no_option_rate'] = percent([not r['named_option'] for r in results])
        metrics['invalid_rate'] = percent([r['invalid'] for r in results])
        metrics['num_samples'] = len(results)
        return metrics

    def accuracies(self, results: List[dict], key: str) -> Dict[str, float]:
        """The benchmark's accuracies of the verdicts ``r[key]`` (``accuracy`` and its groups).

        Args:
            results (list[dict]): the per-sample records.
            key (str): ``'correct'`` or ``'correct_other'``.

        Returns:
            dict: name -> percent.
        """
        raise NotImplementedError


def _grouped(results: List[dict], field: str, key: str) -> Dict[str, List[bool]]:
    groups = defaultdict(list)
    for r in results:
        groups[str(r['benchmark'][field])].append(r[key])
    return dict(sorted(groups.items()))


@METRICS.register_module()
class VStarMetric(VQABenchmarkMetric):
    """V* accuracy over all questions and per subset (module docstring)."""

    default_prefix: Optional[str] = 'vstar'

    def accuracies(self, results: List[dict], key: str) -> Dict[str, float]:
        metrics = {'accuracy': percent([r[key] for r in results])}
        for subset, verdicts in _grouped(results, 'subset', key).items():
            metrics[f'accuracy_{subset}'] = percent(verdicts)
        return metrics


@METRICS.register_module()
class HRBenchMetric(VQABenchmarkMetric):
    """HR-Bench accuracy: per option-order cycle, then averaged over cycles (module docstring)."""

    default_prefix: Optional[str] = 'hrbench'

    def accuracies(self, results: List[dict], key: str) -> Dict[str, float]:
        cycles = defaultdict(list)
        for r in results:
            cycles[str(r['benchmark']['cycle_category'])].append(r)
        metrics, sums = {}, defaultdict(float)
        for cycle, rows in sorted(cycles.items()):
            metrics[f'accuracy_cycle_{cycle}'] = percent([r[key] for r in rows])
            sums['accuracy'] += metrics[f'accuracy_cycle_{cycle}']
            for category, verdicts in _grouped(rows, 'category', key).items():
                sums[f'accuracy_{category}'] += percent(verdicts)
        # HR-Bench's avg rows: each sum over the cycles divided by the number of cycles
        metrics.update({name: total / len(cycles) for name, total in sums.items()})
        return metrics


@METRICS.register_module()
class MMERealWorldMetric(VQABenchmarkMetric):
    """MME-RealWorld letter exact match, overall, per Task and per Task/Subtask."""

    default_prefix: Optional[str] = 'mme_realworld'

    def accuracies(self, results: List[dict], key: str) -> Dict[str, float]:
        metrics = {'accuracy': percent([r[key] for r in results])}
        tasks, subtasks = defaultdict(list), defaultdict(list)
        for r in results:
            task, subtask = r['benchmark']['task'], r['benchmark']['subtask']
            tasks[task].append(r[key])
            subtasks[f'{task}/{subtask}'].append(r[key])
        for name, verdicts in sorted(tasks.items()) + sorted(subtasks.items()):
            metrics[f"accuracy_{name.replace(' ', '_')}"] = percent(verdicts)
        return metrics


for _name in ('VStarMetric', 'HRBenchMetric', 'MMERealWorldMetric'):
    register_protocol_type(_name)
