# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRS-4k: one sample per (image, question) record of the authors' annotation JSON.

The annotation file is read unchanged::

    {"annotations": [
        {"image_path": "0001.jpg",             # relative to data_prefix['img']
         "Q": "What color is the car next to the tree?",
         "A": "B",
         "Q-type": "option",                    # "referring" | "option" | "reasoning"
         "options": ["red", "white", ...],      # multiple choice only: list, dict or one string
         "points": [[x, y], [x, y], ...],       # ONE polygon, original pixels as displayed
         "attribute": "colors",
         "area_percent": 0.0123,                # mask area / image area * 100
         "best_region": [x1, y1, x2, y2]},      # optional (retrospective region search)
        ...]}

**Frame.** ``points``, ``best_region``, ``height`` / ``width`` and every prediction are in the
image's ORIGINAL pixels *as displayed*: its EXIF orientation applied, as a photo viewer, PIL's
``ImageOps.exif_transpose`` and the authors' ``cv2.imread`` show it (a camera JPEG of 4000x3000
stored pixels tagged "rotate 90 degrees" is 3000x4000 here, and so is its polygon's frame). The
header size and ``LoadFineRSImage``'s pixels come from :mod:`finers_mm.datasets.image_files`, one
reader for both, so they always agree.

Loading is cheap: the image size comes from the image header (no decode), the file's last bytes
say whether it is complete (a truncated JPEG or PNG is refused here instead of mid-training or
mid-evaluation; see :mod:`~finers_mm.datasets.image_files` for the cost and the limits), and the
mask is NOT rasterised; ``LoadFineRSMask`` does that in the pipeline with
:mod:`finers_mm.structures.masks`. Each image is read once per load, however many records share
it. The checks of one record's fields are in :mod:`finers_mm.datasets.records`.

Bad input fails early with one :class:`FineRSAnnotationError` naming the annotation file, the record
index and the fix, or, with ``on_bad_record='skip'``, the bad records are dropped and counted in one
warning. The record rules:

- required keys (:attr:`FineRS4kDataset.REQUIRED_KEYS`) present and not null; ``Q`` a non-empty
  string; ``A`` a string or a number; ``attribute`` a string; ``Q-type`` one of
  ``QTYPE_FROM_ANNOTATION``; a multiple-choice record has non-empty ``options``; ``area_percent`` a
  finite number >= 0; ``best_region``, when present and not null, four finite numbers with
  ``x2 > x1`` and ``y2 > y1``;
- the image exists, its header is readable and the file is complete (not truncated);
- ``points`` is ONE polygon ``[[x, y], ...]`` of finite numbers with at least 3 vertices;
- degenerate polygon: every vertex lies on one line (within ``1e-6`` px of the line through the
  first vertex and the vertex farthest from it; coincident vertices included). The authors' raster
  of such a polygon is only its outline, a line or a point, which is not an object. A thin polygon
  whose *truncated* vertices happen to be collinear still encloses area and is kept: its 1-px raster
  is the GT the authors evaluate against;
- polygon outside the image: a vertex lies more than ``out_of_image_tol`` pixels outside the
  continuous image extent ``[0, W] x [0, H]`` (usually the wrong image, or points in a resized
  frame), or the polygon's raster has no pixel inside the image. Within the tolerance the raster is
  clipped to the image, as ``cv2.fillPoly`` does.

File-level rules (always raise, naming the file, why it is empty and the fix): the annotation file
has at least one record, at least one record survives ``on_bad_record='skip'``, and at least one
survives the ``filter_cfg`` question-type filter. Records repeating an earlier one (same
``image_path``, ``Q`` and ``points``) are kept (the file is read as given) and named, with their
indices, in one warning: each copy counts in training and in the metrics.
"""
import json
import logging
import os.path as osp
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from mmdet.datasets import BaseDetDataset
from mmengine.fileio import get_local_path
from mmengine.logging import print_log

from finers_mm.registry import DATASETS
from finers_mm.structures.vocabulary import (CATEGORY_NAME, QUESTION_TYPES, SIZE_THRESHOLDS,
                                             size_bucket)
from . import records

_SKIP_HINT = "or pass on_bad_record='skip' to drop such records"


class FineRSAnnotationError(ValueError):
    """A FineRS-4k annotation file or record that cannot be used.

    Args:
        ann_file (str): the annotation file.
        reason (str): short name of the problem (the key of the skip-mode counts).
        detail (str): what is wrong, with the offending values.
        fix (str): what to change.
        index (int, optional): the record's index in ``annotations``; None for a file-level problem.
    """

    def __init__(self, ann_file: str, reason: str, detail: str, fix: str,
                 index: Optional[int] = None) -> None:
        self.ann_file = ann_file
        self.reason = reason
        self.index = index
        where = ann_file if index is None else f'{ann_file}, record {index}'
        super().__init__(f'{where}: {reason}: {detail}. Fix: {fix}')


@DATASETS.register_module()
class FineRS4kDataset(BaseDetDataset):
    """FineRS-4k reasoning-segmentation dataset: one sample per (image, question) record.

    Each data info holds: ``img_path``, ``img_id`` (the record's ``image_path``), ``ann_index``
    (the record's index in the JSON), ``height``, ``width``, ``question``, ``question_type``
    (``'segmentation'`` | ``'multiple_choice'`` | ``'open'``), ``options`` (``{letter: text}``,
    ``{}`` if none), ``answer``, ``attribute``, ``area_percent``, ``size_bucket`` (``'S'`` |
    ``'XS'`` | ``'XXS'``), ``gt_polygon`` ((N, 2) float32, original pixels), ``gt_bbox`` ((4,)
    float32, the exact extent of the authors' raster, mmdet's ``[x1, y1, x2 + 1, y2 + 1]``) and
    ``best_region`` ((4,) float32 or None). Validation rules: see the module docstring.

    Question-type filter, mmdet-style in ``filter_cfg``:
    ``filter_cfg=dict(question_types=('segmentation', ))`` keeps only those types. Unlike mmdet's
    ``filter_empty_gt`` it also applies in test mode: it selects the task, it does not clean data.

    Args:
        size_thresholds (dict, optional): ``s_min`` / ``xxs_max`` of
            :func:`~finers_mm.structures.vocabulary.size_bucket` on ``area_percent``. Defaults to
            ``dict(s_min=0.055, xxs_max=0.017)`` (the paper's).
        on_bad_record (str): ``'raise'`` (default): the first bad record raises
            :class:`FineRSAnnotationError`; ``'skip'``: bad records are dropped and counted per
            reason in one warning (and in :attr:`skipped_records`). File-level problems always
            raise, and so does skipping every record.
        out_of_image_tol (float): how far (px) a polygon vertex may lie outside the image extent
            ``[0, W] x [0, H]``. Defaults to 2.0.
        **kwargs: :class:`mmdet.datasets.BaseDetDataset` arguments (``ann_file``, ``data_root``,
            ``data_prefix=dict(img=...)``, ``filter_cfg``, ``pipeline``, ``backend_args``, ...).
    """

    METAINFO = dict(classes=(CATEGORY_NAME, ), palette=[(220, 20, 60)])
    #: keys every record must have (not null); ``options`` is checked per question type
    REQUIRED_KEYS = ('image_path', 'Q', 'A', 'Q-type', 'points', 'attribute', 'area_percent')
    BAD_RECORD_MODES = ('raise', 'skip')

    def __init__(self,
                 *args,
                 size_thresholds: Optional[Dict[str, float]] = None,
                 on_bad_record: str = 'raise',
                 out_of_image_tol: float = 2.0,
                 **kwargs) -> None:
        if on_bad_record not in self.BAD_RECORD_MODES:
            raise ValueError(f'on_bad_record must be one of {self.BAD_RECORD_MODES}, '
                             f'got {on_bad_record!r}')
        self.size_thresholds = _check_size_thresholds(size_thresholds)
        self.on_bad_record = on_bad_record
        self.out_of_image_tol = float(out_of_image_tol)
        self.skipped_records: Dict[str, List[int]] = {}
        kwargs.setdefault('data_prefix', dict(img=''))
        if 'img' not in kwargs['data_prefix']:
            raise ValueError("FineRS4kDataset needs data_prefix=dict(img='<images folder>'), got "
                             f"{kwargs['data_prefix']!r}")
        kwargs['filter_cfg'] = _check_filter_cfg(kwargs.get('filter_cfg'))
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Read the annotation file and parse every record into a data info.

        Returns:
            list[dict]: one data info per valid record, in file order.

        Raises:
            FineRSAnnotationError: a file-level problem, or a bad record when
                ``on_bad_record='raise'``.
        """
        raw_records = self._load_records()
        if not raw_records:
            raise FineRSAnnotationError(
                self.ann_file, 'no records', '"annotations" is an empty list',
                'add records, or point ann_file at the split that holds them (check data_root '
                'and ann_file in the dataset config)')
        self._image_sizes: Dict[str, Union[Tuple[int, int], records.RecordProblem]] = {}
        data_list, skipped = [], defaultdict(list)
        try:
            for index, record in enumerate(raw_records):
                try:
                    data_list.append(
                        self.parse_data_info(dict(raw_record=record, ann_index=index)))
                except FineRSAnnotationError as error:
                    if self.on_bad_record == 'raise':
                        raise
                    skipped[error.reason].append(index)
        finally:
            del self._image_sizes
        self.skipped_records = dict(skipped)
        if skipped and not data_list:
            raise FineRSAnnotationError(
                self.ann_file, 'no usable records',
                f'every record was skipped ({len(raw_records)} of {len(raw_records)}, '
                f'on_bad_record=\'skip\'): {self._skipped_summary()}',
                "fix the records; set on_bad_record='raise' to see the first problem and its fix")
        if skipped:
            self._warn_skipped(len(raw_records))
        self._warn_duplicates(data_list, raw_records)
        return data_list

    def parse_data_info(self, raw_data_info: dict) -> dict:
        """Validate one record and turn it into a data info.

        Args:
            raw_data_info (dict): ``raw_record`` (the record as in the JSON) and ``ann_index`` (its
                index there).

        Returns:
            dict: the data info (keys: see the class docstring).

        Raises:
            FineRSAnnotationError: the record breaks a rule of the module docstring.
        """
        record, index = raw_data_info['raw_record'], raw_data_info['ann_index']
        try:
            return self._parse_record(record, index)
        except records.RecordProblem as problem:
            raise FineRSAnnotationError(
                self.ann_file, problem.reason, f'{records.describe(record)}{problem.detail}',
                f'{problem.fix}, {_SKIP_HINT}', index=index) from None

    def filter_data(self) -> List[dict]:
        """Keep the samples whose question type is in ``filter_cfg['question_types']``.

        Returns:
            list[dict]: the kept data infos (all of them without that filter).

        Raises:
            FineRSAnnotationError: the filter keeps no sample.
        """
        if not self.filter_cfg:
            return self.data_list
        keep = self.filter_cfg['question_types']
        kept = [info for info in self.data_list if info['question_type'] in keep]
        if not kept:
            found = Counter(info['question_type'] for info in self.data_list)
            raise FineRSAnnotationError(
                self.ann_file, 'no records of the selected question types',
                f'filter_cfg keeps question_types {list(keep)}, but the file\'s records are '
                f'{dict(sorted(found.items()))} (records per question type)',
                'add those types to filter_cfg question_types, or point ann_file at a file that '
                'holds them')
        return kept

    def get_cat_ids(self, idx: int) -> List[int]:
        """Category ids of a sample: every sample is one object of the single class ``'object'``.

        Args:
            idx (int): sample index.

        Returns:
            list[int]: ``[0]``.
        """
        return [0]

    def _load_records(self) -> list:
        """Load the JSON and return its ``annotations`` list (file-level checks)."""
        try:
            with get_local_path(self.ann_file, backend_args=self.backend_args) as local_path:
                with open(local_path, encoding='utf-8') as f:
                    content = json.load(f)
        except FileNotFoundError as error:
            raise FineRSAnnotationError(
                self.ann_file, 'missing annotation file', str(error),
                'check data_root and ann_file in the dataset config') from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise FineRSAnnotationError(
                self.ann_file, 'malformed JSON', str(error),
                'repair the file (it must be UTF-8 JSON), e.g. re-export it') from None
        if not isinstance(content, dict) or not isinstance(content.get('annotations'), list):
            if not isinstance(content, dict):
                found = f'the top level is a {type(content).__name__}'
            elif 'annotations' in content:
                found = f'"annotations" is a {type(content["annotations"]).__name__}, not a list'
            else:
                found = f'the top level has the keys {sorted(content)[:5]}, no "annotations"'
            raise FineRSAnnotationError(
                self.ann_file, 'not a FineRS-4k annotation file', found,
                'give the authors\' format {"annotations": [{...}, ...]}')
        return content['annotations']

    def _parse_record(self, record, index: int) -> dict:
        """The checks and fields of one record, in the order cheap -> image header -> bounds."""
        if not isinstance(record, dict):
            raise records.RecordProblem('not a record', f'got a {type(record).__name__}',
                                        'each entry of "annotations" must be a JSON object')
        records.check_required_keys(record, self.REQUIRED_KEYS)
        image_path = records.parse_image_path(record['image_path'])
        question_type = records.parse_question_type(record['Q-type'])
        polygon = records.parse_polygon(record['points'])
        info = dict(
            img_id=image_path,
            ann_index=index,
            question=records.parse_question(record['Q']),
            question_type=question_type,
            options=records.parse_options(record.get('options'), question_type),
            # as written in the annotation: the authors' prompts insert str() of this value
            options_raw=record.get('options'),
            answer=records.parse_answer(record['A']),
            attribute=records.parse_attribute(record['attribute']),
            area_percent=records.parse_area_percent(record['area_percent']),
            best_region=records.parse_best_region(record.get('best_region')))
        info['size_bucket'] = size_bucket(info['area_percent'], **self.size_thresholds)
        info['img_path'] = osp.join(self.data_prefix['img'], image_path)
        info['height'], info['width'] = self._image_size(info['img_path'])
        info['gt_bbox'] = records.check_inside_image(
            polygon, info['height'], info['width'], self.out_of_image_tol)
        info['gt_polygon'] = records.float32_keeping_raster(polygon)
        return info

    def _image_size(self, img_path: str) -> Tuple[int, int]:
        """(height, width) of an image from its header, read once per image and load."""
        if img_path not in self._image_sizes:
            try:
                self._image_sizes[img_path] = records.read_image_size(img_path, self.backend_args)
            except records.RecordProblem as problem:
                self._image_sizes[img_path] = problem
        size = self._image_sizes[img_path]
        if isinstance(size, records.RecordProblem):
            raise records.RecordProblem(size.reason, size.detail, size.fix)
        return size

    def _skipped_summary(self) -> str:
        """``'2 x missing image file (records 1, 4); 1 x ...'``."""
        return '; '.join(f'{len(indices)} x {reason} (records {_first_few(indices)})'
                         for reason, indices in sorted(self.skipped_records.items()))

    def _warn_skipped(self, num_records: int) -> None:
        """One warning summarising the skipped records per reason."""
        num_skipped = sum(len(v) for v in self.skipped_records.values())
        print_log(
            f'{type(self).__name__}: skipped {num_skipped} of {num_records} records of '
            f'{self.ann_file} (on_bad_record=\'skip\'): {self._skipped_summary()}. Set '
            'on_bad_record=\'raise\' to see each problem and its fix.',
            logger='current', level=logging.WARNING)

    def _warn_duplicates(self, data_list: List[dict], raw_records: list) -> None:
        """One warning naming the groups of records with the same image_path, Q and points."""
        groups = defaultdict(list)
        for info in data_list:
            points = np.asarray(raw_records[info['ann_index']]['points'], dtype=np.float64)
            groups[(info['img_id'], info['question'], points.tobytes())].append(info['ann_index'])
        repeated = [indices for indices in groups.values() if len(indices) > 1]
        if not repeated:
            return
        shown = ', '.join(str(indices) for indices in repeated[:5])
        more = f' and {len(repeated) - 5} more groups' if len(repeated) > 5 else ''
        print_log(
            f'{type(self).__name__}: records of {self.ann_file} with the same image_path, Q and '
            f'points (indices in "annotations"): {shown}{more}. They are kept, so that sample '
            'counts several times in training and in the metrics; remove the copies from the '
            'file if they are not intended.',
            logger='current', level=logging.WARNING)


def _check_size_thresholds(size_thresholds: Optional[Dict[str, float]]) -> Dict[str, float]:
    """Merge user thresholds over the defaults; reject unknown keys."""
    size_thresholds = dict(size_thresholds or {})
    unknown = set(size_thresholds) - set(SIZE_THRESHOLDS)
    if unknown:
        raise ValueError(f'size_thresholds accepts the keys {sorted(SIZE_THRESHOLDS)}, '
                         f'got unknown {sorted(unknown)}')
    return {key: float(value) for key, value in dict(SIZE_THRESHOLDS, **size_thresholds).items()}


def _check_filter_cfg(filter_cfg: Optional[dict]) -> Optional[dict]:
    """Validate ``filter_cfg=dict(question_types=...)``; a single type may be given as a string."""
    if not filter_cfg:
        return None
    unknown = set(filter_cfg) - {'question_types'}
    if unknown:
        raise ValueError('FineRS4kDataset filter_cfg accepts only question_types, got '
                         f'{sorted(unknown)}')
    types = filter_cfg['question_types']
    types = (types, ) if isinstance(types, str) else tuple(types)
    bad = [t for t in types if t not in QUESTION_TYPES]
    if bad:
        raise ValueError(f'filter_cfg question_types must be among {QUESTION_TYPES}, got {bad}')
    return dict(question_types=types)


def _first_few(indices: Sequence[int], limit: int = 5) -> str:
    """``'3, 8, 11, ...'``."""
    shown = ', '.join(str(i) for i in indices[:limit])
    return shown + (', ...' if len(indices) > limit else '')
