# Copyright (c) finers_mm contributors. All rights reserved.
"""ReasonSeg (LISA, CVPR 2024): reasoning segmentation queries as FineRS segmentation questions.

Two published layouts, read as they are:

**LISA's folders** (:class:`ReasonSegDataset`; the release of dvlab-research/LISA)::

    <data_root>/{train,val,test}/<name>.jpg
    <data_root>/{train,val,test}/<name>.json   # labelme-style, next to its image:
        {"text": ["the query", ...],            # one or more queries of the image
         "is_sentence": true,                   # true: a sentence ("long"), false: a phrase
         "shapes": [{"label": "target" | "ignore" | "flag", "points": [[x, y], ...]}, ...]}

The GT is rasterised as LISA's ``utils/data_processing.py::get_mask_from_json`` does
(:func:`lisa_label_map`): shapes labelled ``flag`` are dropped, the others sorted by raster area,
largest first, each drawn over the previous ones with ``cv2.polylines`` + ``cv2.fillPoly`` of its
int32-truncated vertices (:func:`finers_mm.structures.masks.rasterize_polygon`, the same raster),
value 255 when ``'ignore'`` is in the label, else 1. The target is the label map's 1 pixels, the
ignore region its 255 pixels, which :class:`~finers_mm.evaluation.ReasonSegMetric` leaves out of
the IoU as LISA's evaluation does.

Queries: LISA's validation (``utils/dataset.py::ValDataset``) asks only the FIRST text of each
image (``sampled_sents = [sampled_sents[0]]``): ``queries='first'`` (default) reproduces it, one
sample per image; ``queries='all'`` gives one sample per (image, text). Each sample is a FineRS
segmentation question whose question is the text, stripped as LISA strips it.

**The parquet mirror** (:class:`ReasonSegParquetDataset`; ``Ricky06662/ReasonSeg_val`` /
``ReasonSeg_test`` on the Hugging Face hub, used by Seg-Zero's evaluation), one row per query::

    image: struct<bytes: binary, path: string>   (the datasets library's Image feature)
    text: string
    mask: list<list<bool>>                       (H rows of W booleans: the target)
    image_id: string, ann_id: string, img_height: int64, img_width: int64   (optional here)

Its 200 val / 779 test rows are one query per image. Assumed (not documented by the mirror): the
boolean ``mask`` is LISA's target (``label == 1``), so the mirror has NO ignore region and scores
can differ from the folder layout's on images that have one; it has no ``is_sentence``, so no
short / long split. An ``is_sentence`` column, when present, is read. Images and masks are read
lazily, one row group at a time (the last one kept per process), never the whole file: the
image through :mod:`~finers_mm.datasets.benchmarks.lazy_images`' ``parquet-image://`` URIs (so
``LoadFineRSImage`` reads it unchanged), the mask here.

Bad input fails at load with :class:`ReasonSegAnnotationError` naming the file, the record and the
fix: a folder without images, an image without its JSON or a JSON without its image, a JSON that
does not parse or lacks ``text`` / ``is_sentence`` / ``shapes``, a shape with fewer than 3 points
(or non-numeric ones), an unreadable or truncated image; for the parquet mirror a missing column, an
empty text; an undecodable image or a mask of the wrong size fails when the row is read,
naming the file and the row.
"""
import json
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.datasets import BaseDetDataset
from mmengine.fileio import get, list_dir_or_file

from finers_mm.registry import DATASETS, TRANSFORMS
from finers_mm.structures.masks import mask_bbox, rasterize_polygon
from finers_mm.structures.vocabulary import CATEGORY_NAME, SEGMENTATION
from ..records import RecordProblem, read_image_size
from .lazy_images import parquet_image_uri

#: LISA's label values in its label map
TARGET_VALUE, IGNORE_VALUE = 1, 255
QUERY_MODES = ('first', 'all')
QUERY_TYPES = ('short', 'long')


class ReasonSegAnnotationError(ValueError):
    """A ReasonSeg file or record that cannot be used.

    Args:
        where (str): the file (JSON, image, parquet or folder), with the record when known.
        detail (str): what is wrong.
        fix (str): what to change.
    """

    def __init__(self, where: str, detail: str, fix: str) -> None:
        self.where = where
        super().__init__(f'{where}: {detail}. Fix: {fix}')


def query_type(is_sentence: bool) -> str:
    """LISA's ``is_sentence`` -> ``'long'`` (a sentence) or ``'short'`` (a phrase)."""
    return 'long' if is_sentence else 'short'


def lisa_label_map(shapes: Sequence[dict], height: int, width: int) -> np.ndarray:
    """The label map of LISA's ``get_mask_from_json``: 0 background, 1 target, 255 ignore.

    Args:
        shapes (Sequence[dict]): ``label`` (str) and ``points`` ((N, 2) original pixels) of each
            shape, flags included (dropped here, as LISA drops them).
        height (int): image height H.
        width (int): image width W.

    Returns:
        np.ndarray: (H, W) uint8 label map.
    """
    kept = [shape for shape in shapes if shape['label'].lower() != 'flag']
    rasters = [rasterize_polygon(shape['points'], height, width) for shape in kept]
    areas = [int(raster.sum()) for raster in rasters]
    label_map = np.zeros((height, width), dtype=np.uint8)
    # LISA's exact order: np.argsort of the areas reversed (largest first, ties as numpy's sort)
    for index in np.argsort(areas)[::-1].astype(np.int32):
        value = IGNORE_VALUE if 'ignore' in kept[index]['label'].lower() else TARGET_VALUE
        label_map[rasters[index]] = value
    return label_map


def _check_is_sentence(value, where: str) -> bool:
    if not isinstance(value, bool):
        raise ReasonSegAnnotationError(
            where, f'"is_sentence" is {value!r}, not true or false',
            'set "is_sentence": true for a sentence query, false for a phrase')
    return value


def _parse_shapes(shapes, where: str) -> List[dict]:
    """Validate LISA's ``shapes``: dicts with a string label and, unless a flag, >= 3 points."""
    fix = ('give each shape as {"label": "target" | "ignore" | "flag", "points": [[x, y], [x, y], '
           '[x, y], ...]} in original image pixels, at least 3 points')
    if not isinstance(shapes, list):
        raise ReasonSegAnnotationError(where, f'"shapes" is a {type(shapes).__name__}, not a list',
                                       fix)
    parsed = []
    for index, shape in enumerate(shapes):
        if not isinstance(shape, dict) or not isinstance(shape.get('label'), str):
            raise ReasonSegAnnotationError(f'{where}, shape {index}',
                                           f'no string "label" in {str(shape)[:80]}', fix)
        label = shape['label']
        if label.lower() == 'flag':  # LISA drops them unread ("meaningless deprecated")
            parsed.append(dict(label=label, points=np.zeros((0, 2))))
            continue
        try:
            points = np.asarray(shape.get('points'), dtype=np.float64)
        except (TypeError, ValueError):
            points = np.empty((0, 0))
        if points.ndim != 2 or points.shape[1] != 2 or not np.isfinite(points).all():
            raise ReasonSegAnnotationError(f'{where}, shape {index} ({label!r})',
                                           f'"points" is {str(shape.get("points"))[:80]}', fix)
        if len(points) < 3:
            raise ReasonSegAnnotationError(
                f'{where}, shape {index} ({label!r})',
                f'the polygon has {len(points)} point(s), fewer than 3', fix)
        parsed.append(dict(label=label, points=points))
    return parsed


def _read_json(path: str, backend_args: Optional[dict]) -> dict:
    """LISA's reading: UTF-8, else cp1252 (some of its files are)."""
    content = get(path, backend_args=backend_args)
    for encoding in ('utf-8', 'cp1252'):
        try:
            return json.loads(content.decode(encoding))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            last = error
    raise ReasonSegAnnotationError(path, f'not a JSON file ({last})',
                                   'repair or re-download the annotation')


@DATASETS.register_module()
class ReasonSegDataset(BaseDetDataset):
    """ReasonSeg in LISA's folder layout (module docstring): one FineRS segmentation question per
    query.

    Data infos: ``img_path``, ``img_id`` (the file name without ``.jpg``), ``ann_index`` (the
    sample's index), ``json_path``, ``text_index`` (the query's index in ``text``), ``height``,
    ``width`` (from the image header), ``question``, ``question_type`` (``'segmentation'``),
    ``options`` (``{}``), ``answer`` (``''``), ``is_sentence``, ``query_type`` (``'short'`` |
    ``'long'``) and ``gt_shapes`` (the shapes, rasterised by :class:`LoadReasonSegMask`).

    Args:
        queries (str): ``'first'`` (default, LISA's evaluation: each image's first text) or
            ``'all'`` (one sample per text).
        query_types (Sequence[str], optional): keep only ``'short'`` and / or ``'long'`` queries;
            None keeps both (:class:`~finers_mm.evaluation.ReasonSegMetric` reports each anyway).
        **kwargs: :class:`mmdet.datasets.BaseDetDataset` arguments: ``data_root``,
            ``data_prefix=dict(img='val/')`` (the split's folder), ``pipeline``, ``test_mode``,
            ``backend_args``; ``ann_file`` is not used (the JSONs sit next to the images).
    """

    METAINFO = dict(classes=(CATEGORY_NAME, ), palette=[(220, 20, 60)])

    def __init__(self, *args, queries: str = 'first',
                 query_types: Optional[Sequence[str]] = None, **kwargs) -> None:
        if queries not in QUERY_MODES:
            raise ValueError(f'queries must be one of {QUERY_MODES}, got {queries!r}')
        self.queries = queries
        self.query_types = _check_query_types(query_types)
        kwargs.setdefault('ann_file', '')
        kwargs.setdefault('data_prefix', dict(img=''))
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Pair each ``.jpg`` with its ``.json``, validate both, one data info per kept query.

        Returns:
            list[dict]: the data infos, sorted by file name then text index.

        Raises:
            ReasonSegAnnotationError: bad input (module docstring).
        """
        folder = self.data_prefix.get('img', '')
        try:
            names = sorted(list_dir_or_file(folder, list_dir=False, suffix=('.jpg', '.json'),
                                            backend_args=self.backend_args))
        except (FileNotFoundError, NotADirectoryError) as error:
            raise ReasonSegAnnotationError(
                folder, f'no such folder ({error})',
                "point data_root / data_prefix['img'] at a ReasonSeg split folder, e.g. "
                "data_root='data/reason_seg/ReasonSeg/', data_prefix=dict(img='val/')") from None
        images = {n[:-4] for n in names if n.endswith('.jpg')}
        jsons = {n[:-5] for n in names if n.endswith('.json')}
        if not images:
            raise ReasonSegAnnotationError(
                folder, 'no .jpg image in the folder',
                "point data_prefix['img'] at the split folder holding <name>.jpg + <name>.json")
        for stem in sorted(jsons - images):
            raise ReasonSegAnnotationError(
                osp.join(folder, stem + '.json'), f'missing image: {stem}.jpg is not in {folder}',
                'copy the image next to its JSON, or remove the JSON')
        for stem in sorted(images - jsons):
            raise ReasonSegAnnotationError(
                osp.join(folder, stem + '.jpg'),
                f'missing annotation: {stem}.json is not next to the image',
                'copy the JSON of the release next to it, or remove the image')
        data_list = []
        for stem in sorted(images):
            for info in self._parse_image(folder, stem):
                if self.query_types is None or info['query_type'] in self.query_types:
                    info['ann_index'] = len(data_list)
                    data_list.append(info)
        if not data_list:
            raise ReasonSegAnnotationError(
                folder, f'no query of the types {list(self.query_types)}',
                'drop query_types or choose the types the split holds')
        return data_list

    def _parse_image(self, folder: str, stem: str) -> List[dict]:
        json_path = osp.join(folder, stem + '.json')
        img_path = osp.join(folder, stem + '.jpg')
        record = _read_json(json_path, self.backend_args)
        fix = ('give LISA\'s format {"text": ["query", ...], "is_sentence": false, '
               '"shapes": [...]}')
        if not isinstance(record, dict):
            raise ReasonSegAnnotationError(json_path, f'the top level is a '
                                           f'{type(record).__name__}', fix)
        missing = [key for key in ('text', 'is_sentence', 'shapes') if key not in record]
        if missing:
            raise ReasonSegAnnotationError(json_path, f'no {missing} (keys: {sorted(record)})',
                                           fix)
        texts = record['text']
        if (not isinstance(texts, list) or not texts
                or not all(isinstance(t, str) and t.strip() for t in texts)):
            raise ReasonSegAnnotationError(json_path, f'"text" is {str(texts)[:80]}',
                                           'give a non-empty list of non-empty query strings')
        is_sentence = _check_is_sentence(record['is_sentence'], json_path)
        shapes = _parse_shapes(record['shapes'], json_path)
        try:
            height, width = read_image_size(img_path, self.backend_args)
        except RecordProblem as problem:
            raise ReasonSegAnnotationError(img_path, f'{problem.reason}: {problem.detail}',
                                           problem.fix) from None
        indices = range(1) if self.queries == 'first' else range(len(texts))
        return [
            dict(img_path=img_path, img_id=stem, json_path=json_path, text_index=index,
                 height=height, width=width, question=texts[index].strip(),
                 question_type=SEGMENTATION, options={}, answer='', is_sentence=is_sentence,
                 query_type=query_type(is_sentence), gt_shapes=shapes) for index in indices
        ]

    def get_cat_ids(self, idx: int) -> List[int]:
        """Every sample is one object of the single class: ``[0]``."""
        return [0]


@DATASETS.register_module()
class ReasonSegParquetDataset(BaseDetDataset):
    """ReasonSeg from the hub's parquet mirror (module docstring), one sample per row.

    Data infos: ``img_id`` (``image_id`` or ``'row<n>'``), ``ann_id``, ``ann_index`` (the row),
    ``img_path`` (a ``parquet-image://`` URI of the row's image, which ``LoadFineRSImage`` reads
    through :mod:`~finers_mm.datasets.benchmarks.lazy_images`), ``height`` / ``width``
    (``img_height`` / ``img_width``, or None), ``question``, ``question_type``, ``options``,
    ``answer``, and ``is_sentence`` / ``query_type`` when the file has ``is_sentence``.
    :meth:`get_data_info` adds the row's ``gt_mask`` ((H, W) bool).

    Args:
        **kwargs: :class:`mmdet.datasets.BaseDetDataset` arguments; ``ann_file`` is one
            ``.parquet`` file or a folder of them (read in name order, e.g. the mirror's
            ``data/``).
    """

    METAINFO = dict(classes=(CATEGORY_NAME, ), palette=[(220, 20, 60)])
    REQUIRED_COLUMNS = ('image', 'text', 'mask')

    def __init__(self, *args, **kwargs) -> None:
        self._row_group_cache: Optional[Tuple[Tuple[int, int], object]] = None
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Read the small columns of every file; images and masks stay on disk.

        Returns:
            list[dict]: one data info per row.

        Raises:
            ReasonSegAnnotationError: a missing file or column, an empty text.
        """
        import pyarrow.parquet as pq
        self._files = _parquet_files(self.ann_file)
        self._rows: List[Tuple[int, int, int]] = []  # (file, row group, row in the group)
        data_list = []
        for file_index, path in enumerate(self._files):
            parquet = pq.ParquetFile(path)
            columns = set(parquet.schema_arrow.names)
            missing = [c for c in self.REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise ReasonSegAnnotationError(
                    path, f'no column {missing} (columns: {sorted(columns)})',
                    'give the mirror\'s parquet (columns image, text, mask, ...), e.g. '
                    'ReasonSeg_val/data/test-00000-of-00001.parquet')
            small = [c for c in ('text', 'image_id', 'ann_id', 'img_height', 'img_width',
                                 'is_sentence') if c in columns]
            for group in range(parquet.num_row_groups):
                table = parquet.read_row_group(group, columns=small).to_pydict()
                for row in range(len(table['text'])):
                    fields = {c: table[c][row] for c in small}
                    index = len(data_list)
                    info = self._info(path, index, fields)
                    info['img_path'] = parquet_image_uri(path, group, row, 'image')
                    data_list.append(info)
                    self._rows.append((file_index, group, row))
        if not data_list:
            raise ReasonSegAnnotationError(self.ann_file, 'no rows',
                                           'point ann_file at the mirror\'s parquet file')
        return data_list

    def _info(self, path: str, index: int, fields: dict) -> dict:
        where = f'{path}, row {index}'
        text = fields['text']
        if not isinstance(text, str) or not text.strip():
            raise ReasonSegAnnotationError(where, f'"text" is {text!r}', 'give the query text')
        info = dict(img_id=fields.get('image_id') or f'row{index}', ann_id=fields.get('ann_id'),
                    ann_index=index, height=fields.get('img_height'),
                    width=fields.get('img_width'), question=text.strip(),
                    question_type=SEGMENTATION, options={}, answer='')
        if fields.get('is_sentence') is not None:
            info['is_sentence'] = _check_is_sentence(fields['is_sentence'], where)
            info['query_type'] = query_type(info['is_sentence'])
        return info

    def get_data_info(self, idx: int) -> dict:
        """The data info of ``idx`` with its row's ``gt_mask`` read.

        Args:
            idx (int): sample index.

        Returns:
            dict: the data info plus ``gt_mask`` ((H, W) bool).

        Raises:
            ReasonSegAnnotationError: the row's mask has ragged rows or another size than
                ``img_height`` x ``img_width``.
        """
        info = super().get_data_info(idx)
        file_index, group, row = self._rows[info['ann_index']]
        table = self._row_group(file_index, group).slice(row, 1)
        where = f"{self._files[file_index]}, row {info['ann_index']}"
        info['gt_mask'] = _mask_of(table.column('mask'), where, info.get('height'),
                                   info.get('width'))
        return info

    def _row_group(self, file_index: int, group: int):
        """The mask column of one row group; the last one is kept (sequential reads)."""
        key = (file_index, group)
        if self._row_group_cache is None or self._row_group_cache[0] != key:
            import pyarrow.parquet as pq
            table = pq.ParquetFile(self._files[file_index]).read_row_group(
                group, columns=['mask'])
            self._row_group_cache = (key, table)
        return self._row_group_cache[1]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state['_row_group_cache'] = None  # dataloader workers read their own
        return state

    def get_cat_ids(self, idx: int) -> List[int]:
        """Every sample is one object of the single class: ``[0]``."""
        return [0]


def _parquet_files(ann_file: str) -> List[str]:
    if osp.isdir(ann_file):
        files = sorted(osp.join(ann_file, n) for n in list_dir_or_file(
            ann_file, list_dir=False, suffix='.parquet'))
    elif osp.isfile(ann_file):
        files = [ann_file]
    else:
        files = []
    if not files:
        raise ReasonSegAnnotationError(
            ann_file or '<ann_file>', 'no such parquet file or folder of them',
            'point ann_file at the mirror\'s data/test-00000-of-00001.parquet (or its folder)')
    return files


def _mask_of(column, where: str, height: Optional[int], width: Optional[int]) -> np.ndarray:
    """One row's ``list<list<bool>>`` mask -> (H, W) bool, without Python lists."""
    rows = column.combine_chunks() if hasattr(column, 'combine_chunks') else column
    rows = rows.flatten()  # the H rows of this one sample
    offsets = np.asarray(rows.offsets)
    lengths = np.diff(offsets)
    pixels = rows.flatten().to_numpy(zero_copy_only=False)
    if len(lengths) == 0 or (lengths != lengths[0]).any():
        raise ReasonSegAnnotationError(where, 'the mask is empty or its rows differ in length',
                                       'give the mask as H rows of W booleans')
    mask = pixels.astype(bool).reshape(len(lengths), int(lengths[0]))
    if None not in (height, width) and mask.shape != (height, width):
        raise ReasonSegAnnotationError(
            where, f'the mask is {mask.shape[1]}x{mask.shape[0]} but img_width x img_height is '
            f'{width}x{height}', 'give the mask of the image at its original size')
    return mask


def _check_query_types(query_types) -> Optional[Tuple[str, ...]]:
    if query_types is None:
        return None
    query_types = (query_types, ) if isinstance(query_types, str) else tuple(query_types)
    bad = [t for t in query_types if t not in QUERY_TYPES]
    if bad or not query_types:
        raise ValueError(f'query_types must be among {QUERY_TYPES}, got {list(query_types)}')
    return query_types


@TRANSFORMS.register_module()
class LoadReasonSegMask(BaseTransform):
    """The GT of a ReasonSeg sample: LISA's label map split into target and ignore region.

    From ``gt_shapes`` (LISA's folders) :func:`lisa_label_map`; from a given ``gt_mask`` (the
    parquet mirror) that target with no ignore region.

    Required Keys: gt_shapes or gt_mask; height, width

    Added Keys:

    - gt_mask (bool (H, W): the label map's 1 pixels)
    - gt_ignore_mask (bool (H, W): its 255 pixels; None when there are none)
    - gt_bbox (np.float32 (4,), the target's pixel extent; absent when the target is empty)
    """

    def transform(self, results: dict) -> dict:
        """Add ``gt_mask``, ``gt_ignore_mask`` and ``gt_bbox``.

        Args:
            results (dict): the data info (after :class:`LoadFineRSImage`).

        Returns:
            dict: ``results`` with the GT.
        """
        if 'gt_shapes' in results:
            label_map = lisa_label_map(results.pop('gt_shapes'), results['height'],
                                       results['width'])
            results['gt_mask'] = label_map == TARGET_VALUE
            ignore = label_map == IGNORE_VALUE
            results['gt_ignore_mask'] = ignore if ignore.any() else None
        else:
            results['gt_mask'] = np.asarray(results['gt_mask'], bool)
            results['gt_ignore_mask'] = None
        if results['gt_mask'].any():
            results['gt_bbox'] = mask_bbox(results['gt_mask'])
        return results


#: the metainfo every ReasonSeg sample packs: PackFineRSInputs' defaults and ReasonSeg's keys
REASONSEG_META_KEYS = (
    'img_path', 'img_id', 'ann_index', 'ann_id', 'sample_idx', 'ori_shape', 'img_shape',
    'question', 'question_type', 'options', 'answer', 'explorer_frame', 'region_size',
    'gt_bbox_explorer', 'json_path', 'text_index', 'is_sentence', 'query_type', 'gt_ignore_mask')
