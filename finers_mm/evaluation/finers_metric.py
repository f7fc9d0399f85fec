# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRS metrics: :class:`FineRSMetric` (gIoU / cIoU per size bucket, MVQA / OVQA accuracy under
both answer rules, invalid outputs, exports; every figure in percent) and the bridge to mmdet's
``CocoMetric`` (:func:`dump_coco_gt`, :class:`FineRSCocoMetric`).

COCO view of FineRS: several questions share an image, so each SAMPLE (one record of the annotation
file) is its own COCO image, with id :func:`~finers_mm.evaluation.functional.coco_image_id`
(``ann_index + 1``) and one annotation (the target) of the single category ``'object'`` (id 1).
"""
import json
import logging
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmdet.evaluation import CocoMetric
from mmengine.dataset import BaseDataset
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement

from finers_mm.registry import METRICS
from finers_mm.structures.answers import ANSWER_RULES, answer_is_correct, check_answer_rule
from finers_mm.structures.masks import mask_bbox, rasterize_polygon
from finers_mm.structures.protocols import AUTHORS, DEFAULT_PROTOCOL, protocol_setting
from finers_mm.structures.vocabulary import (CATEGORY_NAME, MULTIPLE_CHOICE, OPEN, SEGMENTATION,
                                             SIZE_BUCKETS, check_stage)
from finers_mm.utils.fileio import write_atomic
from .functional import (COCO_CATEGORY_ID, check_empty_rule, coco_image_id, encode_mask,
                         mask_overlap, sample_iou, segmentation_scores, xyxy_to_xywh)

#: question type -> name of its accuracy in the metrics
QA_METRIC_NAMES = {MULTIPLE_CHOICE: 'MVQA', OPEN: 'OVQA'}


@METRICS.register_module()
class FineRSMetric(BaseMetric):
    """FineRS evaluation: segmentation over every sample, answer accuracy, invalid outputs.

    Every figure is in percent, as the paper prints them (its gIoU 55.1 is ``55.1``, not 0.551),
    except the ``num_*`` counts:

    - ``gIoU`` (mean per-sample mask IoU) and ``cIoU`` (total intersection / total union) over
      EVERY sample, whatever its question type, and per size bucket (``gIoU_S``, ``cIoU_S``,
      ``gIoU_XS``, ..., ``cIoU_XXS``). A sample's prediction is the union of its K predicted masks
      (K = 0: empty) against its full-resolution GT mask; an empty prediction scores IoU 0 against
      a non-empty GT. What a sample with empty GT AND empty prediction counts as is
      ``empty_rule`` (peers disagree; see :mod:`finers_mm.evaluation.functional`).
    - ``MVQA`` (multiple-choice samples) and ``OVQA`` (open samples) accuracy, overall and per
      attribute (``MVQA_colors``, ``OVQA_shape``, ...), by the configured ``answer_rule``
      (:func:`finers_mm.structures.answers.answer_is_correct` on the sample's ``pred_answer``),
      and ``MVQA_<other rule>`` / ``OVQA_<other rule>`` (overall only) by the other rule on the
      same answers: ``MVQA_authors`` / ``OVQA_authors`` when the rule is ``'finers_mm'``,
      ``MVQA_finers_mm`` / ``OVQA_finers_mm`` when it is ``'authors'``. Under either rule a
      multiple-choice answer is right only when it names exactly one option, the GT's
      (``"A B C D"`` is wrong; the authors' rule counts option letters, its fix (a)). The
      ``'authors'`` rule is their evaluation's: it also counts the answer wrong when the
      explorer gave no region (metainfo ``pred_region`` present and None), whichever stage
      answered. The ``'finers_mm'`` rule applies the refiner's 3-word limit on open answers to
      the refiner's answers only (``answer_stage``).
    - ``invalid_rate``: samples whose ``invalid_reason`` is not None; ``num_invalid_<stage>``: how
      many of them per reason prefix (the text before the first ``:``, e.g. ``explorer`` of
      ``'explorer:no_json'``). The full reasons are counted in the log.
    - ``num_samples``.

    A bucket, question type or attribute without samples has no key (never NaN); so has a
    segmentation score whose samples are all skipped by ``empty_rule='skip'``.

    mmdet's ``RefSegMetric`` on the same predictions: use
    :class:`~finers_mm.evaluation.FineRSRefSegMetric` (its ``cIoU`` is this ``cIoU``, its ``mIoU``
    this ``gIoU`` with ``empty_rule='zero'``). Plain ``RefSegMetric`` reads the GT from the
    metainfo's ``gt_masks`` (``'gt_masks'`` in ``PackFineRSInputs``' ``meta_keys``) and cannot
    score a sample without a predicted mask (K = 0: mmdet 3.3 raises ``RuntimeError: cannot
    reshape tensor of 0 elements``).

    Data samples (``DetDataSample`` or its ``to_dict()`` form, which mmengine's ``Evaluator``
    passes): ``pred_instances`` with ``masks`` (K, H, W) full-image masks, ``bboxes`` (K, 4) and
    ``scores`` (K, ); ``gt_instances.masks`` (``BitmapMasks`` (1, H, W)); metainfo
    ``question_type``, ``answer``, ``options``, ``attribute``, ``size_bucket``, ``img_id``,
    ``ann_index``, ``question``, ``pred_answer`` ('' or None: no answer), ``pred_answer_stage``
    (optional: the stage whose response ``pred_answer`` is), ``pred_region`` (optional: the
    explorer's region, None when it gave none) and ``invalid_reason``. ``process`` keeps only the
    per-sample intersection, union and areas, never the masks.

    Exports, when ``outfile_prefix`` is given (written atomically by the main process):

    - ``{outfile_prefix}.segm.json``: COCO results (``image_id`` from
      :func:`~finers_mm.evaluation.functional.coco_image_id`, ``category_id`` 1, ``bbox`` xywh,
      ``score``, ``segmentation`` RLE), in mmdet's ``.segm.json`` format; score it against
      :func:`dump_coco_gt`'s file with pycocotools, or use :class:`FineRSCocoMetric`;
    - ``{outfile_prefix}.answers.jsonl``: one line per sample with ``img_id``, ``ann_index``,
      ``question``, ``question_type``, ``attribute``, ``size_bucket``, ``answer`` (GT),
      ``pred_answer``, ``answer_stage`` (whose answer rule applied), ``correct`` (by the
      configured rule) and ``correct_<other rule>`` (both null for segmentation questions),
      ``iou`` (percent, as the metrics; null when skipped), ``intersection``, ``union``,
      ``pred_area``, ``gt_area`` (pixels) and ``invalid_reason``.

    Args:
        empty_rule (str): what a both-empty sample counts as: ``'one'`` (IoU 1, LISA's convention,
            default), ``'zero'`` (IoU 0, mmdet ``RefSegMetric``'s) or ``'skip'`` (left out).
            FineRS-4k has no empty GT, so its numbers do not depend on it.
        answer_stage (str, optional): whose answers the ``'finers_mm'`` rule judges:
            ``'refiner'`` (an open answer of more than 3 words is wrong, as in the authors' LPR
            reward) or ``'explorer'`` (no word limit) for every sample; None (default): each
            sample's ``pred_answer_stage`` (what ``FineRSDetector`` answered with), else the
            protocol's ``qa_stage``.
        outfile_prefix (str, optional): path prefix of the exports; None writes nothing.
        collect_device (str): ``'cpu'`` or ``'gpu'``, for collecting results across ranks.
        prefix (str, optional): prefix of the metric names; defaults to ``'finers'``.
        protocol (str): ``'finers_mm'`` (default) or ``'authors'``
            (:mod:`finers_mm.structures.protocols`); gives ``answer_rule`` and the fallback
            ``answer_stage`` when they are None.
        answer_rule (str, optional): the rule of ``MVQA`` / ``OVQA``: ``'finers_mm'`` or
            ``'authors'``; None: the protocol's.
    """

    default_prefix: Optional[str] = 'finers'

    def __init__(self,
                 empty_rule: str = 'one',
                 answer_stage: Optional[str] = None,
                 outfile_prefix: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 protocol: str = DEFAULT_PROTOCOL,
                 answer_rule: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.empty_rule = check_empty_rule(empty_rule)
        set_answer_settings(self, protocol, answer_rule, answer_stage)
        self.outfile_prefix = outfile_prefix

    def process(self, data_batch: Optional[dict], data_samples: Sequence[dict]) -> None:
        """Reduce each sample to its overlap counts and answer verdict (stored in ``results``).

        Args:
            data_batch (dict, optional): the batch from the dataloader (unused).
            data_samples (Sequence[dict]): model outputs with GT, as dicts
                (``DetDataSample.to_dict()``) or ``DetDataSample``.
        """
        for data_sample in data_samples:
            if isinstance(data_sample, BaseDataElement):
                data_sample = data_sample.to_dict()
            self.results.append(self._reduce(data_sample))

    def _reduce(self, sample: dict) -> dict:
        """The small per-sample record kept in ``results``."""
        pred = sample['pred_instances']
        pred_masks = _as_array(pred['masks'])
        try:
            gt_masks = _as_array(sample['gt_instances']['masks'])
            overlap = mask_overlap(pred_masks, gt_masks)
        except KeyError:
            raise KeyError(f'{_sample_name(sample)} has no gt_instances.masks: FineRSMetric needs '
                           'the GT mask; put LoadFineRSMask in the test pipeline') from None
        except ValueError as error:
            raise ValueError(f'{_sample_name(sample)}: {error}') from None
        question_type = sample['question_type']
        record = dict(
            img_id=sample.get('img_id'),
            ann_index=sample.get('ann_index'),
            question=sample.get('question'),
            question_type=question_type,
            attribute=sample.get('attribute'),
            size_bucket=sample.get('size_bucket'),
            answer=sample.get('answer'),
            pred_answer=sample.get('pred_answer'),
            answer_stage=None,
            correct=None,
            **{f'correct_{self.other_rule}': None},
            invalid_reason=sample.get('invalid_reason'),
            **dict(zip(('intersection', 'union', 'pred_area', 'gt_area'), overlap)))
        if question_type != SEGMENTATION:
            record['answer_stage'] = self._answer_stage(sample)
            verdicts = answer_verdicts(sample, record['answer_stage'])
            record['correct'] = verdicts[self.answer_rule]
            record[f'correct_{self.other_rule}'] = verdicts[self.other_rule]
        if self.outfile_prefix is not None:
            record['predictions'] = _coco_predictions(pred, pred_masks)
        return record

    def _answer_stage(self, sample: dict) -> str:
        """The stage whose answer the sample's ``pred_answer`` is, for the ``'finers_mm'`` rule."""
        if self.answer_stage is not None:
            return self.answer_stage
        stage = sample.get('pred_answer_stage')
        return self.default_answer_stage if stage is None else check_stage(stage)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Aggregate the per-sample records (and write the exports).

        Args:
            results (list[dict]): the records of every sample, from all ranks.

        Returns:
            dict: metric name -> value (class docstring); percent except the ``num_*``.
        """
        metrics: Dict[str, float] = {}
        groups = [('', results)] + [
            (f'_{bucket}', [r for r in results if r['size_bucket'] == bucket])
            for bucket in SIZE_BUCKETS]
        for suffix, group in groups:
            scores = segmentation_scores([r['intersection'] for r in group],
                                         [r['union'] for r in group], self.empty_rule)
            metrics.update({f'{name}{suffix}': value for name, value in scores.items()})
        for question_type, name in QA_METRIC_NAMES.items():
            records = [r for r in results if r['question_type'] == question_type]
            metrics.update(_accuracies(name, records))
            if records:
                metrics[f'{name}_{self.other_rule}'] = _percent(
                    [r[f'correct_{self.other_rule}'] for r in records])
        reasons = Counter(r['invalid_reason'] for r in results if r['invalid_reason'] is not None)
        if results:
            metrics['invalid_rate'] = 100.0 * sum(reasons.values()) / len(results)
        prefixes = Counter()
        for reason, count in reasons.items():
            prefixes[str(reason).split(':', 1)[0]] += count
        metrics.update({f'num_invalid_{p}': count for p, count in sorted(prefixes.items())})
        metrics['num_samples'] = len(results)
        if reasons:
            counts = ', '.join(f'{reason} x{count}' for reason, count in reasons.most_common())
            print_log(f'FineRSMetric invalid outputs: {counts}', logger='current',
                      level=logging.INFO)
        if self.outfile_prefix is not None:
            self._export(results)
        return metrics

    def _export(self, results: List[dict]) -> None:
        """Write ``{outfile_prefix}.segm.json`` and ``{outfile_prefix}.answers.jsonl``."""
        predictions = [
            dict(image_id=coco_image_id(r['ann_index']), category_id=COCO_CATEGORY_ID, **p)
            for r in results for p in r['predictions']]
        segm_file = f'{self.outfile_prefix}.segm.json'
        write_atomic(segm_file, json.dumps(predictions))
        fields = ('img_id', 'ann_index', 'question', 'question_type', 'attribute', 'size_bucket',
                  'answer', 'pred_answer', 'answer_stage', 'correct', f'correct_{self.other_rule}',
                  'intersection', 'union', 'pred_area', 'gt_area', 'invalid_reason')
        lines = []
        for r in results:
            line = {key: _jsonable(r[key]) for key in fields}
            iou = sample_iou(r['intersection'], r['union'], self.empty_rule)
            line['iou'] = None if iou is None else 100.0 * iou
            lines.append(json.dumps(line, ensure_ascii=False))
        answers_file = f'{self.outfile_prefix}.answers.jsonl'
        write_atomic(answers_file, ''.join(line + '\n' for line in lines))
        print_log(f'FineRSMetric wrote {segm_file} and {answers_file}', logger='current')


@METRICS.register_module()
class FineRSCocoMetric(CocoMetric):
    """mmdet's ``CocoMetric`` on FineRS samples, scored against :func:`dump_coco_gt`'s file.

    The one change: each data sample's ``img_id`` (the image file, shared by several questions)
    becomes the sample's COCO image id ``ann_index + 1`` before ``CocoMetric.process`` (on a copy:
    metrics evaluated beside it see the samples unchanged). Use it as::

        dump_coco_gt(test_dataset, 'work_dirs/finers4k_test_coco.json')   # once
        test_evaluator = [
            dict(type='FineRSMetric'),
            dict(type='FineRSCocoMetric', metric=['bbox', 'segm'],
                 ann_file='work_dirs/finers4k_test_coco.json')]

    Args:
        ann_file (str): the COCO GT file written by :func:`dump_coco_gt` for the same dataset.
        **kwargs: the other ``CocoMetric`` arguments.
    """

    def __init__(self, ann_file: str, **kwargs) -> None:
        if ann_file is None:
            raise ValueError('FineRSCocoMetric needs ann_file: write it with '
                             'finers_mm.evaluation.dump_coco_gt(dataset, out_file)')
        super().__init__(ann_file=ann_file, **kwargs)

    def process(self, data_batch: Optional[dict], data_samples: Sequence[dict]) -> None:
        """Map ``img_id`` to the COCO image id, then run ``CocoMetric.process``.

        Args:
            data_batch (dict, optional): the batch from the dataloader.
            data_samples (Sequence[dict]): model outputs with GT (dicts or ``DetDataSample``).
        """
        samples = [s.to_dict() if isinstance(s, BaseDataElement) else s for s in data_samples]
        super().process(data_batch,
                        [dict(s, img_id=coco_image_id(s['ann_index'])) for s in samples])


def dump_coco_gt(dataset_or_data_list: Union[BaseDataset, Sequence[dict]], out_file: str) -> None:
    """Write a COCO-format GT file of FineRS samples (for mmdet's ``CocoMetric``, pycocotools).

    Each sample is its own COCO image (id ``ann_index + 1``, ``file_name`` the sample's ``img_id``,
    several entries per image file when several questions share it) with one annotation of
    category 1 ``'object'``: ``segmentation`` the RLE of
    :func:`finers_mm.structures.masks.rasterize_polygon` (the FineRS raster; never the polygon,
    which pycocotools would rasterise differently), ``bbox`` its pixel extent in xywh, ``area`` its
    pixel count. The file is written atomically.

    Args:
        dataset_or_data_list (BaseDataset | Sequence[dict]): a :class:`FineRS4kDataset` (the
            samples after its filters) or its data infos (``img_id``, ``ann_index``, ``height``,
            ``width``, ``gt_polygon``).
        out_file (str): path of the JSON file.

    Raises:
        ValueError: two samples share an ``ann_index`` (their COCO ids would collide: one
            annotation file per export).
    """
    if isinstance(dataset_or_data_list, BaseDataset):
        dataset_or_data_list.full_init()
        infos = [dataset_or_data_list.get_data_info(i) for i in range(len(dataset_or_data_list))]
    else:
        infos = list(dataset_or_data_list)
    duplicates = [i for i, n in Counter(info['ann_index'] for info in infos).items() if n > 1]
    if duplicates:
        raise ValueError(f'ann_index {duplicates[:5]} appear more than once: COCO image ids '
                         '(ann_index + 1) must be unique; export one annotation file at a time')
    images, annotations = [], []
    for info in infos:
        image_id = coco_image_id(info['ann_index'])
        mask = rasterize_polygon(info['gt_polygon'], info['height'], info['width'])
        images.append(dict(id=image_id, file_name=info['img_id'], height=int(info['height']),
                           width=int(info['width'])))
        annotations.append(dict(id=image_id, image_id=image_id, category_id=COCO_CATEGORY_ID,
                                segmentation=encode_mask(mask), bbox=xyxy_to_xywh(mask_bbox(mask)),
                                area=int(np.count_nonzero(mask)), iscrowd=0))
    content = dict(
        info=dict(description='FineRS ground truth: one COCO image per sample (id ann_index + 1)'),
        images=images, annotations=annotations,
        categories=[dict(id=COCO_CATEGORY_ID, name=CATEGORY_NAME)])
    write_atomic(out_file, json.dumps(content))


def set_answer_settings(metric: BaseMetric, protocol: str, answer_rule: Optional[str],
                        answer_stage: Optional[str]) -> None:
    """Give a QA metric its answer settings, by the protocol unless written: ``protocol``,
    ``answer_rule`` (the rule scored), ``other_rule`` (reported beside it), ``answer_stage`` (None:
    each sample's own) and ``default_answer_stage`` (the protocol's QA stage).

    Raises:
        ValueError: an unknown answer rule or stage.
    """
    metric.protocol = protocol
    metric.answer_rule = check_answer_rule(
        protocol_setting(protocol, 'answer_rule') if answer_rule is None else answer_rule)
    metric.other_rule = next(rule for rule in ANSWER_RULES if rule != metric.answer_rule)
    metric.answer_stage = None if answer_stage is None else check_stage(answer_stage)
    metric.default_answer_stage = check_stage(protocol_setting(protocol, 'qa_stage'))


def answer_verdicts(sample: dict, answer_stage: str) -> Dict[str, bool]:
    """Whether a sample's ``pred_answer`` answers its question, by each answer rule.

    The one reading of a QA answer for every metric (FineRSMetric and the VQA benchmark metrics):
    :func:`~finers_mm.structures.answers.answer_is_correct` under each rule, and the authors'
    evaluation also counts the answer wrong when GSE gave no region.

    Args:
        sample (dict): the data sample as a dict: ``question_type``, ``answer``, ``pred_answer``,
            ``options`` and, when the chain reports it, ``pred_region``.
        answer_stage (str): ``'explorer'`` or ``'refiner'``: whose response ``pred_answer`` is.

    Returns:
        dict[str, bool]: rule (``'finers_mm'``, ``'authors'``) -> verdict.

    Raises:
        ValueError: naming the sample, when its ground truth names no single option.
    """
    verdicts = {}
    for rule in ANSWER_RULES:
        try:
            verdicts[rule] = answer_is_correct(
                sample.get('pred_answer'), sample.get('answer'), sample['question_type'],
                sample.get('options'), stage=answer_stage, rule=rule)
        except ValueError as error:
            raise ValueError(f'{_sample_name(sample)}: {error}') from None
    # the authors' evaluation counts the QA wrong when GSE gave no box
    if _explorer_gave_no_region(sample):
        verdicts[AUTHORS] = False
    return verdicts


def _accuracies(name: str, records: List[dict]) -> Dict[str, float]:
    """``{name: %, name_<attribute>: %}`` of the records' ``correct``; empty without records."""
    if not records:
        return {}
    by_attribute = defaultdict(list)
    for r in records:
        if r['attribute'] is not None:
            by_attribute[r['attribute']].append(r['correct'])
    accuracies = {name: _percent([r['correct'] for r in records])}
    accuracies.update({f'{name}_{attribute}': _percent(correct)
                       for attribute, correct in sorted(by_attribute.items())})
    return accuracies


def _percent(verdicts: Sequence[bool]) -> float:
    """The share of True verdicts, in percent."""
    return 100.0 * float(np.mean(verdicts))


def _explorer_gave_no_region(sample: dict) -> bool:
    """The chain reported that the explorer gave no region (``pred_region`` present and None);
    a sample from a model that does not report one (no key) never counts as such."""
    return 'pred_region' in sample and sample['pred_region'] is None


def _as_array(masks) -> np.ndarray:
    """Masks as a numpy array: tensors (any device), mmdet ``BitmapMasks`` and arrays."""
    if isinstance(masks, torch.Tensor):
        return masks.detach().cpu().numpy()
    if hasattr(masks, 'to_ndarray'):
        return masks.to_ndarray()
    return np.asarray(masks)


def _coco_predictions(pred: dict, pred_masks: np.ndarray) -> List[dict]:
    """The sample's instances as COCO results without ``image_id`` / ``category_id``."""
    bboxes, scores = _as_array(pred['bboxes']), _as_array(pred['scores'])
    return [dict(bbox=xyxy_to_xywh(bboxes[k]), score=float(scores[k]),
                 segmentation=encode_mask(pred_masks[k])) for k in range(len(pred_masks))]


def _jsonable(value):
    """numpy scalars -> Python; everything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def _sample_name(sample: dict) -> str:
    """``'sample img_id=..., ann_index=...'`` for error messages."""
    return f"sample img_id={sample.get('img_id')!r}, ann_index={sample.get('ann_index')!r}"
