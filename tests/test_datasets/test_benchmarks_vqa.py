# Copyright (c) finers_mm contributors. All rights reserved.
"""The VQA benchmark datasets read fixtures written in each benchmark's published layout: V*
(per-image JSON + test_questions.jsonl, options shuffled per question), HR-Bench (TSV with base64
images, decoded lazily, and the parquet variant), MME-RealWorld (JSON + image folders); bad input
names the file, the record and the fix."""
import base64
import os.path as osp

import numpy as np
import pytest
from mmengine.registry import init_default_scope

from finers_mm.datasets import FineRSAnnotationError
from finers_mm.datasets.benchmarks import (HRBenchDataset, LazyImageError, MMERealWorldDataset,
                                           VStarDataset)
from finers_mm.datasets.image_files import decode_image
from finers_mm.testing.vqa_benchmarks import (hrbench_rows, write_hrbench_parquet,
                                              write_hrbench_tsv, write_mme_realworld, write_vstar)

PIPELINE = [dict(type='LoadFineRSImage'), dict(type='ExplorerView', frame_size=(64, 36)),
            dict(type='PackFineRSInputs', views=('explorer', 'original'),
                 meta_keys=('img_id', 'question', 'options', 'answer', 'benchmark'))]


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('finers_mm')


def _vstar_questions(count=12):
    return [dict(subset=('direct_attributes', 'relative_position')[k % 2], name=f'sa_{k}',
                 question=f'What is the colour of thing {k}?',
                 options=[f'right{k}', f'wrong{k}a', f'wrong{k}b', f'wrong{k}c'][:4 - 2 * (k % 2)])
            for k in range(count)]


def test_vstar_reads_the_published_layout_and_shuffles_options_per_question(tmp_path):
    questions = _vstar_questions()
    questions[0].update(orientation=6, size=(64, 48))  # EXIF "rotate 90": displayed 48x64
    root = write_vstar(str(tmp_path / 'vstar'), questions)
    dataset = VStarDataset(data_root=root, pipeline=PIPELINE, test_mode=True)
    assert len(dataset) == 12
    infos = [dataset.get_data_info(i) for i in range(12)]
    for k, info in enumerate(infos):
        assert info['question_type'] == 'multiple_choice'
        assert info['options'][info['answer']] == f'right{k}'  # the correct text at its letter
        assert len(info['options']) == (4 if k % 2 == 0 else 2)
        assert info['attribute'] == info['benchmark']['subset'] == questions[k]['subset']
    assert len({info['answer'] for info in infos}) > 1  # not always A
    assert (infos[0]['height'], infos[0]['width']) == (64, 48)
    np.testing.assert_allclose(infos[1]['benchmark']['target_boxes'], [[4, 4, 14, 12]])
    # deterministic per question: the same options whatever the order of the file
    lines = open(osp.join(root, 'test_questions.jsonl')).read().splitlines()
    with open(osp.join(root, 'reversed.jsonl'), 'w') as f:
        f.write('\n'.join(reversed(lines)))
    again = VStarDataset(data_root=root, ann_file='reversed.jsonl', test_mode=True)
    by_image = {again.get_data_info(i)['img_id']: again.get_data_info(i) for i in range(12)}
    for info in infos:
        assert by_image[info['img_id']]['options'] == info['options']
    published = VStarDataset(data_root=root, shuffle_seed=None, test_mode=True)
    assert {published.get_data_info(i)['answer'] for i in range(12)} == {'A'}
    walked = VStarDataset(data_root=root, ann_file='', test_mode=True)
    assert sorted(walked.get_data_info(i)['img_id'] for i in range(12)) == sorted(by_image)
    sample = dataset[0]
    assert tuple(sample['inputs']['original'].shape) == (64, 48, 3)  # as displayed
    assert sample['data_samples'].benchmark['subset'] == 'direct_attributes'


def test_vstar_missing_image_names_the_file_record_and_fix(tmp_path):
    root = write_vstar(str(tmp_path / 'vstar'), _vstar_questions(3))
    import os
    os.remove(osp.join(root, 'relative_position', 'sa_1.jpg'))
    with pytest.raises(FineRSAnnotationError, match=r'test_questions.jsonl, record 1: missing '
                       r'image file.*sa_1.jpg.*Fix: check data_root'):
        VStarDataset(data_root=root, test_mode=True)


def _hrbench(count=6):
    rows = [dict(question=f'Question {k}?', A=f'a{k}', B=f'b{k}', C=f'c{k}', D=f'd{k}',
                 answer='ABCD'[k % 4], category=('FSP', 'FCP')[k % 2],
                 cycle_category=f'cycle{k // 2}') for k in range(count)]
    rows[1]['question'] = 'A "quoted"\tquestion\nover two lines?'  # pandas quotes this field
    return rows


def test_hrbench_tsv_is_indexed_once_and_decoded_lazily(tmp_path):
    rows = _hrbench()
    rows[3]['image'] = '0'  # VLMEvalKit: the image of the row whose index is 0
    path = write_hrbench_tsv(str(tmp_path / 'hr_bench_4k.tsv'), rows)
    dataset = HRBenchDataset(ann_file=path, pipeline=PIPELINE, test_mode=True)
    assert len(dataset) == 6
    info = dataset.get_data_info(1)
    assert info['question'] == 'A "quoted"\tquestion\nover two lines?'
    assert info['options'] == dict(A='a1', B='b1', C='c1', D='d1') and info['answer'] == 'B'
    assert info['benchmark'] == dict(index='1', category='FCP', cycle_category='cycle0')
    assert info['img_path'].startswith('tsv-image://') and 'height' not in info
    full = hrbench_rows(rows)
    for k in range(6):  # the loader decodes the row's base64 image, row 3 row 0's
        expected = decode_image(base64.b64decode(full[0 if k == 3 else k]['image']))
        np.testing.assert_array_equal(dataset[k]['inputs']['original'].numpy(), expected)


def test_hrbench_parquet_variant_matches_the_tsv(tmp_path):
    rows = _hrbench()
    rows[4]['category'] = 'single'  # lmms-eval's parquet name of FSP
    tsv = HRBenchDataset(ann_file=write_hrbench_tsv(str(tmp_path / 'a.tsv'), rows),
                         pipeline=PIPELINE, test_mode=True)
    parquet = HRBenchDataset(ann_file=write_hrbench_parquet(str(tmp_path / 'a.parquet'), rows),
                             pipeline=PIPELINE, test_mode=True)
    assert len(parquet) == len(tsv) == 6
    for k in range(6):
        a, b = tsv.get_data_info(k), parquet.get_data_info(k)
        for key in ('question', 'options', 'answer', 'benchmark'):
            assert a[key] == b[key], key
        assert b['img_path'].startswith('parquet-image://')
        np.testing.assert_array_equal(tsv[k]['inputs']['original'],
                                      parquet[k]['inputs']['original'])
    assert parquet.get_data_info(4)['benchmark']['category'] == 'FSP'


def test_hrbench_bad_rows_name_the_file_row_and_fix(tmp_path):
    rows = _hrbench()
    rows[2]['answer'] = 'E'
    path = write_hrbench_tsv(str(tmp_path / 'bad.tsv'), rows)
    with pytest.raises(FineRSAnnotationError,
                       match=r'bad.tsv, record 2: answer not among the options.*index 2.*Fix'):
        HRBenchDataset(ann_file=path, test_mode=True)
    rows = _hrbench()
    rows[5]['image'] = 'not*base64' * 20
    path = write_hrbench_tsv(str(tmp_path / 'broken.tsv'), rows)
    dataset = HRBenchDataset(ann_file=path, pipeline=PIPELINE, test_mode=True)  # found lazily
    dataset[4]
    with pytest.raises(LazyImageError, match=r'broken.tsv, row 5: the image field is not valid '
                       r'base64.*Fix'):
        dataset[5]
    rows = _hrbench()
    rows[1]['image'] = '99'
    with pytest.raises(FineRSAnnotationError, match=r'record 1: malformed image field'):
        HRBenchDataset(ann_file=write_hrbench_tsv(str(tmp_path / 'ref.tsv'), rows),
                       test_mode=True)


def _mme_records():
    return [{'Question_id': f'perception/rs/{k}', 'Image': f'remote_sensing/{k:05d}.png',
             'Text': f'What is shown at spot {k}?',
             'Answer choices': [f'({letter}) option {letter}{k}' for letter in 'ABCDE'],
             'Ground truth': 'ABCDE'[k % 5], 'Task': ('Perception', 'Reasoning')[k % 2],
             'Subtask': 'Remote Sensing', 'Category': 'color'} for k in range(4)]


def test_mme_realworld_reads_the_json_and_image_folders(tmp_path):
    root = write_mme_realworld(str(tmp_path / 'mme'), _mme_records())
    dataset = MMERealWorldDataset(data_root=root, pipeline=PIPELINE, test_mode=True)
    info = dataset.get_data_info(2)
    assert info['options'] == {letter: f'option {letter}2' for letter in 'ABCDE'}
    assert info['answer'] == 'C' and (info['height'], info['width']) == (40, 56)
    assert info['benchmark'] == dict(question_id='perception/rs/2', task='Perception',
                                     subtask='Remote Sensing', category='color')
    assert dataset[2]['inputs']['original'].shape == (40, 56, 3)


def test_mme_realworld_bad_records_name_the_file_record_and_fix(tmp_path):
    records = _mme_records()
    records[1]['Ground truth'] = 'F'
    root = write_mme_realworld(str(tmp_path / 'a'), records)
    with pytest.raises(FineRSAnnotationError, match=r'MME_RealWorld.json, record 1: answer not '
                       r"among the options.*'F'.*Fix"):
        MMERealWorldDataset(data_root=root, test_mode=True)
    records = _mme_records()
    records[3]['write_image'] = False
    root = write_mme_realworld(str(tmp_path / 'b'), records)
    with pytest.raises(FineRSAnnotationError, match=r'record 3: missing image file.*00003.png'):
        MMERealWorldDataset(data_root=root, test_mode=True)
