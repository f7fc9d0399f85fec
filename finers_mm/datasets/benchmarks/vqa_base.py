# Copyright (c) finers_mm contributors. All rights reserved.
"""What the high-resolution VQA benchmarks share: one multiple-choice data info per question.

Each benchmark dataset (:class:`~.VStarDataset`, :class:`~.HRBenchDataset`,
:class:`~.MMERealWorldDataset`) yields the data-info fields of
:class:`~finers_mm.datasets.FineRS4kDataset` for a multiple-choice question (``img_path``,
``img_id``, ``ann_index``, ``height`` / ``width`` when known at load, ``question``,
``question_type='multiple_choice'``, ``options`` ``{letter: text}``, ``options_raw``, ``answer``
(a letter), ``attribute``, ``area_percent``, ``size_bucket``, ``best_region``) so the FineRS
pipeline and chain run unchanged; there is no GT mask (these are VQA benchmarks), so their test
pipelines leave out ``LoadFineRSMask``. The benchmark's own grouping fields (subset, category,
cycle, task) travel in ``benchmark`` (a dict), which the VQA metrics read
(:mod:`finers_mm.evaluation.vqa_benchmarks`).

Bad input raises :class:`~finers_mm.datasets.FineRSAnnotationError` naming the file, the record
(its index in the file) and the fix.
"""
from typing import Dict, List, Optional, Sequence

from mmdet.datasets import BaseDetDataset

from finers_mm.structures.vocabulary import CATEGORY_NAME, MULTIPLE_CHOICE
from ..finers4k import FineRSAnnotationError
from .. import records

#: the data-info key of the benchmark's own fields (packed into the metainfo by the configs)
BENCHMARK_KEY = 'benchmark'


class VQABenchmarkDataset(BaseDetDataset):
    """Base of the VQA benchmark datasets: a multiple-choice data info per question.

    Args:
        **kwargs: :class:`mmdet.datasets.BaseDetDataset` arguments (``ann_file``, ``data_root``,
            ``data_prefix=dict(img=...)``, ``pipeline``, ``test_mode``, ``backend_args``, ...).
    """

    METAINFO = dict(classes=(CATEGORY_NAME, ), palette=[(220, 20, 60)])

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault('data_prefix', dict(img=''))
        kwargs['data_prefix'].setdefault('img', '')
        super().__init__(*args, **kwargs)

    def get_cat_ids(self, idx: int) -> List[int]:
        """Category ids of a sample: a VQA question has no annotated instance.

        Args:
            idx (int): sample index.

        Returns:
            list[int]: ``[]``.
        """
        return []

    def error(self, reason: str, detail: str, fix: str, index: Optional[int] = None,
              where: Optional[str] = None) -> FineRSAnnotationError:
        """The error of a bad file or record, naming ``where`` (default ``ann_file``).

        Args:
            reason (str): short name of the problem.
            detail (str): what is wrong, with the offending values.
            fix (str): what to change.
            index (int, optional): the record's index in the file.
            where (str, optional): the file to name instead of ``ann_file``.

        Returns:
            FineRSAnnotationError: to raise.
        """
        return FineRSAnnotationError(where or self.ann_file, reason, detail, fix, index=index)

    def image_size(self, img_path: str, index: int, where: Optional[str] = None) -> tuple:
        """(height, width) of an image file as displayed, from its header (the project's one
        image reader); a missing, unreadable or truncated file raises naming the record.

        Args:
            img_path (str): the image file.
            index (int): the record's index (for the message).
            where (str, optional): the annotation file to name.

        Returns:
            tuple[int, int]: (height, width).
        """
        if not hasattr(self, '_sizes'):
            self._sizes: Dict[str, tuple] = {}
        if img_path not in self._sizes:
            try:
                self._sizes[img_path] = records.read_image_size(img_path, self.backend_args)
            except records.RecordProblem as problem:
                raise self.error(problem.reason, problem.detail, problem.fix, index,
                                 where) from None
        return self._sizes[img_path]


def multiple_choice_info(*, img_path: str, img_id: str, ann_index: int, question: str,
                         options: Dict[str, str], answer: str, attribute: str,
                         benchmark: dict, height: Optional[int] = None,
                         width: Optional[int] = None) -> dict:
    """A FineRS-4k-shaped data info for one multiple-choice question.

    Args:
        img_path (str): the image (a file, or a lazy image URI the loader understands).
        img_id (str): the image's name in the benchmark.
        ann_index (int): the question's index in the benchmark's file.
        question (str): the question text (without the options).
        options (dict[str, str]): ``{letter: text}`` in the order asked.
        answer (str): the correct letter (one of ``options``).
        attribute (str): the group FineRS's per-attribute accuracy uses (the subset / category).
        benchmark (dict): the benchmark's own fields (subset, category, cycle, task, ids).
        height, width (int, optional): the displayed image size, when known at load.

    Returns:
        dict: the data info.
    """
    info = dict(
        img_path=img_path,
        img_id=img_id,
        ann_index=ann_index,
        question=question,
        question_type=MULTIPLE_CHOICE,
        options=dict(options),
        # the options as the prompts show them ("A. red"): the authors' prompt inserts str() of it
        options_raw=[f'{letter}. {text}' for letter, text in options.items()],
        answer=answer,
        attribute=attribute,
        area_percent=None,
        size_bucket=None,
        best_region=None)
    info[BENCHMARK_KEY] = dict(benchmark)
    if height is not None and width is not None:
        info['height'], info['width'] = int(height), int(width)
    return info


def check_answer_letter(answer, letters: Sequence[str]) -> Optional[str]:
    """The answer as one of ``letters`` (stripped, upper-cased), or None when it is not one.

    Args:
        answer: the record's answer field.
        letters (Sequence[str]): the question's option letters.

    Returns:
        str, optional: the letter.
    """
    if not isinstance(answer, str):
        return None
    letter = answer.strip().strip('()').strip().upper()
    return letter if letter in letters else None
