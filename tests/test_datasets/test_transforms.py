# Copyright (c) finers_mm contributors. All rights reserved.
"""The FineRS data pipeline on a synthetic high-resolution image, checked pixel by pixel."""
import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks

from finers_mm.registry import TRANSFORMS
from finers_mm.structures import (crop_to_frame, crop_window_from_region, original_to_explorer,
                                  polygon_bbox, rasterize_polygon, resize_to_frame)
from finers_mm.structures.points import authors_jitter_points

IMAGE_SIZE = (1920, 1080)  # (W, H) of the synthetic original
TARGET = np.array([[1500, 300], [1570, 310], [1566, 352], [1496, 346]], dtype=np.float32)
RED = (255, 0, 0)  # RGB


@pytest.fixture(scope='module')
def image_file(tmp_path_factory):
    """A noise image whose background is never red, with a pure-red polygon target."""
    width, height = IMAGE_SIZE
    rng = np.random.default_rng(0)
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    rgb[..., 0] = rng.integers(0, 129, (height, width))
    rgb[..., 1:] = rng.integers(64, 256, (height, width, 2))
    rgb[rasterize_polygon(TARGET, height, width)] = RED
    path = tmp_path_factory.mktemp('images') / 'synthetic.png'
    cv2.imwrite(str(path), rgb[..., ::-1])  # cv2 writes BGR
    return str(path)


def make_record(img_path, sample_idx=0, best_region=None):
    """One data info as FineRS4kDataset yields it."""
    width, height = IMAGE_SIZE
    return dict(
        img_path=img_path, img_id='synthetic', ann_index=0, height=height, width=width,
        question='Where is the red car?', question_type='segmentation', options={},
        answer='The object is found.', attribute='colors', area_percent=0.14, size_bucket='S',
        gt_polygon=TARGET.copy(), gt_bbox=polygon_bbox(TARGET, height, width),
        best_region=best_region, sample_idx=sample_idx)


def build(cfgs):
    return Compose([TRANSFORMS.build(cfg) for cfg in cfgs])


def red_pixels(img):
    """Pixels more than half target: red dominant, little of the never-red background's G and B."""
    return (img[..., 0] >= 192) & (img[..., 1] < 32) & (img[..., 2] < 32)


def assert_target_fills_box(img, box):
    """The target's red pixels lie inside ``box`` and their extent is ``box`` to a pixel."""
    ys, xs = np.nonzero(red_pixels(img))
    assert xs.size > 0, 'the target is not visible in the view'
    extent = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)
    np.testing.assert_allclose(extent, box, atol=1.0)
    area = (box[2] - box[0]) * (box[3] - box[1])
    assert xs.size / area > 0.6


def test_load_image_rgb(image_file):
    results = build([dict(type='LoadFineRSImage')])(make_record(image_file))
    img = results['img']
    assert img.dtype == np.uint8 and img.shape == (1080, 1920, 3)
    assert results['img_shape'] == results['ori_shape'] == (1080, 1920)
    assert tuple(img[320, 1530]) == RED  # red in the file is red in memory
    assert not red_pixels(img[:200]).any()


def test_load_image_errors(image_file, tmp_path):
    load = TRANSFORMS.build(dict(type='LoadFineRSImage'))
    missing = str(tmp_path / 'missing.jpg')
    with pytest.raises(FileNotFoundError, match='missing.jpg'):
        load(make_record(missing))
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'not an image')
    with pytest.raises(ValueError, match='broken.jpg'):
        load(make_record(str(broken)))
    record = make_record(image_file)
    record['width'] = 3840
    with pytest.raises(ValueError, match='3840'):
        load(record)


def test_load_mask(image_file):
    results = build([dict(type='LoadFineRSImage'), dict(type='LoadFineRSMask')])(
        make_record(image_file))
    mask = results['gt_mask']
    assert mask.dtype == bool and mask.shape == (1080, 1920)
    assert np.all(results['img'][mask] == RED)
    assert red_pixels(results['img']).sum() == mask.sum()


@pytest.mark.parametrize('frame_size', [(960, 540), (1000, 700)])
def test_explorer_view_pixels(image_file, frame_size):
    best_region = np.array([1400, 200, 1912, 712], dtype=np.float32)
    results = build([dict(type='LoadFineRSImage'),
                     dict(type='ExplorerView', frame_size=frame_size, region_size=128)])(
        make_record(image_file, best_region=best_region))
    img = results['explorer_img']
    assert img.shape == (frame_size[1], frame_size[0], 3)
    assert results['explorer_frame'] == frame_size and results['region_size'] == 128
    assert_target_fills_box(img, results['gt_bbox_explorer'])
    region = results['gt_region_explorer']
    np.testing.assert_allclose(region[2:] - region[:2], [128, 128])
    assert np.all(region[:2] <= results['gt_bbox_explorer'][:2])
    assert np.all(region[2:] >= results['gt_bbox_explorer'][2:])
    np.testing.assert_allclose(results['best_region_explorer'],
                               original_to_explorer(best_region, IMAGE_SIZE, frame_size))


@pytest.mark.parametrize('frame_size,min_side', [((384, 384), 512), ((768, 768), 512),
                                                 ((512, 512), 300)])
def test_refiner_crop_random_pixels(image_file, frame_size, min_side):
    pipeline = build([
        dict(type='LoadFineRSImage'),
        dict(type='RefinerCrop', frame_size=frame_size, min_side=min_side, mode='random', seed=1)
    ])
    results = pipeline(make_record(image_file, sample_idx=3))
    window = results['crop_window']
    assert window[2] - window[0] == window[3] - window[1] == min_side
    assert results['refiner_img'].shape == (frame_size[1], frame_size[0], 3)
    assert results['refiner_frame'] == frame_size
    img = results['refiner_img']
    box = results['gt_bbox_refiner']
    centre = int((box[1] + box[3]) / 2), int((box[0] + box[2]) / 2)
    assert tuple(img[centre]) == RED  # RGB order kept through crop and resize
    assert_target_fills_box(img, results['gt_bbox_refiner'])


def test_refiner_crop_is_seeded(image_file):

    def window(seed, sample_idx):
        crop = TRANSFORMS.build(dict(type='RefinerCrop', frame_size=(64, 64), seed=seed))
        load = TRANSFORMS.build(dict(type='LoadFineRSImage'))
        return tuple(crop(load(make_record(image_file, sample_idx=sample_idx)))['crop_window'])

    assert window(0, 5) == window(0, 5)
    assert len({window(seed, 5) for seed in range(6)}) > 1
    assert len({window(0, idx) for idx in range(6)}) > 1


def test_refiner_crop_region_modes(image_file):
    load = TRANSFORMS.build(dict(type='LoadFineRSImage'))
    region = np.array([1450.0, 250.0, 1706.0, 506.0])
    record = load(make_record(image_file, best_region=region))
    record['region'] = region - 40
    for mode, source in (('region', record['region']), ('best_region', region)):
        crop = TRANSFORMS.build(dict(type='RefinerCrop', frame_size=(256, 256), min_side=300,
                                     mode=mode))
        results = crop(dict(record))
        expected = crop_window_from_region(source, IMAGE_SIZE, 300)
        np.testing.assert_array_equal(results['crop_window'], expected)
        x1, y1, x2, y2 = expected
        np.testing.assert_array_equal(
            results['refiner_img'], cv2.resize(record['img'][y1:y2, x1:x2], (256, 256),
                                               interpolation=cv2.INTER_LINEAR))
        assert_target_fills_box(results['refiner_img'], results['gt_bbox_refiner'])
    crop = TRANSFORMS.build(dict(type='RefinerCrop', mode='best_region'))
    record['best_region'] = None
    with pytest.raises(KeyError, match='best_region'):
        crop(record)


def test_refiner_crop_target_outside_window(image_file):
    load = TRANSFORMS.build(dict(type='LoadFineRSImage'))
    record = load(make_record(image_file))
    record['region'] = np.array([0.0, 0.0, 100.0, 100.0])
    crop = TRANSFORMS.build(dict(type='RefinerCrop', frame_size=(128, 128), min_side=256,
                                 mode='region'))
    results = crop(record)
    np.testing.assert_array_equal(results['gt_bbox_refiner'], np.zeros(4))
    assert not red_pixels(results['refiner_img']).any()


@pytest.mark.parametrize('method', ['inscribed_circles', 'authors_jitter', 'box_center_jitter'])
def test_gt_points_follow_the_target(image_file, method):
    pipeline = build([
        dict(type='LoadFineRSImage'),
        dict(type='LoadFineRSMask'),
        dict(type='SampleGTPoints', method=method, jitter=0.3, seed=2),
        dict(type='RefinerCrop', frame_size=(400, 400), min_side=200, seed=2),
    ])
    first = pipeline(make_record(image_file, sample_idx=4))
    again = pipeline(make_record(image_file, sample_idx=4))
    np.testing.assert_array_equal(first['gt_points'], again['gt_points'])
    points = first['gt_points']
    assert points.shape == (2, 2) and points.dtype == np.float32
    for x, y in points:
        assert first['gt_mask'][int(y), int(x)]
    img = first['refiner_img']
    for x, y in first['gt_points_refiner']:
        assert red_pixels(img)[int(y), int(x)]


def test_gt_points_method_follows_the_protocol(image_file):
    assert TRANSFORMS.build(dict(type='SampleGTPoints')).method == 'inscribed_circles'
    authors = TRANSFORMS.build(dict(type='SampleGTPoints', protocol='authors', seed=3))
    assert authors.method == 'authors_jitter'
    explicit = TRANSFORMS.build(dict(type='SampleGTPoints', method='inscribed_circles',
                                     protocol='authors'))
    assert explicit.method == 'inscribed_circles'  # an explicit method beats the protocol
    with pytest.raises(ValueError, match='unknown protocol'):
        TRANSFORMS.build(dict(type='SampleGTPoints', protocol='seg_zero'))
    with pytest.raises(ValueError, match='method must be one of'):
        TRANSFORMS.build(dict(type='SampleGTPoints', method='jitter'))
    # the authors' points of this sample, drawn from its own generator, without the mask
    load = TRANSFORMS.build(dict(type='LoadFineRSImage'))
    record = load(make_record(image_file, sample_idx=6))
    points = authors(dict(record))['gt_points']
    np.testing.assert_array_equal(
        points, authors_jitter_points(record['gt_bbox'], np.random.default_rng((3, 6))))
    inclusive = record['gt_bbox'] - [0, 0, 1, 1]
    np.testing.assert_array_equal(points[0], (inclusive[:2] + inclusive[2:]) // 2 + 0.5)
    others = {tuple(authors(load(make_record(image_file, sample_idx=i)))['gt_points'][1])
              for i in range(12)}
    assert len(others) > 3  # the second point is jittered per sample


def test_views_resize_follows_the_protocol(image_file):
    load = TRANSFORMS.build(dict(type='LoadFineRSImage'))
    record = load(make_record(image_file, best_region=np.array([1400, 200, 1912, 712])))
    img = record['img']
    explorer = dict(type='ExplorerView', frame_size=(960, 540))
    refiner = dict(type='RefinerCrop', frame_size=(256, 256), min_side=512, mode='best_region')
    for protocol, resize in (('finers_mm', 'cv2_linear'), ('authors', 'pil_bilinear')):
        view = TRANSFORMS.build(dict(explorer, protocol=protocol))
        crop = TRANSFORMS.build(dict(refiner, protocol=protocol))
        assert view.resize == crop.resize == resize and resize in repr(view) + repr(crop)
        out = crop(view(dict(record)))
        np.testing.assert_array_equal(out['explorer_img'],
                                      resize_to_frame(img, (960, 540), resize=resize))
        np.testing.assert_array_equal(
            out['refiner_img'], crop_to_frame(img, out['crop_window'], (256, 256), resize=resize))
    default = TRANSFORMS.build(explorer)(dict(record))['explorer_img']
    authors = TRANSFORMS.build(dict(explorer, protocol='authors'))(dict(record))['explorer_img']
    assert not np.array_equal(default, authors)
    # an explicit method beats the protocol; a cv2 interpolation with Pillow is refused at build
    assert TRANSFORMS.build(dict(refiner, resize='cv2_linear', protocol='authors')).resize == \
        'cv2_linear'
    assert TRANSFORMS.build(dict(explorer, resize='pil_bicubic')).resize == 'pil_bicubic'
    with pytest.raises(ValueError, match="applies to resize='cv2_linear' only"):
        TRANSFORMS.build(dict(explorer, interpolation='area', protocol='authors'))
    with pytest.raises(ValueError, match='unknown resize'):
        TRANSFORMS.build(dict(refiner, resize='pil'))
    with pytest.raises(ValueError, match='unknown protocol'):
        TRANSFORMS.build(dict(refiner, protocol='paper'))


def test_pack(image_file):
    pipeline = build([
        dict(type='LoadFineRSImage'),
        dict(type='LoadFineRSMask'),
        dict(type='SampleGTPoints'),
        dict(type='ExplorerView', frame_size=(480, 270), region_size=64),
        dict(type='RefinerCrop', frame_size=(96, 96), min_side=128),
        dict(type='PackFineRSInputs', views=('explorer', 'refiner', 'original')),
    ])
    packed = pipeline(make_record(image_file, best_region=np.array([1400, 200, 1912, 712.0])))
    inputs = packed['inputs']
    assert set(inputs) == {'explorer', 'refiner', 'original'}
    assert inputs['explorer'].shape == (270, 480, 3) and inputs['explorer'].dtype == torch.uint8
    assert inputs['refiner'].shape == (96, 96, 3)
    assert inputs['original'].shape == (1080, 1920, 3)
    assert inputs['original'][320, 1530].tolist() == list(RED)

    sample = packed['data_samples']
    assert isinstance(sample, DetDataSample)
    gt = sample.gt_instances
    assert len(gt) == 1
    np.testing.assert_allclose(gt.bboxes.numpy(), polygon_bbox(TARGET, 1080, 1920)[None])
    assert isinstance(gt.masks, BitmapMasks) and gt.masks.masks.shape == (1, 1080, 1920)
    assert gt.labels.tolist() == [0]
    assert gt.points.shape == (1, 2, 2)
    meta = sample.metainfo
    for key in ('img_path', 'img_id', 'ann_index', 'ori_shape', 'img_shape', 'question',
                'question_type', 'options', 'answer', 'attribute', 'area_percent', 'size_bucket',
                'best_region', 'explorer_frame', 'refiner_frame', 'crop_window', 'gt_bbox_explorer',
                'best_region_explorer', 'gt_bbox_refiner', 'gt_points_refiner'):
        assert key in meta, key
    assert meta['explorer_frame'] == (480, 270) and meta['refiner_frame'] == (96, 96)


def test_pack_defaults_and_custom_meta_keys(image_file):
    record = build([dict(type='LoadFineRSImage'),
                    dict(type='ExplorerView', frame_size=(192, 108))])(make_record(image_file))
    packed = TRANSFORMS.build(dict(type='PackFineRSInputs'))(dict(record))
    assert set(packed['inputs']) == {'explorer'}
    assert 'masks' not in packed['data_samples'].gt_instances
    packed = TRANSFORMS.build(dict(type='PackFineRSInputs', meta_keys=('img_id', )))(dict(record))
    assert set(packed['data_samples'].metainfo) == {'img_id'}
    with pytest.raises(ValueError, match='views'):
        TRANSFORMS.build(dict(type='PackFineRSInputs', views=('thumbnail', )))


def test_pack_gt_masks_meta_key_shares_the_gt_mask(image_file):
    """'gt_masks' in meta_keys: the GT mask also in the metainfo (mmdet's RefCOCO packing, read by
    its RefSegMetric), the same object as gt_instances.masks; not packed by default."""
    from finers_mm.datasets.transforms.formatting import DEFAULT_META_KEYS
    record = build([dict(type='LoadFineRSImage'), dict(type='LoadFineRSMask'),
                    dict(type='ExplorerView', frame_size=(192, 108))])(make_record(image_file))
    pack = TRANSFORMS.build(dict(type='PackFineRSInputs', views=('explorer', 'original'),
                                 meta_keys=DEFAULT_META_KEYS + ('gt_masks', )))
    sample = pack(dict(record))['data_samples']
    assert sample.gt_masks is sample.gt_instances.masks  # shared, not a second bitmap
    assert sample.to_dict()['gt_masks'] is sample.gt_instances.masks  # where RefSegMetric reads
    np.testing.assert_array_equal(sample.gt_masks.masks[0], record['gt_mask'])
    assert 'gt_masks' not in TRANSFORMS.build(dict(type='PackFineRSInputs'))(
        dict(record))['data_samples']
    without_mask = {k: v for k, v in record.items() if k != 'gt_mask'}
    assert 'gt_masks' not in pack(without_mask)['data_samples']  # skipped, as absent keys are


PACK_READ_ONLY = '''
import warnings

import numpy as np

from finers_mm.registry import TRANSFORMS
import finers_mm  # noqa: F401

warnings.simplefilter('error')  # the "NumPy array is not writable" UserWarning raises
owned = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
locked = owned.view()
locked.flags.writeable = False  # a read-only view of writable memory
frozen = np.frombuffer(bytes(owned.tobytes()), np.uint8).reshape(6, 8, 3)  # no writable memory
bbox = np.array([1, 2, 3, 4], np.float32)
bbox.flags.writeable = False
packed = TRANSFORMS.build(dict(type='PackFineRSInputs', views=('original', 'explorer')))(
    dict(img=locked, explorer_img=frozen, gt_bbox=bbox, gt_points=bbox))
original, explorer = packed['inputs']['original'], packed['inputs']['explorer']
assert original.data_ptr() == owned.ctypes.data  # shared, not copied
assert (original.numpy() == owned).all() and (explorer.numpy() == owned).all()
assert not locked.flags.writeable  # the caller's array stays locked
assert packed['data_samples'].gt_instances.bboxes.tolist() == [[1, 2, 3, 4]]
print('packed')
'''


@pytest.mark.slow
def test_pack_read_only_arrays_without_torch_warning():
    """Read-only images (an inferencer's ``np.asarray(PIL image)``, a locked array) pack without
    torch's "The given NumPy array is not writable" warning; a read-only view of writable memory
    is shared, not copied. In a fresh process: torch gives that warning once per process."""
    import subprocess
    import sys
    result = subprocess.run([sys.executable, '-c', PACK_READ_ONLY], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and 'packed' in result.stdout, result.stderr[-3000:]
