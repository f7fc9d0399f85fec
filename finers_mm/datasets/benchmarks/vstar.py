# Copyright (c) finers_mm contributors. All rights reserved.
"""V* Bench (``craigwu/vstar_bench``, 191 questions) as published.

Layout on disk (the Hugging Face dataset repository as downloaded)::

    vstar_bench/                         # data_root
      test_questions.jsonl               # ann_file: one line per question (optional, see below)
      direct_attributes/                 # 115 questions
        sa_4690.jpg  sa_4690.json  ...
      relative_position/                 # 76 questions
        sa_11.jpg    sa_11.json    ...

Each image has a JSON of the same stem (V*'s ``vstar_bench_eval.py`` in penghao-wu/vstar opens
``image_path.split('.')[0] + '.json'``)::

    {"target_object": ["dog", ...], "bbox": [[x, y, w, h], ...],
     "question": "What is the color of the dog?", "options": ["white", "black", ...]}

``options`` lists the CORRECT option FIRST (their script scores ``option_chosen == 0``). Shown in
that order the answer would always be A, so the options are **shuffled deterministically**: the
permutation is drawn from ``numpy.random.default_rng([seed, crc32(image name)])``, the same for a
question whatever the file order, machine or run; ``shuffle_seed=None`` keeps the published order.

The questions are the lines of ``test_questions.jsonl`` (each names its image, e.g.
``"image": "direct_attributes/sa_4690.jpg"``, and its ``category``), in file order; with
``ann_file=''`` the two folders are walked (sorted) as their script walks them. The question text
and the options come from the image's JSON in both cases.

**Scoring.** V*'s own script does NOT generate an answer: it compares the model's likelihood of
each option text and counts the question right when the first (correct) option is the most
likely. The FineRS paper evaluates V* as a generated multiple-choice answer (the GSE stage's
response read as an option letter), which is what this dataset and
:class:`~finers_mm.evaluation.VStarMetric` do: accuracy per subset (``direct_attributes``,
``relative_position``) and over all questions.

The target boxes (xywh in the JSON) travel as ``benchmark['target_boxes']`` (x1, y1, x2, y2,
original pixels) with their ``target_objects``, for drawings and analyses; they are not scored.
"""
import json
import os
import os.path as osp
import zlib
from typing import List, Optional

import numpy as np
from mmengine.fileio import get_local_path

from finers_mm.registry import DATASETS
from .vqa_base import VQABenchmarkDataset, multiple_choice_info

#: V*'s two subsets, in the order of its script
VSTAR_SUBSETS = ('direct_attributes', 'relative_position')
_LETTERS = 'ABCDEFGHIJ'


def shuffled_options(options: List[str], image_name: str, seed: Optional[int]):
    """V*'s options (correct first) in a deterministic per-question order.

    Args:
        options (list[str]): the published options, the correct one first.
        image_name (str): the question's image, e.g. ``'direct_attributes/sa_4690.jpg'``: seeds
            its permutation with ``seed``.
        seed (int, optional): the shuffle seed; None keeps the published order.

    Returns:
        tuple[dict[str, str], str]: ``{letter: text}`` and the correct letter.
    """
    order = np.arange(len(options))
    if seed is not None:
        rng = np.random.default_rng([int(seed), zlib.crc32(image_name.encode('utf-8'))])
        order = rng.permutation(len(options))
    shown = {_LETTERS[k]: str(options[i]).strip() for k, i in enumerate(order)}
    return shown, _LETTERS[int(np.flatnonzero(order == 0)[0])]


@DATASETS.register_module()
class VStarDataset(VQABenchmarkDataset):
    """V* Bench: one multiple-choice question per image (layout and scoring: module docstring).

    Args:
        ann_file (str): ``'test_questions.jsonl'`` (default) under ``data_root``; ``''`` walks
            the subset folders instead.
        shuffle_seed (int, optional): seed of the per-question option shuffle. Defaults to 0;
            None keeps the published order (the answer is then always A).
        **kwargs: :class:`~.VQABenchmarkDataset` arguments (``data_root``, ``pipeline``, ...).
    """

    def __init__(self, *args, ann_file: str = 'test_questions.jsonl',
                 shuffle_seed: Optional[int] = 0, **kwargs) -> None:
        self.shuffle_seed = shuffle_seed
        super().__init__(*args, ann_file=ann_file, **kwargs)

    def load_data_list(self) -> List[dict]:
        """One data info per question.

        Returns:
            list[dict]: the data infos, in the order of ``test_questions.jsonl`` (or the walk).

        Raises:
            FineRSAnnotationError: a malformed line or JSON, a missing image or JSON, fewer than
                two options.
        """
        images = self._question_images()
        if not images:
            raise self.error('no questions', 'no question was found',
                             'point data_root at the vstar_bench folder (with test_questions.jsonl '
                             'and the direct_attributes / relative_position folders)')
        return [self._info(index, image, subset) for index, (image, subset) in enumerate(images)]

    def _root(self) -> str:
        return self.data_prefix.get('img') or self.data_root or ''

    def _question_images(self) -> List[tuple]:
        """[(image name relative to the root, subset)] from the jsonl or the folders."""
        if not self.ann_file or osp.isdir(self.ann_file):
            root = self._root()
            found = []
            for subset in VSTAR_SUBSETS:
                folder = osp.join(root, subset)
                if not osp.isdir(folder):
                    raise self.error('missing subset folder', f'{folder} does not exist',
                                     'put both V* subset folders under data_root', where=root)
                found += [(f'{subset}/{name}', subset) for name in sorted(os.listdir(folder))
                          if not name.endswith('.json')]
            return found
        found = []
        try:
            with get_local_path(self.ann_file, backend_args=self.backend_args) as path:
                with open(path, encoding='utf-8') as f:
                    lines = [line for line in f if line.strip()]
        except FileNotFoundError as error:
            raise self.error('missing annotation file', str(error),
                             "check data_root and ann_file ('test_questions.jsonl'), or set "
                             "ann_file='' to walk the subset folders") from None
        for index, line in enumerate(lines):
            try:
                record = json.loads(line)
                image = record['image']
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise self.error('malformed question line', f'{error!r} in {line[:120]!r}',
                                 'each line must be a JSON object with "image" (and "category")',
                                 index) from None
            subset = record.get('category') or image.split('/')[0]
            found.append((image, subset))
        return found

    def _info(self, index: int, image: str, subset: str) -> dict:
        img_path = osp.join(self._root(), image)
        json_path = osp.splitext(img_path)[0] + '.json'
        where = self.ann_file or self._root()
        try:
            with open(json_path, encoding='utf-8') as f:
                annotation = json.load(f)
        except FileNotFoundError:
            raise self.error('missing question JSON', f'{json_path} does not exist (image {image})',
                             'each V* image needs the JSON of the same name next to it', index,
                             where) from None
        except json.JSONDecodeError as error:
            raise self.error('malformed question JSON', f'{json_path}: {error}',
                             're-download the file', index, where) from None
        options = annotation.get('options') if isinstance(annotation, dict) else None
        question = annotation.get('question') if isinstance(annotation, dict) else None
        if not isinstance(question, str) or not question.strip():
            raise self.error('empty question', f'{json_path} has question={question!r}',
                             'give the question text in "question"', index, where)
        if not isinstance(options, list) or not 2 <= len(options) <= len(_LETTERS):
            raise self.error('malformed options', f'{json_path} has options={options!r}',
                             'give a list of 2 or more option texts, the correct one first', index,
                             where)
        height, width = self.image_size(img_path, index, where)
        shown, answer = shuffled_options(options, image, self.shuffle_seed)
        boxes = np.asarray(annotation.get('bbox') or np.zeros((0, 4)), np.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]  # xywh -> x1y1x2y2
        return multiple_choice_info(
            img_path=img_path, img_id=image, ann_index=index, question=question.strip(),
            options=shown, answer=answer, attribute=subset, height=height, width=width,
            benchmark=dict(subset=subset, target_objects=list(annotation.get('target_object', [])),
                           target_boxes=boxes))
