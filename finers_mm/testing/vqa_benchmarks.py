# Copyright (c) finers_mm contributors. All rights reserved.
"""Test helpers of the VQA benchmarks: fixtures in each benchmark's published layout and a VLM
adapter answering from an answer sheet.

Importing this module registers :class:`AnswerSheetQwen25VLAdapter` in finers_mm's ``MODELS``.
"""
import base64
import csv
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
from PIL import Image

from finers_mm.models.vlm import Qwen25VLAdapter
from finers_mm.registry import MODELS
from finers_mm.structures.answers import FOUND_RESPONSE
from .scripted import _generation, completion

HRBENCH_HEADER = ('index', 'question', 'A', 'B', 'C', 'D', 'answer', 'category', 'image',
                  'cycle_category')


def image_bytes(width: int = 64, height: int = 48, seed: int = 0, ext: str = '.jpg',
                orientation: Optional[int] = None) -> bytes:
    """A small random picture's file bytes (``orientation``: an EXIF orientation tag)."""
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    if orientation is None:
        return cv2.imencode(ext, pixels)[1].tobytes()
    import io
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format='JPEG', exif=exif)
    return buffer.getvalue()


def write_vstar(root: str, questions: Sequence[dict]) -> str:
    """V* Bench's layout: ``<subset>/<name>.jpg`` + ``.json`` and ``test_questions.jsonl``.

    Args:
        root (str): the folder to write.
        questions (Sequence[dict]): ``subset``, ``name`` (image stem), ``question``, ``options``
            (correct first), optional ``bbox`` (xywh list), ``orientation``, ``size`` (w, h).

    Returns:
        str: ``root``.
    """
    lines = []
    for number, q in enumerate(questions):
        folder = osp.join(root, q['subset'])
        os.makedirs(folder, exist_ok=True)
        width, height = q.get('size', (64, 48))
        with open(osp.join(folder, q['name'] + '.jpg'), 'wb') as f:
            f.write(image_bytes(width, height, number, orientation=q.get('orientation')))
        with open(osp.join(folder, q['name'] + '.json'), 'w', encoding='utf-8') as f:
            json.dump(dict(target_object=['thing'], bbox=q.get('bbox', [[4, 4, 10, 8]]),
                           question=q['question'], options=q['options']), f)
        letters = '\n'.join(f'({"ABCD"[k]}) {o}' for k, o in enumerate(q['options']))
        lines.append(json.dumps(dict(
            image=f"{q['subset']}/{q['name']}.jpg",
            text=f"{q['question']}\n{letters}\nAnswer with the option's letter from the given "
            'choices directly.', category=q['subset'], question_id=number)))
    with open(osp.join(root, 'test_questions.jsonl'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
    return root


def hrbench_rows(rows: Sequence[dict]) -> List[dict]:
    """HR-Bench rows with defaults: ``index`` (the position), a base64 ``image`` (unless given)."""
    full = []
    for number, row in enumerate(rows):
        row = dict(row)
        row.setdefault('index', number)
        if 'image' not in row:
            row['image'] = base64.b64encode(image_bytes(48, 32, number)).decode()
        full.append(row)
    return full


def write_hrbench_tsv(path: str, rows: Sequence[dict]) -> str:
    """An HR-Bench TSV (VLMEvalKit's: tab-separated, a header, pandas' minimal quoting).

    Args:
        path (str): the file.
        rows (Sequence[dict]): the columns of :data:`HRBENCH_HEADER` (see :func:`hrbench_rows`).

    Returns:
        str: ``path``.
    """
    with open(path, 'w', encoding='utf-8', newline='') as f:
        writer = csv.writer(f, delimiter='\t', lineterminator='\n')
        writer.writerow(HRBENCH_HEADER)
        for row in hrbench_rows(rows):
            writer.writerow([row.get(key, '') for key in HRBENCH_HEADER])
    return path


def write_hrbench_parquet(path: str, rows: Sequence[dict], row_group_size: int = 2) -> str:
    """The parquet variant of the same rows (image a base64 string), small row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    full = hrbench_rows(rows)
    table = pa.table({key: [None if row.get(key) is None else
                            (row[key] if key == 'index' else str(row[key])) for row in full]
                      for key in HRBENCH_HEADER})
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def write_mme_realworld(root: str, records: Sequence[dict]) -> str:
    """MME-RealWorld's layout: ``MME_RealWorld.json`` and the images it names.

    Args:
        root (str): the folder to write.
        records (Sequence[dict]): the published records (``Image`` relative to ``root``); each
            image named is written (unless ``write_image`` is False in the record).

    Returns:
        str: ``root``.
    """
    clean = []
    for number, record in enumerate(records):
        record = dict(record)
        if record.pop('write_image', True):
            path = osp.join(root, record['Image'])
            os.makedirs(osp.dirname(path), exist_ok=True)
            with open(path, 'wb') as f:
                f.write(image_bytes(56, 40, number, ext='.png'))
        clean.append(record)
    os.makedirs(root, exist_ok=True)
    with open(osp.join(root, 'MME_RealWorld.json'), 'w', encoding='utf-8') as f:
        json.dump(clean, f)
    return root


@MODELS.register_module(force=True)
class AnswerSheetQwen25VLAdapter(Qwen25VLAdapter):
    """The Qwen2.5-VL adapter answering from a sheet: question -> response.

    The explorer answers a region in the middle of its view and the sheet's response for the
    question its prompt asks (the longest question of the sheet found in the prompt); the refiner
    answers a box and two points in the middle of its crop and "found". The real prompts, parser
    and frame maps run.

    Args:
        answers (str | dict): the sheet, or the path of its JSON.
        role (str): ``'explorer'`` or ``'refiner'``.
        **kwargs: the adapter's arguments.
    """

    def __init__(self, answers, role: str, **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(answers, str):
            with open(answers, encoding='utf-8') as f:
                answers = json.load(f)
        self.answers: Dict[str, str] = dict(answers)
        self.role = role

    def _complete(self, image: np.ndarray, prompt: str) -> str:
        height, width = image.shape[:2]
        if self.role == 'explorer':
            asked = [q for q in self.answers if q in prompt]
            assert asked, prompt
            side = min(width, height) / 4
            box = np.array([width / 2 - side, height / 2 - side, width / 2 + side,
                            height / 2 + side])
            data = dict(bbox=self.frame_to_model(box, (width, height)).tolist(),
                        response=self.answers[max(asked, key=len)])
        else:
            box = np.array([width / 4, height / 4, 3 * width / 4, 3 * height / 4])
            points = np.array([[width * 3 / 8, height / 2], [width * 5 / 8, height / 2]])
            model_box = self.frame_to_model(box, (width, height)).tolist()
            model_points = self.frame_to_model(points, (width, height)).tolist()
            data = dict(bbox=model_box, points_1=model_points[0], points_2=model_points[1],
                        response=FOUND_RESPONSE)
        return completion(data)

    def generate(self, images, prompts, **overrides):
        texts = [self._complete(image, prompt) for image, prompt in zip(images, prompts)]
        return _generation(texts, overrides.get('with_scores', False))
