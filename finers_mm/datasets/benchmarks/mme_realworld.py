# Copyright (c) finers_mm contributors. All rights reserved.
"""MME-RealWorld (``yifanzhang114/MME-RealWorld``) as published: ``MME_RealWorld.json`` + images.

Layout on disk (the Hugging Face dataset, its image archives unpacked)::

    MME-RealWorld/                  # data_root
      MME_RealWorld.json            # ann_file: a JSON list, one record per question
      <image folders>/...           # each record's "Image" is a path under data_prefix['img']

A record (the fields their ``evaluation/model_vqa_mme_real_world.py`` and
``evaluation/eval_your_results.py`` read)::

    {"Question_id": "perception/remote_sensing/color/0001", "Image": "remote_sensing/03553.png",
     "Text": "What color is the roof of the building ...?",
     "Answer choices": ["(A) red", "(B) blue", "(C) white", "(D) grey", "(E) This image doesn't
     feature the color."],
     "Ground truth": "B", "Task": "Perception", "Subtask": "Remote Sensing",
     "Category": "color"}

Five options A-E. **Scoring** (:class:`~finers_mm.evaluation.MMERealWorldMetric`): letter exact
match, accuracy over all questions, per ``Task`` (Perception / Reasoning) and per
``Task/Subtask``, sums over questions as their ``eval_your_results.py`` (not a mean of means).
Their script reads the response's FIRST capital A-E anywhere (``re.search('[ABCDE]', s)``, after
dropping "The answer is" prefixes); here the project's one multiple-choice reading applies (one
option named, else wrong).

Bad input (at load): a missing key, fewer than two options, a ground truth that is not one of
the option letters, a missing, unreadable or truncated image: each error names the JSON file,
the record index and the fix.
"""
import json
import os.path as osp
from typing import List

from mmengine.fileio import get_local_path

from finers_mm.registry import DATASETS
from finers_mm.structures.vocabulary import normalize_options
from .vqa_base import VQABenchmarkDataset, check_answer_letter, multiple_choice_info

#: the keys of every MME-RealWorld record
MME_REALWORLD_KEYS = ('Question_id', 'Image', 'Text', 'Answer choices', 'Ground truth', 'Task',
                      'Subtask', 'Category')


@DATASETS.register_module()
class MMERealWorldDataset(VQABenchmarkDataset):
    """MME-RealWorld: one multiple-choice question (A-E) per record (module docstring).

    Args:
        ann_file (str): the question JSON. Defaults to ``'MME_RealWorld.json'``.
        **kwargs: :class:`~.VQABenchmarkDataset` arguments (``data_root``,
            ``data_prefix=dict(img=...)``, ...).
    """

    def __init__(self, *args, ann_file: str = 'MME_RealWorld.json', **kwargs) -> None:
        super().__init__(*args, ann_file=ann_file, **kwargs)

    def load_data_list(self) -> List[dict]:
        """One data info per record.

        Returns:
            list[dict]: the data infos in file order.

        Raises:
            FineRSAnnotationError: a bad file or record (module docstring).
        """
        try:
            with get_local_path(self.ann_file, backend_args=self.backend_args) as path:
                with open(path, encoding='utf-8') as f:
                    content = json.load(f)
        except FileNotFoundError as error:
            raise self.error('missing annotation file', str(error),
                             'check data_root and ann_file (MME_RealWorld.json)') from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise self.error('malformed JSON', str(error), 'download the file again') from None
        if not isinstance(content, list) or not content:
            raise self.error('not an MME-RealWorld file',
                             f'the top level is {type(content).__name__} of {len(content)} items'
                             if hasattr(content, '__len__') else 'no list of records',
                             'give MME_RealWorld.json: a JSON list of question records')
        return [self._info(index, record) for index, record in enumerate(content)]

    def _info(self, index: int, record) -> dict:
        if not isinstance(record, dict):
            raise self.error('not a record', f'got a {type(record).__name__}',
                             'each entry must be a JSON object', index)
        missing = [key for key in MME_REALWORLD_KEYS if record.get(key) is None]
        if missing:
            raise self.error('missing key', f'keys {missing} are missing or null',
                             f'every record needs {list(MME_REALWORLD_KEYS)}', index)
        try:
            options = normalize_options(record['Answer choices'])
        except ValueError as error:
            options = {}
            detail = str(error)
        else:
            detail = f"Answer choices is {record['Answer choices']!r}"
        if len(options) < 2:
            raise self.error('malformed options', detail,
                             'give "Answer choices" as ["(A) ...", "(B) ...", ...]', index)
        answer = check_answer_letter(record['Ground truth'], tuple(options))
        if answer is None:
            raise self.error('answer not among the options',
                             f"Ground truth {record['Ground truth']!r}, options {sorted(options)}",
                             'the ground truth must be the letter of one of its answer choices',
                             index)
        img_path = osp.join(self.data_prefix['img'], str(record['Image']))
        height, width = self.image_size(img_path, index)
        task, subtask = str(record['Task']), str(record['Subtask'])
        return multiple_choice_info(
            img_path=img_path, img_id=str(record['Image']), ann_index=index,
            question=str(record['Text']).strip(), options=options, answer=answer,
            attribute=f'{task}/{subtask}', height=height, width=width,
            benchmark=dict(question_id=record['Question_id'], task=task, subtask=subtask,
                           category=str(record['Category'])))
