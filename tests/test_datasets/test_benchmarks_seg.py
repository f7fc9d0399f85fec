# Copyright (c) finers_mm contributors. All rights reserved.
"""ReasonSeg (LISA's folders, the hub's parquet mirror) and RefCOCO (mmdet's RefCocoDataset) as
FineRS segmentation questions: fixtures in the published layouts, LISA's raster re-derived, and
bad input named at load time."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope
from pycocotools import mask as mask_utils

from finers_mm.datasets.benchmarks import (ReasonSegAnnotationError, ReasonSegDataset,
                                           ReasonSegParquetDataset, RefCocoQuestions,
                                           lisa_label_map)
from finers_mm.registry import DATASETS
from finers_mm.testing import REPO_ROOT
from finers_mm.testing.seg_benchmarks import (rectangle, write_reasonseg_folder,
                                              write_reasonseg_parquet, write_refcoco)
from finers_mm.utils.run_config import load_config

BENCHMARKS = osp.join(REPO_ROOT, 'configs', 'benchmarks')
SIZE = (48, 36)


def get_mask_from_json(shapes, height, width):
    """LISA's utils/data_processing.py::get_mask_from_json, its control flow, on given shapes."""
    area_list, valid_poly_list = [], []
    for i in shapes:
        if 'flag' == i['label'].lower():
            continue
        tmp_mask = np.zeros((height, width), dtype=np.uint8)
        cv2.polylines(tmp_mask, np.array([i['points']], dtype=np.int32), True, 1, 1)
        cv2.fillPoly(tmp_mask, np.array([i['points']], dtype=np.int32), 1)
        area_list.append(tmp_mask.sum())
        valid_poly_list.append(i)
    sort_index = list(np.argsort(area_list)[::-1].astype(np.int32))
    mask = np.zeros((height, width), dtype=np.uint8)
    for i in [valid_poly_list[s] for s in sort_index]:
        label_value = 255 if 'ignore' in i['label'].lower() else 1
        cv2.polylines(mask, np.array([i['points']], dtype=np.int32), True, label_value, 1)
        cv2.fillPoly(mask, np.array([i['points']], dtype=np.int32), label_value)
    return mask


@pytest.mark.parametrize('seed', range(6))
def test_label_map_is_lisas_raster(seed):
    rng = np.random.default_rng(seed)
    height, width = 40, 56
    shapes = []
    for _ in range(int(rng.integers(1, 6))):
        count = int(rng.integers(3, 8))
        points = rng.uniform(-3, [width + 3, height + 3], (count, 2)).tolist()
        label = str(rng.choice(['target', 'ignore', 'Ignore_1', 'flag', 'Flag']))
        shapes.append(dict(label=label, points=points))
    expected = get_mask_from_json(shapes, height, width)
    parsed = [dict(label=s['label'], points=np.asarray(s['points'], float)) for s in shapes]
    np.testing.assert_array_equal(lisa_label_map(parsed, height, width), expected)


def folder(tmp_path, images):
    write_reasonseg_folder(str(tmp_path / 'ReasonSeg' / 'val'), images)
    return dict(data_root=str(tmp_path / 'ReasonSeg') + '/', data_prefix=dict(img='val/'),
                test_mode=True)


IMAGES = [
    dict(name='b', size=SIZE, text=['What can hold water? ', 'the cup'], is_sentence=True,
         shapes=[dict(label='target', points=rectangle(2, 2, 9, 9))]),
    dict(name='a', size=SIZE, text=['the lamp'], is_sentence=False,
         shapes=[dict(label='target', points=rectangle(5, 5, 20, 20)),
                 dict(label='ignore', points=rectangle(8, 8, 10, 10)),
                 dict(label='flag', points=[[1, 1]])]),
]


def test_reasonseg_folder_one_sample_per_image_or_per_query(tmp_path):
    args = folder(tmp_path, IMAGES)
    dataset = ReasonSegDataset(**args)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    assert [(i['img_id'], i['question'], i['query_type'], i['text_index']) for i in infos] == [
        ('a', 'the lamp', 'short', 0), ('b', 'What can hold water?', 'long', 0)]  # LISA: text[0]
    assert infos[0]['question_type'] == 'segmentation' and infos[0]['options'] == {}
    assert (infos[0]['height'], infos[0]['width']) == (36, 48)
    assert infos[0]['json_path'].endswith(osp.join('val', 'a.json'))
    every = ReasonSegDataset(queries='all', **args)
    assert [every.get_data_info(i)['question'] for i in range(len(every))] == [
        'the lamp', 'What can hold water?', 'the cup']
    longs = ReasonSegDataset(queries='all', query_types='long', **args)
    assert [longs.get_data_info(i)['ann_index'] for i in range(len(longs))] == [0, 1]
    with pytest.raises(ValueError, match='queries'):
        ReasonSegDataset(queries='some', **args)
    with pytest.raises(ValueError, match='query_types'):
        ReasonSegDataset(query_types=['medium'], **args)


def test_reasonseg_tiny_config_pipeline_packs_target_ignore_and_query(tmp_path):
    args = folder(tmp_path, IMAGES)
    init_default_scope('finers_mm')
    cfg = load_config(osp.join(BENCHMARKS, 'reasonseg_finers_tiny.py'),
                      {'test_dataloader.dataset.data_root': args['data_root']})
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    packed = dataset[0]
    sample = packed['data_samples']
    assert set(packed['inputs']) == {'explorer', 'original'}
    assert tuple(packed['inputs']['original'].shape) == (36, 48, 3)
    assert tuple(packed['inputs']['explorer'].shape) == (1080, 1920, 3)
    # 16 x 16 target with a 3 x 3 ignore hole; the flag is dropped
    assert sample.gt_instances.masks.areas.tolist() == [16 * 16 - 9]
    assert sample.gt_ignore_mask.sum() == 9 and sample.gt_ignore_mask[8:11, 8:11].all()
    assert sample.gt_instances.bboxes.tolist() == [[5, 5, 21, 21]]
    assert (sample.question, sample.query_type, sample.is_sentence) == ('the lamp', 'short', False)
    assert dataset[1]['data_samples'].gt_ignore_mask is None


@pytest.mark.parametrize('change, match', [
    (dict(write_image=False), r'b\.json: missing image'),
    (dict(write_json=False), r'b\.jpg: missing annotation'),
    (dict(json=dict(text=['x'], is_sentence=False)), r"b\.json: no \['shapes'\]"),
    (dict(json=dict(shapes=[], is_sentence=False)), r"b\.json: no \['text'\]"),
    (dict(json=dict(text='a string', is_sentence=False, shapes=[])), r'b\.json: "text" is'),
    (dict(json=dict(text=['x'], is_sentence='yes', shapes=[])), r'b\.json: "is_sentence"'),
    (dict(json=dict(text=['x'], is_sentence=True, shapes=[
        dict(label='target', points=[[1, 1], [5, 5]])])),
     r"b\.json, shape 0 \('target'\): the polygon has 2 point\(s\), fewer than 3"),
    (dict(json=dict(text=['x'], is_sentence=True, shapes=[
        dict(label='ignore', points=[[1, 1], [5, 'a'], [3, 3]])])),
     r"b\.json, shape 0 \('ignore'\): \"points\" is"),
    (dict(json=[1, 2]), r'b\.json: the top level is a list'),
])
def test_reasonseg_bad_input_names_the_file_and_the_fix(tmp_path, change, match):
    images = [dict(IMAGES[0], **change), IMAGES[1]]
    with pytest.raises(ReasonSegAnnotationError, match=match + '.*Fix: '):
        ReasonSegDataset(**folder(tmp_path, images))


def test_reasonseg_bad_files_and_folders(tmp_path):
    args = folder(tmp_path, IMAGES)
    with open(osp.join(args['data_root'], 'val', 'a.json'), 'w') as f:
        f.write('{"text": [')
    with pytest.raises(ReasonSegAnnotationError, match=r'a\.json: not a JSON file'):
        ReasonSegDataset(**args)
    with open(osp.join(args['data_root'], 'val', 'a.json'), 'w') as f:
        json.dump(dict(text=['x'], is_sentence=False, shapes=[]), f)
    with open(osp.join(args['data_root'], 'val', 'a.jpg'), 'r+b') as f:
        f.truncate(200)  # a cut JPEG
    with pytest.raises(ReasonSegAnnotationError, match=r'a\.jpg: (truncated|unreadable) image'):
        ReasonSegDataset(**args)
    with pytest.raises(ReasonSegAnnotationError, match='no such folder'):
        ReasonSegDataset(**dict(args, data_prefix=dict(img='test/')))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ReasonSegAnnotationError, match=r'no \.jpg image'):
        ReasonSegDataset(data_root=str(tmp_path / 'empty'), test_mode=True)
    args = folder(tmp_path / 'short', [IMAGES[1]])
    with pytest.raises(ReasonSegAnnotationError, match=r"no query of the types \['long'\]"):
        ReasonSegDataset(query_types='long', **args)


def test_reasonseg_lisa_cp1252_json_is_read(tmp_path):
    args = folder(tmp_path, [IMAGES[1]])
    with open(osp.join(args['data_root'], 'val', 'a.json'), 'wb') as f:
        f.write('{"text": ["the caf\u00e9 sign"], "is_sentence": false, "shapes": []}'
                .encode('cp1252'))
    assert ReasonSegDataset(**args).get_data_info(0)['question'] == 'the caf\u00e9 sign'


def test_reasonseg_parquet_mirror_reads_rows_lazily(tmp_path):
    masks = [np.random.default_rng(i).random((36, 48)) > 0.7 for i in range(5)]
    path = write_reasonseg_parquet(
        str(tmp_path / 'ReasonSeg_val' / 'data' / 'test-00000-of-00001.parquet'),
        [dict(size=SIZE, text=f'query {i} ', mask=m) for i, m in enumerate(masks)],
        row_group_size=2)
    init_default_scope('finers_mm')
    cfg = load_config(osp.join(BENCHMARKS, 'reasonseg_finers_tiny.py'))
    for ann_file in (path, osp.dirname(path)):  # the file or its folder
        dataset = DATASETS.build(dict(cfg.reasonseg_parquet_dataset, ann_file=ann_file))
        assert isinstance(dataset, ReasonSegParquetDataset) and len(dataset) == 5
    for index in (4, 0, 3):  # out of order: row groups are re-read as needed
        sample = dataset[index]['data_samples']
        np.testing.assert_array_equal(sample.gt_instances.masks.masks[0], masks[index])
        assert sample.question == f'query {index}' and sample.gt_ignore_mask is None
        assert sample.img_id == f'img{index}' and sample.ori_shape == (36, 48)
        assert 'query_type' not in sample
    info = dataset.get_data_info(1)
    assert info['img_path'].startswith('parquet-image://') and info['gt_mask'].shape == (36, 48)


def test_reasonseg_parquet_bad_input(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    path = str(tmp_path / 'no_mask.parquet')
    pq.write_table(pa.table(dict(text=['x'], image=[b''])), path)
    with pytest.raises(ReasonSegAnnotationError, match=r"no_mask\.parquet: no column \['mask'\]"):
        ReasonSegParquetDataset(ann_file=path, test_mode=True)
    with pytest.raises(ReasonSegAnnotationError, match='no such parquet file'):
        ReasonSegParquetDataset(ann_file=str(tmp_path / 'missing'), test_mode=True)
    path = write_reasonseg_parquet(str(tmp_path / 'empty_text.parquet'),
                                   [dict(size=SIZE, text=' ', mask=np.zeros((36, 48)))])
    with pytest.raises(ReasonSegAnnotationError, match=r'empty_text\.parquet, row 0: "text"'):
        ReasonSegParquetDataset(ann_file=path, test_mode=True)
    path = write_reasonseg_parquet(str(tmp_path / 'small_mask.parquet'),
                                   [dict(size=SIZE, text='x', mask=np.zeros((30, 48)))])
    dataset = ReasonSegParquetDataset(ann_file=path, test_mode=True)
    with pytest.raises(ReasonSegAnnotationError, match=r'small_mask\.parquet, row 0: the mask is '
                       r'48x30 but img_width x img_height is 48x36'):
        dataset.get_data_info(0)


def refcoco_fixture(tmp_path):
    root = str(tmp_path / 'coco') + '/'
    return write_refcoco(root, 'refcoco', [
        dict(id=7, size=SIZE, refs=[
            dict(polygon=[2, 2, 20, 2, 20, 15, 2, 15], sentences=['Left box', 'the box'],
                 split='val'),
            dict(polygon=[25, 5, 45, 5, 25, 30], sentences=['the triangle'], split='val')]),
        dict(id=9, size=SIZE, refs=[
            dict(polygon=[5, 5, 9, 5, 9, 9], sentences=['test only'], split='testA')]),
    ], 'refs(unc).p')


@pytest.mark.parametrize('text_mode, texts', [
    ('select_first', ['left box', 'the triangle']),
    ('original', ['left box', 'the box', 'the triangle']),
])
def test_refcoco_one_question_per_expression_through_mmdets_dataset(tmp_path, text_mode, texts):
    root = refcoco_fixture(tmp_path)
    init_default_scope('finers_mm')
    cfg = load_config(osp.join(BENCHMARKS, 'refcoco_finers_tiny.py'), {
        'test_dataloader.dataset.dataset.data_root': root,
        'test_dataloader.dataset.dataset.text_mode': text_mode})
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    assert isinstance(dataset, RefCocoQuestions)
    assert type(dataset.dataset).__name__ == 'RefCocoDataset'
    assert type(dataset.dataset).__module__ == 'mmdet.datasets.refcoco'
    assert [dataset.get_data_info(i)['text'] for i in range(len(dataset))] == texts
    coco = json.load(open(osp.join(root, 'refcoco', 'instances.json')))
    polygons = {tuple(a['segmentation'][0]): a for a in coco['annotations']}
    for index in range(len(dataset)):
        packed = dataset[index]
        sample = packed['data_samples']
        assert sample.question == texts[index] and sample.question_type == 'segmentation'
        assert sample.img_id == 7 and sample.sample_idx == index
        # the GT is pycocotools' raster of the expression's polygon (mmdet's LoadAnnotations)
        [polygon] = dataset.get_data_info(index)['instances'][0]['mask']
        rle = mask_utils.merge(mask_utils.frPyObjects([polygon], 36, 48))
        expected = mask_utils.decode(rle).astype(bool)
        np.testing.assert_array_equal(sample.gt_instances.masks.masks[0], expected)
        assert sample.gt_masks is sample.gt_instances.masks  # where RefSegMetric reads it
        assert tuple(polygon) in polygons
    split = load_config(osp.join(BENCHMARKS, 'refcoco_finers_tiny.py'), {
        'test_dataloader.dataset.dataset.data_root': root,
        'test_dataloader.dataset.dataset.split': 'testA'})
    assert len(DATASETS.build(split.test_dataloader.dataset)) == 1


def test_refcoco_transform_and_wrapper_errors(tmp_path):
    from finers_mm.datasets.benchmarks import RefExpressionToQuestion
    with pytest.raises(ValueError, match='one referring expression'):
        RefExpressionToQuestion()(dict(img_path='x.jpg', text=['a', 'b']))
    with pytest.raises(ValueError, match='LoadAnnotations'):
        RefExpressionToQuestion()(dict(img_path='x.jpg', text='a'))
    root = refcoco_fixture(tmp_path)
    init_default_scope('finers_mm')
    cfg = load_config(osp.join(BENCHMARKS, 'refcoco_finers_tiny.py'), {
        'test_dataloader.dataset.dataset.data_root': root,
        'test_dataloader.dataset.dataset.split': 'testB'})
    with pytest.raises(ValueError, match='No sample in split "testB"'):  # mmdet's own message
        DATASETS.build(cfg.test_dataloader.dataset)
