# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRS4kDataset: parsing of the authors' annotation JSON and bad-input handling (CPU, fast)."""
import copy
import json
import os.path as osp
import pickle

import cv2
import numpy as np
import pytest
from mmcv.transforms import Compose
from PIL import Image

from finers_mm.datasets import finers4k, image_files
from finers_mm.datasets.finers4k import FineRS4kDataset, FineRSAnnotationError
from finers_mm.registry import DATASETS, TRANSFORMS
from finers_mm.structures.masks import mask_bbox, rasterize_polygon
from finers_mm.testing import REPO_ROOT

W, H = 320, 240
CONFIG = osp.join(REPO_ROOT, 'configs', '_base_', 'datasets', 'finers4k.py')


def seg_record(**overrides) -> dict:
    """A valid referring (segmentation) record on a.png; ``overrides`` replace or add keys."""
    record = {
        'image_path': 'a.png',
        'Q': 'Please segment the white car next to the tree.',
        'A': 'The object is found.',
        'Q-type': 'referring',
        'points': [[10, 20], [30, 20], [30, 35], [10, 35]],
        'attribute': 'colors',
        'area_percent': 0.0042,
    }
    record.update(overrides)
    return record


def option_record(**overrides) -> dict:
    """A valid multiple-choice record on b.png."""
    return seg_record(**dict(dict(
        image_path='b.png', Q='What color is the boat?', A='B', options=['red', 'white', 'blue'],
        **{'Q-type': 'option'}), **overrides))


def open_record(**overrides) -> dict:
    """A valid open-question record on a.png with a best_region."""
    return seg_record(**dict(dict(
        Q='What is parked next to the tree?', A='truck', attribute='others',
        best_region=[0, 0, 256, 256], **{'Q-type': 'reasoning'}), **overrides))


def without(record: dict, key: str) -> dict:
    record = dict(record)
    del record[key]
    return record


@pytest.fixture
def data_root(tmp_path):
    """A data root with images/a.png, images/b.png (W x H), images/broken.png (not an image) and
    images/truncated.{jpg,png} (W x H, cut short: a valid header, pixel data that stops early)."""
    (tmp_path / 'images').mkdir()
    for name in ('a.png', 'b.png'):
        Image.new('RGB', (W, H), (40, 80, 120)).save(tmp_path / 'images' / name)
    (tmp_path / 'images' / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n this is not a png')
    noise = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    for name in ('truncated.jpg', 'truncated.png'):
        Image.fromarray(noise).save(tmp_path / 'images' / name)
        path = tmp_path / 'images' / name
        path.write_bytes(path.read_bytes()[:-1000])
    (tmp_path / 'annotations').mkdir()
    return tmp_path


def write_ann(data_root, records, name='ann.json') -> str:
    """Write records in the authors' format; returns the ann_file relative to data_root."""
    with open(data_root / 'annotations' / name, 'w') as f:
        json.dump({'annotations': records}, f)
    return f'annotations/{name}'


def build(data_root, records, **kwargs) -> FineRS4kDataset:
    """The dataset on ``records``; unserialised by default (mmengine's serialisation runs a full
    ``gc.collect()``, ~0.5 s per dataset here); test_serialization_and_lazy_init covers it."""
    kwargs.setdefault('serialize_data', False)
    return FineRS4kDataset(
        data_root=str(data_root), ann_file=write_ann(data_root, records),
        data_prefix=dict(img='images/'), **kwargs)


def test_every_field_parsed(data_root):
    dataset = build(data_root, [seg_record(), option_record(), open_record()])
    assert len(dataset) == 3
    seg, option, open_ = (dataset.get_data_info(i) for i in range(3))

    assert seg['img_path'] == osp.join(str(data_root), 'images/', 'a.png')
    assert seg['img_id'] == 'a.png'
    assert (seg['ann_index'], option['ann_index'], open_['ann_index']) == (0, 1, 2)
    assert (seg['height'], seg['width']) == (H, W)
    assert isinstance(seg['height'], int) and isinstance(seg['width'], int)
    assert seg['question'] == 'Please segment the white car next to the tree.'
    assert seg['answer'] == 'The object is found.'
    assert seg['attribute'] == 'colors'
    assert seg['area_percent'] == pytest.approx(0.0042)
    assert isinstance(seg['area_percent'], float)
    assert seg['size_bucket'] == 'XXS'
    assert seg['options'] == {}
    assert seg['best_region'] is None
    assert seg['gt_polygon'].dtype == np.float32 and seg['gt_polygon'].shape == (4, 2)
    np.testing.assert_array_equal(seg['gt_polygon'], [[10, 20], [30, 20], [30, 35], [10, 35]])
    assert seg['gt_bbox'].dtype == np.float32 and seg['gt_bbox'].shape == (4, )
    np.testing.assert_array_equal(seg['gt_bbox'], [10, 20, 31, 36])
    assert seg['sample_idx'] == 0

    assert [d['question_type'] for d in (seg, option, open_)] == [
        'segmentation', 'multiple_choice', 'open']
    assert option['options'] == {'A': 'red', 'B': 'white', 'C': 'blue'}
    assert option['answer'] == 'B'
    assert option['img_id'] == 'b.png'
    assert open_['answer'] == 'truck'
    assert open_['best_region'].dtype == np.float32
    np.testing.assert_array_equal(open_['best_region'], [0, 0, 256, 256])
    assert dataset.metainfo['classes'] == ('object', )
    assert dataset.get_cat_ids(1) == [0]


def test_number_answer_is_text(data_root):
    dataset = build(data_root, [open_record(A=3)])
    assert dataset.get_data_info(0)['answer'] == '3'


@pytest.mark.parametrize('area, bucket', [
    (0.0551, 'S'), (0.055, 'XS'), (0.03, 'XS'), (0.017, 'XS'), (0.0169, 'XXS'), (0.0, 'XXS')])
def test_size_bucket_thresholds(data_root, area, bucket):
    dataset = build(data_root, [seg_record(area_percent=area)])
    assert dataset.get_data_info(0)['size_bucket'] == bucket


def test_size_thresholds_from_constructor(data_root):
    dataset = build(data_root, [seg_record(area_percent=0.05)], size_thresholds=dict(s_min=0.04))
    assert dataset.size_thresholds == dict(s_min=0.04, xxs_max=0.017)
    assert dataset.get_data_info(0)['size_bucket'] == 'S'
    with pytest.raises(ValueError, match='size_thresholds'):
        build(data_root, [seg_record()], size_thresholds=dict(s_max=0.04))


POLYGONS = [
    [[10, 20], [30, 20], [30, 35], [10, 35]],
    [[10.7, 20.2], [30.9, 20.99], [25.5, 35.1]],
    [[100.5, 100.5], [102.4, 100.9], [101.2, 103.8], [99.9, 101.7]],
    [[0.2, 0.3], [5.6, 0.1], [3.3, 4.9]],
    [[50, 50], [70, 70], [70, 50], [50, 70]],  # self-intersecting bow tie: covers pixels
    [[310.5, 230.5], [321.5, 230.0], [321.9, 241.5], [312.0, 241.0]],  # overhangs W, H by < 2 px
    [[-1.5, -1.9], [6.2, -0.5], [4.0, 7.7]],  # overhangs 0 by < 2 px
    [[40.3, 40.0], [40.8, 60.0], [40.9, 40.0]],  # thin sliver: truncated vertices are collinear
    [[200.999999, 100.0], [210.5, 100.0], [205.0, 110.999999]],  # float32 rounds up to an integer
]


@pytest.mark.parametrize('polygon', POLYGONS)
def test_gt_bbox_and_polygon_match_the_authors_raster(data_root, polygon):
    info = build(data_root, [seg_record(points=polygon)]).get_data_info(0)
    authors_mask = rasterize_polygon(polygon, H, W)
    np.testing.assert_array_equal(info['gt_bbox'], mask_bbox(authors_mask))
    np.testing.assert_array_equal(rasterize_polygon(info['gt_polygon'], H, W), authors_mask)


@pytest.mark.parametrize('options, expected', [
    (['red', 'white'], {'A': 'red', 'B': 'white'}),
    (['A. red', 'B. white', 'C. blue'], {'A': 'red', 'B': 'white', 'C': 'blue'}),
    ({'A': 'red', 'B': 'white'}, {'A': 'red', 'B': 'white'}),
    ('A. red B. white C. blue D. black', {'A': 'red', 'B': 'white', 'C': 'blue', 'D': 'black'}),
    ('A: red\nB: white', {'A': 'red', 'B': 'white'}),
])
def test_options_forms(data_root, options, expected):
    info = build(data_root, [option_record(options=options)]).get_data_info(0)
    assert info['options'] == expected


def test_best_region_present_absent_null(data_root):
    dataset = build(data_root, [
        open_record(best_region=[10.5, 20, 266.5, 276]), open_record(best_region=None),
        without(open_record(), 'best_region')])
    np.testing.assert_array_equal(dataset.get_data_info(0)['best_region'], [10.5, 20, 266.5, 276])
    assert dataset.get_data_info(1)['best_region'] is None
    assert dataset.get_data_info(2)['best_region'] is None


def test_question_type_filter(data_root):
    records = [seg_record(), option_record(), open_record(), seg_record()]
    dataset = build(data_root, records, filter_cfg=dict(question_types=['segmentation']))
    assert [dataset.get_data_info(i)['ann_index'] for i in range(len(dataset))] == [0, 3]
    dataset = build(data_root, records, test_mode=True,
                    filter_cfg=dict(question_types=('multiple_choice', 'open')))
    assert [dataset.get_data_info(i)['ann_index'] for i in range(len(dataset))] == [1, 2]
    dataset = build(data_root, records, filter_cfg=dict(question_types='open'))
    assert len(dataset) == 1
    assert len(build(data_root, records)) == 4


@pytest.mark.parametrize('filter_cfg, match', [
    (dict(question_types=['referring']), 'question_types must be among'),
    (dict(filter_empty_gt=True), 'accepts only question_types'),
])
def test_question_type_filter_rejects_bad_config(data_root, filter_cfg, match):
    with pytest.raises(ValueError, match=match):
        build(data_root, [seg_record()], filter_cfg=filter_cfg)


def test_loading_decodes_no_image_and_rasterises_no_mask(data_root, monkeypatch):
    calls = []
    monkeypatch.setattr(Image.Image, 'load', lambda *a, **k: calls.append('decode'))
    import finers_mm.structures.masks as masks
    monkeypatch.setattr(masks, 'rasterize_polygon', lambda *a, **k: calls.append('raster'))
    monkeypatch.setattr(masks.cv2, 'fillPoly', lambda *a, **k: calls.append('fillPoly'))
    monkeypatch.setattr(image_files.cv2, 'imdecode', lambda *a, **k: calls.append('imdecode'))
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, 'open', lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    dataset = build(data_root, [seg_record(), option_record(), open_record(), seg_record()])
    for i in range(len(dataset)):
        dataset.get_data_info(i)
    assert calls == []
    assert len(opened) == 2  # one header read per image


def test_serialization_and_lazy_init(data_root):
    records = [seg_record(), option_record()]
    lazy = build(data_root, records, lazy_init=True, serialize_data=True)
    assert not lazy._fully_initialized
    lazy.full_init()
    plain = build(data_root, records)
    clone = pickle.loads(pickle.dumps(lazy))
    for i in range(2):
        a, b, c = lazy.get_data_info(i), plain.get_data_info(i), clone.get_data_info(i)
        assert a.keys() == b.keys() == c.keys()
        np.testing.assert_array_equal(a['gt_polygon'], b['gt_polygon'])
        np.testing.assert_array_equal(a['gt_bbox'], c['gt_bbox'])


def test_build_from_registry_and_getitem(data_root):
    ann_file = write_ann(data_root, [seg_record(), option_record(), open_record()])
    dataset = DATASETS.build(dict(
        type='FineRS4kDataset', data_root=str(data_root), ann_file=ann_file,
        data_prefix=dict(img='images/'), pipeline=[]))
    assert isinstance(dataset, FineRS4kDataset)
    assert len(dataset) == 3
    assert {dataset[i]['img_id'] for i in range(3)} == {'a.png', 'b.png'}


def test_base_config_builds_with_empty_pipeline(data_root):
    from mmengine.config import Config
    cfg = Config.fromfile(CONFIG)
    frames = cfg.frames
    explorer = [t for t in cfg.train_pipeline if t['type'] == 'ExplorerView'][0]
    refiner = [t for t in cfg.train_pipeline if t['type'] == 'RefinerCrop'][0]
    assert tuple(explorer['frame_size']) == tuple(frames['explorer_size'])
    assert explorer['region_size'] == frames['region_size']
    assert tuple(refiner['frame_size']) == tuple(frames['refiner_size'])
    assert refiner['min_side'] == frames['crop_min_side'] and refiner['mode'] == 'random'
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        dataset_cfg = copy.deepcopy(loader['dataset'])
        dataset_cfg.update(data_root=str(data_root), pipeline=[])
        (data_root / dataset_cfg['ann_file']).write_text(
            json.dumps({'annotations': [seg_record(), option_record()]}))
        dataset = DATASETS.build(dataset_cfg)
        assert len(dataset) == 2 and dataset.test_mode == (loader is not cfg.train_dataloader)


# --------------------------------------------------------------------------------- bad input

GOOD = seg_record()
#: a second valid record (not a repeat of GOOD, which would add the duplicates warning)
GOOD_2 = seg_record(Q='Please segment the blue boat.')

BAD_RECORDS = {
    'missing image file': seg_record(image_path='nope.png'),
    'unreadable image': seg_record(image_path='broken.png'),
    'unreadable image (folder)': seg_record(image_path='.'),
    'truncated image': seg_record(image_path='truncated.jpg'),
    'truncated image (png)': seg_record(image_path='truncated.png'),
    'missing polygon': without(GOOD, 'points'),
    'missing polygon (null)': seg_record(points=None),
    'missing polygon (empty)': seg_record(points=[]),
    'too few points': seg_record(points=[[1, 2], [5, 6]]),
    'degenerate polygon': seg_record(points=[[10, 10], [20, 20], [30, 30], [15.5, 15.5]]),
    'degenerate polygon (coincident)': seg_record(points=[[10, 10], [10, 10], [10, 10]]),
    'malformed polygon (nested)': seg_record(points=[[[10, 20], [30, 20], [30, 35]]]),
    'malformed polygon (flat)': seg_record(points=[10, 20, 30, 20, 30, 35]),
    'malformed polygon (ragged)': seg_record(points=[[10, 20], [30], [30, 35]]),
    'malformed polygon (nan)': seg_record(points=[[10, 20], [float('nan'), 20], [30, 35]]),
    'unknown Q-type': seg_record(**{'Q-type': 'counting'}),
    'unknown Q-type (list)': seg_record(**{'Q-type': ['referring']}),
    'missing options': without(option_record(), 'options'),
    'missing options (empty)': option_record(options=[]),
    'malformed options': option_record(options=5),
    'polygon outside image': seg_record(points=[[400, 300], [420, 300], [420, 320]]),
    'polygon outside image (partly)': seg_record(points=[[300, 200], [330, 200], [330, 230]]),
    'polygon outside image (in the tolerance band)': seg_record(
        points=[[320.5, 10], [321.5, 10], [321.5, 20]]),
    'missing key (Q)': without(GOOD, 'Q'),
    'missing key (A)': without(GOOD, 'A'),
    'missing key (image_path)': without(GOOD, 'image_path'),
    'missing key (Q-type)': without(GOOD, 'Q-type'),
    'missing key (attribute)': without(GOOD, 'attribute'),
    'missing key (area_percent)': without(GOOD, 'area_percent'),
    'malformed image_path': seg_record(image_path=7),
    'empty question': seg_record(Q='  '),
    'malformed answer': seg_record(A=['B']),
    'malformed attribute': seg_record(attribute=['colors']),
    'malformed area_percent': seg_record(area_percent='small'),
    'malformed area_percent (negative)': seg_record(area_percent=-1),
    'malformed best_region': seg_record(best_region=[0, 0, 256]),
    'malformed best_region (empty box)': seg_record(best_region=[10, 10, 10, 50]),
    'not a record': ['a.png', 'Q'],
}


def reason_of(case: str) -> str:
    return case.split(' (')[0]


@pytest.mark.parametrize('case', list(BAD_RECORDS))
def test_bad_record_raises_one_clear_error(data_root, case):
    with pytest.raises(FineRSAnnotationError) as info:
        build(data_root, [GOOD, BAD_RECORDS[case], GOOD])
    error = info.value
    assert isinstance(error, ValueError) and not isinstance(error, KeyError)
    assert (error.index, error.reason) == (1, reason_of(case))
    message = str(error)
    assert 'ann.json' in message and 'record 1' in message
    assert 'Fix: ' in message and "on_bad_record='skip'" in message


@pytest.mark.parametrize('case', list(BAD_RECORDS))
def test_bad_record_skipped_and_counted(data_root, case, monkeypatch):
    logged = []
    monkeypatch.setattr(finers4k, 'print_log', lambda msg, **kwargs: logged.append((msg, kwargs)))
    dataset = build(data_root, [GOOD, BAD_RECORDS[case], GOOD_2], on_bad_record='skip')
    assert [dataset.get_data_info(i)['ann_index'] for i in range(len(dataset))] == [0, 2]
    assert dataset.skipped_records == {reason_of(case): [1]}
    assert len(logged) == 1
    assert 'skipped 1 of 3 records' in logged[0][0] and 'ann.json' in logged[0][0]


def test_skip_mode_summarises_all_reasons_in_one_warning(data_root, monkeypatch):
    logged = []
    monkeypatch.setattr(finers4k, 'print_log', lambda msg, **kwargs: logged.append((msg, kwargs)))
    records = [GOOD, BAD_RECORDS['missing image file'], BAD_RECORDS['degenerate polygon'], GOOD_2,
               BAD_RECORDS['missing image file'], BAD_RECORDS['unknown Q-type']]
    dataset = build(data_root, records, on_bad_record='skip')
    assert len(dataset) == 2
    assert dataset.skipped_records == {
        'missing image file': [1, 4], 'degenerate polygon': [2], 'unknown Q-type': [5]}
    assert len(logged) == 1
    message, kwargs = logged[0]
    assert 'skipped 4 of 6 records' in message
    assert '2 x missing image file (records 1, 4)' in message
    assert '1 x degenerate polygon (records 2)' in message
    assert kwargs['level'] == 30  # logging.WARNING


def test_good_records_log_nothing(data_root, monkeypatch):
    logged = []
    monkeypatch.setattr(finers4k, 'print_log', lambda msg, **kwargs: logged.append(msg))
    build(data_root, [GOOD, option_record()], on_bad_record='skip')
    assert logged == []


def test_out_of_image_tolerance_is_configurable(data_root):
    overhang = seg_record(points=[[300, 200], [323.5, 200], [323.5, 230]])  # 3.5 px beyond W
    with pytest.raises(FineRSAnnotationError, match='tolerance 2 px'):
        build(data_root, [overhang])
    info = build(data_root, [overhang], out_of_image_tol=4).get_data_info(0)
    np.testing.assert_array_equal(info['gt_bbox'], [300, 200, 320, 231])


@pytest.mark.parametrize('content, match', [
    ('{"annotations": [', 'malformed JSON'),
    ('[{"image_path": "a.png"}]', 'not a FineRS-4k annotation file'),
    ('{"images": []}', 'not a FineRS-4k annotation file'),
    ('{"annotations": {"0": {}}}', 'not a FineRS-4k annotation file'),
])
@pytest.mark.parametrize('mode', ['raise', 'skip'])
def test_bad_file_always_raises(data_root, content, match, mode):
    (data_root / 'annotations' / 'bad.json').write_text(content)
    with pytest.raises(FineRSAnnotationError, match=match) as info:
        FineRS4kDataset(data_root=str(data_root), ann_file='annotations/bad.json',
                        data_prefix=dict(img='images/'), on_bad_record=mode)
    assert 'bad.json' in str(info.value) and 'Fix: ' in str(info.value)
    assert info.value.index is None


def test_missing_annotation_file(data_root):
    with pytest.raises(FineRSAnnotationError, match='missing annotation file') as info:
        FineRS4kDataset(data_root=str(data_root), ann_file='annotations/none.json',
                        data_prefix=dict(img='images/'))
    assert 'none.json' in str(info.value)


def test_bad_constructor_arguments(data_root):
    ann_file = write_ann(data_root, [GOOD])
    with pytest.raises(ValueError, match='on_bad_record'):
        FineRS4kDataset(data_root=str(data_root), ann_file=ann_file,
                        data_prefix=dict(img='images/'), on_bad_record='ignore')
    with pytest.raises(ValueError, match="data_prefix=dict\\(img="):
        FineRS4kDataset(data_root=str(data_root), ann_file=ann_file,
                        data_prefix=dict(img_path='images/'))


@pytest.mark.parametrize('name', ['truncated.jpg', 'truncated.png'])
def test_truncated_image_refused_at_load_naming_file_and_fix(data_root, name):
    """A cut-short file passes a header check; it is refused when the dataset loads, not when the
    pipeline reaches it mid-training or mid-evaluation."""
    with pytest.raises(FineRSAnnotationError, match='truncated image') as info:
        build(data_root, [GOOD, seg_record(image_path=name)])
    message = str(info.value)
    assert 'ann.json, record 1' in message and osp.join('images', name) in message
    assert 'Fix: copy the image again from its source' in message


# ----------------------------------------------------------------------- empty and repeated

def test_empty_annotation_list_names_the_file(data_root):
    for mode in FineRS4kDataset.BAD_RECORD_MODES:
        with pytest.raises(FineRSAnnotationError, match='no records') as info:
            build(data_root, [], on_bad_record=mode)
        assert 'ann.json' in str(info.value) and '"annotations" is an empty list' in str(info.value)
        assert 'Fix: add records' in str(info.value) and info.value.index is None


def test_every_record_skipped_says_why(data_root):
    records = [BAD_RECORDS['missing image file'], BAD_RECORDS['truncated image'],
               BAD_RECORDS['missing image file']]
    with pytest.raises(FineRSAnnotationError, match='no usable records') as info:
        build(data_root, records, on_bad_record='skip')
    message = str(info.value)
    assert 'ann.json' in message and 'every record was skipped (3 of 3' in message
    assert '2 x missing image file (records 0, 2)' in message
    assert '1 x truncated image (records 1)' in message
    assert "Fix: fix the records; set on_bad_record='raise'" in message


@pytest.mark.parametrize('test_mode', [False, True])
def test_filter_keeping_nothing_says_why(data_root, test_mode):
    with pytest.raises(FineRSAnnotationError, match='no records of the selected question') as info:
        build(data_root, [seg_record(), seg_record(), option_record()], test_mode=test_mode,
              filter_cfg=dict(question_types='open'))
    message = str(info.value)
    assert 'ann.json' in message and "question_types ['open']" in message
    assert "{'multiple_choice': 1, 'segmentation': 2}" in message
    assert 'Fix: add those types to filter_cfg question_types' in message


def test_duplicate_records_warn_once_with_their_indices(data_root, monkeypatch):
    logged = []
    monkeypatch.setattr(finers4k, 'print_log', lambda msg, **kwargs: logged.append((msg, kwargs)))
    same_polygon = [[10.0, 20.0], [30.0, 20.0], [30.0, 35.0], [10.0, 35.0]]  # = GOOD's, as floats
    records = [
        GOOD, option_record(), seg_record(A='another answer', points=same_polygon),  # 0 = 2
        seg_record(Q='Another question?'), seg_record(image_path='b.png'),  # not repeats
        seg_record(points=[[10, 20], [30, 20], [30, 36], [10, 35]]), option_record(), GOOD,
        BAD_RECORDS['missing image file']]  # 1 = 6, 0 = 2 = 7; the skipped one is not counted
    dataset = build(data_root, records, on_bad_record='skip')
    assert len(dataset) == 8  # kept
    duplicates = [(msg, kwargs) for msg, kwargs in logged if 'same image_path, Q and' in msg]
    assert len(duplicates) == 1
    message, kwargs = duplicates[0]
    assert 'ann.json' in message and '(indices in "annotations"): [0, 2, 7], [1, 6].' in message
    assert 'remove the copies' in message and kwargs['level'] == 30


# ------------------------------------------------- the displayed frame (EXIF) and 16-bit images

def load_pipeline() -> list:
    """LoadFineRSImage + LoadFineRSMask, built (the dataset's Compose takes transforms too)."""
    return [TRANSFORMS.build(dict(type=name)) for name in ('LoadFineRSImage', 'LoadFineRSMask')]


def test_exif_rotated_jpeg_is_used_as_displayed(data_root):
    """Header size, decoded pixels and the polygon share the displayed frame (issue 12, item 7).

    The photo is stored 90 degrees counter-clockwise with orientation 6 ("rotate 90 degrees
    clockwise to display"); GOOD's polygon marks the red block in the displayed image.
    """
    displayed = np.full((H, W, 3), (40, 80, 120), np.uint8)
    displayed[20:36, 10:31] = (255, 0, 0)  # GOOD's polygon's raster
    exif = Image.Exif()
    exif[image_files.ORIENTATION_TAG] = 6
    Image.fromarray(np.rot90(displayed)).save(data_root / 'images' / 'rotated.jpg', exif=exif,
                                              quality=100, subsampling=0)  # sharp red edges
    assert Image.open(data_root / 'images' / 'rotated.jpg').size == (H, W)  # stored: W and H swap

    dataset = build(data_root, [seg_record(image_path='rotated.jpg')], pipeline=load_pipeline())
    info = dataset.get_data_info(0)
    assert (info['height'], info['width']) == (H, W)
    results = dataset[0]
    assert results['img'].shape == (H, W, 3) and results['img_shape'] == (H, W)
    np.testing.assert_allclose(results['img'].astype(float), displayed, atol=24)
    red = results['img'][results['gt_mask']]
    assert (red[:, 0] > 200).all() and (red[:, 1:] < 60).all()


def test_16_bit_grayscale_png_loads_as_sensible_rgb(data_root):
    gray16 = np.tile(np.linspace(0, 65535, W).astype(np.uint16), (H, 1))
    cv2.imwrite(str(data_root / 'images' / 'depth.png'), gray16)
    assert Image.open(data_root / 'images' / 'depth.png').mode == 'I;16'
    clipped = np.asarray(Image.open(data_root / 'images' / 'depth.png').convert('RGB'))
    assert (clipped == 255).mean() > 0.95  # what PIL's convert('RGB') makes of it: white

    dataset = build(data_root, [seg_record(image_path='depth.png')])
    info = dataset.get_data_info(0)
    assert (info['height'], info['width']) == (H, W)
    img = Compose(load_pipeline())(dict(info))['img']
    assert img.shape == (H, W, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img, np.repeat((gray16 >> 8).astype(np.uint8)[..., None], 3, 2))
