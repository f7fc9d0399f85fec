# Copyright (c) finers_mm contributors. All rights reserved.
"""HR-Bench 4K / 8K (``DreamMr/HR-Bench``) as published: the TSV with base64 images, or parquet.

Files (the Hugging Face dataset repository): ``hr_bench_4k.tsv`` / ``hr_bench_8k.tsv`` (the
VLMEvalKit TSVs, 800 rows each; the 8K file is 4.6 GB) and the parquet variant of the same rows
(the ``hrbench_version_split`` config: ``hrbench_4k`` / ``hrbench_8k`` splits, as lmms-eval reads
them). Columns, read by name from the header / schema::

    index  question  A  B  C  D  answer  category  cycle_category  image

``A``-``D`` are the options (any single capital-letter column with a value is an option),
``answer`` the correct letter, ``category`` the task (``FSP`` fine-grained single-instance /
``FCP`` fine-grained cross-instance perception; lmms-eval's parquet names them ``single`` /
``cross``, read as FSP / FCP), ``cycle_category`` the option-order cycle (each question is asked
once per rotation of its options) and ``image`` the base64 image. A VLMEvalKit TSV may store an
image once: a row whose ``image`` is at most 64 characters and equals another row's ``index``
uses that row's image (VLMEvalKit's ``ImageBaseDataset`` rule).

**Memory.** Nothing holds the file: the TSV is indexed once (byte span per row, fields without
the image) and each image is decoded from its row only when the pipeline loads it
(:mod:`.lazy_images`); the parquet's non-image columns are read at load, its images one row group
at a time. ``benchmarks/bench_hrbench_memory.py`` measures the resident memory. The image size is
not known at load (it would need a decode), so the data infos carry no ``height`` / ``width``.

**Scoring** (:class:`~finers_mm.evaluation.HRBenchMetric`): HR-Bench's ``HRBenchDataset.evaluate``
(DreamMr/HR-Bench, ``hrbench/vlmeval/dataset/image_mcq.py``) groups the rows by
``cycle_category``, scores each group (all rows and per category) and averages the groups (the
``avg`` rows). Their released code asks an LLM judge whether a free-form answer is right; here
the answer is read as an option letter by the project's multiple-choice rule (lmms-eval compares
letters too, after a GPT extraction), so no judge model is needed.

Bad input (at load): a missing column, a row whose answer letter is not among its options, an
image field that is neither base64 nor another row's index; an undecodable base64 image raises
when it is decoded. Each error names the file, the row and the fix.
"""
import os
import os.path as osp
import string
from typing import Dict, List, Tuple

from finers_mm.registry import DATASETS
from .lazy_images import (LazyImageError, index_tsv, parquet_image_uri, tsv_image_uri)
from .vqa_base import VQABenchmarkDataset, check_answer_letter, multiple_choice_info

#: the columns every HR-Bench row needs
HRBENCH_COLUMNS = ('index', 'question', 'answer', 'category', 'cycle_category', 'image')
#: lmms-eval's parquet category names -> the paper's
CATEGORY_ALIASES = {'single': 'FSP', 'cross': 'FCP'}


@DATASETS.register_module()
class HRBenchDataset(VQABenchmarkDataset):
    """HR-Bench 4K or 8K from its TSV or parquet file (layout, memory, scoring: module docstring).

    Args:
        ann_file (str): ``hr_bench_4k.tsv`` / ``hr_bench_8k.tsv``, a ``.parquet`` file, or a
            folder of ``.parquet`` shards (read in sorted order).
        image_column (str): the column of the images. Defaults to ``'image'``.
        **kwargs: :class:`~.VQABenchmarkDataset` arguments.
    """

    def __init__(self, *args, image_column: str = 'image', **kwargs) -> None:
        self.image_column = image_column
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        """One data info per row.

        Returns:
            list[dict]: the data infos in file order.

        Raises:
            FineRSAnnotationError: a missing file or column, a bad row (module docstring).
        """
        if not osp.exists(self.ann_file):
            raise self.error('missing annotation file', f'{self.ann_file} does not exist',
                             'check data_root and ann_file (hr_bench_4k.tsv, hr_bench_8k.tsv or '
                             'the parquet file)')
        if osp.isdir(self.ann_file) or self.ann_file.endswith('.parquet'):
            rows = self._parquet_rows()
        else:
            rows = self._tsv_rows()
        if not rows:
            raise self.error('no records', 'the file has no rows',
                             'download the benchmark file again')
        return [self._info(index, fields, uri, where) for index, (fields, uri, where)
                in enumerate(rows)]

    def _tsv_rows(self) -> List[Tuple[Dict[str, str], str, str]]:
        try:
            header, rows = index_tsv(self.ann_file, self.image_column)
        except LazyImageError as error:
            raise self.error('malformed TSV', str(error), 'download the file again') from None
        self._check_columns(header, self.ann_file)
        column = header.index(self.image_column)
        # VLMEvalKit stores a repeated image once; other rows hold that row's index
        by_index = {row.fields['index']: (number, row) for number, row in enumerate(rows)
                    if row.short_image is None}
        result = []
        for number, row in enumerate(rows):
            target_number, target = number, row
            if row.short_image is not None:
                if row.short_image not in by_index:
                    raise self.error(
                        'malformed image field', f"row {number} (index {row.fields['index']}): "
                        f'its image field {row.short_image!r} is neither a base64 image nor the '
                        'index of another row', 'download the file again', number)
                target_number, target = by_index[row.short_image]
            uri = tsv_image_uri(self.ann_file, target.offset, target.length, column,
                                target_number)
            result.append((row.fields, uri, self.ann_file))
        return result

    def _check_columns(self, header: List[str], where: str) -> None:
        missing = [c for c in HRBENCH_COLUMNS if c != 'image' and c not in header]
        if self.image_column not in header:
            missing.append(self.image_column)
        if missing:
            raise self.error('missing columns', f'the header has {header}, not {missing}',
                             'give the published HR-Bench file (index, question, A-D, answer, '
                             'category, cycle_category, image)', where=where)

    def _parquet_rows(self) -> List[Tuple[Dict[str, str], str, str]]:
        import pyarrow.parquet as pq
        files = ([osp.join(self.ann_file, name) for name in sorted(os.listdir(self.ann_file))
                  if name.endswith('.parquet')] if osp.isdir(self.ann_file) else [self.ann_file])
        result = []
        for path in files:
            parquet = pq.ParquetFile(path)
            names = parquet.schema_arrow.names
            self._check_columns(names, path)
            columns = [name for name in names if name != self.image_column]
            for group in range(parquet.num_row_groups):
                table = parquet.read_row_group(group, columns=columns)
                for k, record in enumerate(table.to_pylist()):
                    fields = {key: ('' if value is None else str(value))
                              for key, value in record.items()}
                    result.append((fields, parquet_image_uri(path, group, k, self.image_column),
                                   path))
        return result

    def _info(self, number: int, fields: Dict[str, str], uri: str, where: str) -> dict:
        options = {key: value.strip() for key, value in fields.items()
                   if len(key) == 1 and key in string.ascii_uppercase and value.strip()
                   and value.strip().lower() != 'nan'}
        answer = check_answer_letter(fields.get('answer'), tuple(options))
        if answer is None:
            raise self.error(
                'answer not among the options', f"row {number} (index {fields.get('index')}): "
                f"answer {fields.get('answer')!r}, options {sorted(options)}",
                'the answer must be the letter of one of the row\'s non-empty option columns',
                number, where)
        question = fields.get('question', '').strip()
        if not question:
            raise self.error('empty question', f"row {number} (index {fields.get('index')})",
                             'give the question text', number, where)
        category = fields.get('category', '').strip()
        category = CATEGORY_ALIASES.get(category.lower(), category)
        return multiple_choice_info(
            img_path=uri, img_id=str(fields.get('index')), ann_index=number, question=question,
            options=options, answer=answer, attribute=category,
            benchmark=dict(index=fields.get('index'), category=category,
                           cycle_category=fields.get('cycle_category', '').strip()))
