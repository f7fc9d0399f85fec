# Copyright (c) finers_mm contributors. All rights reserved.
"""Test helpers of the segmentation benchmarks: ReasonSeg (LISA's folders, the parquet mirror) and
RefCOCO (mmdet's files) written in their published layouts, a mask head that fills its box
prompt, and the oracle JSON of such samples.

Importing this module registers :class:`BoxFillMaskHead` in finers_mm's ``MODELS``.
"""
import json
import os
import os.path as osp
import pickle
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from finers_mm.models.mask_heads.base import BaseMaskHead
from finers_mm.registry import MODELS
from .scripted import oracle_record


@MODELS.register_module(force=True)
class BoxFillMaskHead(BaseMaskHead):
    """A mask head whose mask is its box prompt filled: the pixels whose centres lie inside it.

    With VLMs naming the GT box, the chain's mask is then the box of the GT, so a metric's value
    can be worked out by hand from the fixture.
    """

    def segment(self, crops: List[np.ndarray], boxes: np.ndarray, points: Optional[np.ndarray],
                point_labels: Optional[np.ndarray],
                indices: List[int]) -> Iterator[Tuple[int, np.ndarray, float]]:
        for i in indices:
            height, width = crops[i].shape[:2]
            x1, y1, x2, y2 = boxes[i]
            xs, ys = np.arange(width) + 0.5, np.arange(height) + 0.5
            mask = ((ys > y1) & (ys < y2))[:, None] & ((xs > x1) & (xs < x2))[None]
            yield i, mask, 1.0


def jpg_bytes(width: int, height: int, seed: int) -> bytes:
    """A random picture as JPEG bytes."""
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return cv2.imencode('.jpg', pixels)[1].tobytes()


def rectangle(x1: float, y1: float, x2: float, y2: float) -> List[List[float]]:
    """The 4 corners of an axis-aligned rectangle as a polygon (LISA's raster covers
    ``[x1, x2] x [y1, y2]`` inclusive of the truncated corners)."""
    return [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]


def write_reasonseg_folder(folder: str, images: Sequence[dict]) -> str:
    """LISA's layout: ``<folder>/<name>.jpg`` + ``<name>.json`` per image.

    Args:
        folder (str): the split folder to write (e.g. ``.../ReasonSeg/val``).
        images (Sequence[dict]): ``name``, ``size`` ((w, h)), ``text`` (list), ``is_sentence``,
            ``shapes`` (LISA's shape dicts); ``write_image`` / ``write_json`` False to leave one
            out; ``json`` to write that object instead.

    Returns:
        str: ``folder``.
    """
    os.makedirs(folder, exist_ok=True)
    for number, image in enumerate(images):
        width, height = image['size']
        if image.get('write_image', True):
            with open(osp.join(folder, image['name'] + '.jpg'), 'wb') as f:
                f.write(jpg_bytes(width, height, number))
        if image.get('write_json', True):
            record = image.get('json', dict(text=image['text'], is_sentence=image['is_sentence'],
                                            shapes=image['shapes']))
            with open(osp.join(folder, image['name'] + '.json'), 'w', encoding='utf-8') as f:
                json.dump(record, f)
    return folder


def write_reasonseg_parquet(path: str, rows: Sequence[dict], row_group_size: int = 2) -> str:
    """The hub mirror's parquet (``Ricky06662/ReasonSeg_val``'s schema).

    Args:
        path (str): the file to write.
        rows (Sequence[dict]): ``size`` ((w, h)), ``text``, ``mask`` ((H, W) bool), optional
            ``image_id``, ``ann_id``.
        row_group_size (int): rows per row group (several groups exercise the lazy reading).

    Returns:
        str: ``path``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    columns: Dict[str, list] = {k: [] for k in ('image', 'text', 'mask', 'image_id', 'ann_id',
                                                'img_height', 'img_width')}
    for number, row in enumerate(rows):
        width, height = row['size']
        columns['image'].append(dict(bytes=jpg_bytes(width, height, 100 + number), path=None))
        columns['text'].append(row['text'])
        columns['mask'].append(np.asarray(row['mask'], bool).tolist())
        columns['image_id'].append(row.get('image_id', f'img{number}'))
        columns['ann_id'].append(row.get('ann_id', f'ann{number}'))
        columns['img_height'].append(height)
        columns['img_width'].append(width)
    schema = pa.schema([
        ('image', pa.struct([('bytes', pa.binary()), ('path', pa.string())])),
        ('text', pa.string()), ('mask', pa.list_(pa.list_(pa.bool_()))),
        ('image_id', pa.string()), ('ann_id', pa.string()), ('img_height', pa.int64()),
        ('img_width', pa.int64())])
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    pq.write_table(pa.table(columns, schema=schema), path, row_group_size=row_group_size)
    return path


def write_refcoco(root: str, name: str, images: Sequence[dict], split_file: str) -> str:
    """mmdet's RefCOCO layout: ``<root>/train2014/<file>``, ``<root>/<name>/instances.json`` and
    ``<root>/<name>/<split_file>`` (the refer toolkit's pickle).

    Args:
        root (str): ``data_root``.
        name (str): ``'refcoco'``, ``'refcoco+'`` or ``'refcocog'``.
        images (Sequence[dict]): ``id``, ``size`` ((w, h)), ``refs``: each ``polygon`` (flat COCO
            list), ``sentences`` (list of str), ``split``.
        split_file (str): ``'refs(unc).p'`` or ``'refs(umd).p'``.

    Returns:
        str: ``root``.
    """
    os.makedirs(osp.join(root, 'train2014'), exist_ok=True)
    os.makedirs(osp.join(root, name), exist_ok=True)
    coco = dict(images=[], annotations=[], categories=[dict(id=1, name='object')])
    refs = []
    for image in images:
        width, height = image['size']
        file_name = f"COCO_train2014_{image['id']:012d}.jpg"
        with open(osp.join(root, 'train2014', file_name), 'wb') as f:
            f.write(jpg_bytes(width, height, image['id']))
        coco['images'].append(dict(id=image['id'], file_name=file_name, width=width,
                                   height=height))
        for ref in image['refs']:
            ann_id = 1000 + len(coco['annotations'])
            xs, ys = ref['polygon'][0::2], ref['polygon'][1::2]
            coco['annotations'].append(dict(
                id=ann_id, image_id=image['id'], category_id=1, iscrowd=0,
                segmentation=[ref['polygon']], area=1.0,
                bbox=[min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]))
            refs.append(dict(
                ref_id=len(refs), ann_id=ann_id, image_id=image['id'], split=ref['split'],
                category_id=1, file_name=file_name,
                sentences=[dict(raw=s, sent=s.lower(), tokens=s.lower().split())
                           for s in ref['sentences']]))
    with open(osp.join(root, name, 'instances.json'), 'w', encoding='utf-8') as f:
        json.dump(coco, f)
    with open(osp.join(root, name, split_file), 'wb') as f:
        pickle.dump(refs, f)
    return root


def write_questions_oracle(samples: Sequence[dict], path: str, crop_min_side: int = 512) -> str:
    """The oracle JSON (:class:`~finers_mm.testing.scripted.OracleQwen25VLAdapter`) of samples
    given by ``question``, ``gt_bbox`` (ORIGINAL pixels), ``width`` and ``height``.

    Args:
        samples (Sequence[dict]): one per question (unique questions).
        path (str): the JSON to write.
        crop_min_side (int): the chain's ``crop_min_side``.

    Returns:
        str: ``path``.
    """
    records = {s['question']: oracle_record(s, crop_min_side) for s in samples}
    assert len(records) == len(samples), 'the oracle needs unique questions'
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(records, f)
    return path
