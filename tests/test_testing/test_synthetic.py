# Copyright (c) finers_mm contributors. All rights reserved.
"""Synthetic FineRS-4k data: format, image/mask agreement, answers, uniqueness, determinism."""
import json
import os
import os.path as osp
import runpy
import sys

import cv2
import numpy as np
import pytest

from finers_mm.structures.answers import FOUND_RESPONSE
from finers_mm.structures.masks import area_percent, polygon_bbox, rasterize_polygon
from finers_mm.structures.vocabulary import (QTYPE_FROM_ANNOTATION, SIZE_BUCKETS, normalize_options,
                                             size_bucket)
from finers_mm.testing import REPO_ROOT
from finers_mm.testing.synthetic import (ATTRIBUTES, COLORS, CORNERS, OBJECT_GAP, REGIONS, SHAPES,
                                         VOCABULARY, generate_synthetic_finers, synthesize_scene,
                                         target_polygon)

SMALL = (640, 360)
REPO = REPO_ROOT
BUNDLED = osp.join(REPO, 'finers_mm', 'data', 'synthetic')
#: the arguments in finers_mm/data/synthetic/README.md
BUNDLED_ARGS = dict(
    num_images=4, image_size=(1920, 1080), questions_per_image=3, seed=0, split='train')
RECORD_KEYS = ['image_path', 'Q', 'A', 'Q-type', 'points', 'attribute', 'area_percent']


def _load(ann_file):
    with open(ann_file, encoding='utf-8') as f:
        return json.load(f)['annotations']


def _read_rgb(path):
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    assert image is not None, path
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope='module')
def png_set(tmp_path_factory):
    """A small lossless set: 3 images x 3 questions (every type x bucket pair once)."""
    out_dir = str(tmp_path_factory.mktemp('synthetic_png'))
    ann_file = generate_synthetic_finers(
        out_dir, 3, SMALL, questions_per_image=3, seed=1, image_format='png', show_progress=False)
    return out_dir, ann_file


@pytest.fixture(scope='module')
def scenes():
    """In-memory scenes with their ground truth."""
    return [synthesize_scene(np.random.default_rng([2, i]), SMALL, 4, 4 * i) for i in range(3)]


def _check_record_format(record, image_dir):
    expected = list(RECORD_KEYS)
    if record['Q-type'] == 'option':
        expected.insert(4, 'options')
    assert list(record) == expected
    assert isinstance(record['image_path'], str)
    assert osp.isfile(osp.join(image_dir, record['image_path']))
    assert isinstance(record['Q'], str) and record['Q'].strip()
    assert isinstance(record['A'], str) and record['A'].strip()
    assert record['Q-type'] in QTYPE_FROM_ANNOTATION
    assert record['attribute'] in ATTRIBUTES
    assert isinstance(record['area_percent'], float)
    points = record['points']
    assert isinstance(points, list) and len(points) >= 3
    for point in points:
        assert isinstance(point, list) and len(point) == 2
        assert all(type(v) is float for v in point)


def test_record_format(png_set):
    out_dir, ann_file = png_set
    assert ann_file == osp.join(out_dir, 'annotations', 'train.json')
    with open(ann_file, encoding='utf-8') as f:
        data = json.load(f)
    assert list(data) == ['annotations']
    records = data['annotations']
    assert len(records) == 9
    for record in records:
        _check_record_format(record, osp.join(out_dir, 'images'))
    # several records share an image; atomic writes leave no temporary files
    assert len({r['image_path'] for r in records}) == 3
    leftovers = [n for _, _, names in os.walk(out_dir) for n in names if n.endswith('.tmp')]
    assert leftovers == []


def test_image_pixels_are_the_masks(png_set):
    out_dir, ann_file = png_set
    for record in _load(ann_file):
        image = _read_rgb(osp.join(out_dir, 'images', record['image_path']))
        height, width = image.shape[:2]
        mask = rasterize_polygon(record['points'], height, width)
        color = image[mask][0]
        assert tuple(int(v) for v in color) in COLORS.values()
        # near the target (others keep OBJECT_GAP away) a pixel has its colour iff it is in the mask
        x1, y1, x2, y2 = polygon_bbox(record['points'], height, width).astype(int)
        pad = OBJECT_GAP - 1
        window = (slice(max(y1 - pad, 0), y2 + pad), slice(max(x1 - pad, 0), x2 + pad))
        painted = np.all(image[window] == color, axis=-1)
        np.testing.assert_array_equal(painted, mask[window])


def test_area_percent_types_and_buckets(png_set):
    out_dir, ann_file = png_set
    records = _load(ann_file)
    for record in records:
        height, width = _read_rgb(osp.join(out_dir, 'images', record['image_path'])).shape[:2]
        mask = rasterize_polygon(record['points'], height, width)
        assert record['area_percent'] == area_percent(mask)
    assert {r['Q-type'] for r in records} == set(QTYPE_FROM_ANNOTATION)
    assert {size_bucket(r['area_percent']) for r in records} == set(SIZE_BUCKETS)
    pairs = {(r['Q-type'], size_bucket(r['area_percent'])) for r in records}
    assert len(pairs) == 9


@pytest.mark.parametrize('image_size', [(640, 360), (1920, 1080), (3840, 2160)])
@pytest.mark.parametrize('bucket', SIZE_BUCKETS)
def test_target_sizes_hit_the_bucket(image_size, bucket):
    rng = np.random.default_rng(0)
    width, height = image_size
    for shape in SHAPES:
        local = target_polygon(rng, shape, bucket, image_size)
        # the local polygon sits at the origin; place it in the image as the generator does
        points = local + [width // 2, height // 2]
        assert size_bucket(area_percent(rasterize_polygon(points, height, width))) == bucket


@pytest.mark.parametrize('options_format', ['list', 'dict'])
def test_multiple_choice_has_exactly_one_right_option(options_format):
    scene = synthesize_scene(np.random.default_rng(3), SMALL, 6, 0, options_format=options_format)
    options_seen = 0
    for record, target in zip(scene.records, scene.targets):
        if record['Q-type'] != 'option':
            assert 'options' not in record
            continue
        options_seen += 1
        assert isinstance(record['options'], dict if options_format == 'dict' else list)
        options = normalize_options(record['options'])
        assert list(options) == ['A', 'B', 'C', 'D']
        texts = list(options.values())
        assert len(set(texts)) == 4 and set(texts) <= set(VOCABULARY[record['attribute']])
        truth = target.value(record['attribute'])
        assert texts.count(truth) == 1
        assert record['A'] == [k for k, v in options.items() if v == truth][0]
    assert options_seen == 2


def _truth(target, attribute):
    """The answer recomputed from the target's polygon and the 3x3 grid."""
    if attribute == 'colors':
        return target.color
    if attribute == 'shape':
        return target.shape
    if attribute == 'others':
        return str(CORNERS[target.shape])
    return _region_of(target.points, SMALL)


def _region_of(points, image_size):
    """The single 3x3 cell holding the polygon's raster (None when it straddles cells)."""
    width, height = image_size
    x1, y1, x2, y2 = polygon_bbox(points, height, width)
    col, row = int(x1 * 3 // width), int(y1 * 3 // height)
    inside = (x2 <= (col + 1) * width / 3) and (y2 <= (row + 1) * height / 3)
    return REGIONS[3 * row + col] if inside else None


def _touches(points, region, image_size):
    width, height = image_size
    row, col = divmod(REGIONS.index(region), 3)
    x1, y1, x2, y2 = polygon_bbox(points, height, width)
    return (x1 < (col + 1) * width / 3 and x2 > col * width / 3 and y1 < (row + 1) * height / 3
            and y2 > row * height / 3)


def _fits(obj, cues):
    return all(_touches(obj.points, value, SMALL) if key == 'region' else getattr(obj, key) == value
               for key, value in cues.items())


def test_answers_and_questions_name_the_target(scenes):
    for scene in scenes:
        for record, target, cues in zip(scene.records, scene.targets, scene.cues):
            np.testing.assert_array_equal(np.asarray(record['points']), target.points)
            assert _region_of(target.points, SMALL) is not None
            for value in cues.values():
                assert value in record['Q']
            if record['Q-type'] == 'referring':
                assert record['A'] == FOUND_RESPONSE
            elif record['Q-type'] == 'reasoning':
                assert record['A'] == _truth(target, record['attribute'])
            else:
                truth = _truth(target, record['attribute'])
                assert normalize_options(record['options'])[record['A']] == truth


def test_each_description_fits_only_its_target(scenes):
    for scene in scenes:
        assert len(scene.objects) > len(scene.targets) + 5
        for target, cues in zip(scene.targets, scene.cues):
            assert [o for o in scene.objects if _fits(o, cues)] == [target]
    # the scenes are cluttered with every colour and shape
    assert {o.color for scene in scenes for o in scene.objects} == set(COLORS)
    assert {o.shape for scene in scenes for o in scene.objects} == set(SHAPES)


def test_many_targets_stay_unambiguous():
    """Targets must not fit each other's descriptions either (dense scene, no distractors)."""
    scene = synthesize_scene(np.random.default_rng(7), SMALL, 24, 0, num_distractors=0)
    assert scene.objects == scene.targets
    for target, cues in zip(scene.targets, scene.cues):
        assert [o for o in scene.objects if _fits(o, cues)] == [target]


def test_deterministic_by_seed(tmp_path):
    outputs = []
    for name, seed in (('a', 5), ('b', 5), ('c', 6)):
        ann_file = generate_synthetic_finers(
            str(tmp_path / name), 2, SMALL, questions_per_image=2, seed=seed, show_progress=False)
        with open(ann_file, 'rb') as f:
            text = f.read()
        images = [
            _read_rgb(str(tmp_path / name / 'images' / f'train_{i:06d}.jpg')) for i in range(2)
        ]
        outputs.append((text, images))
    (text_a, images_a), (text_b, images_b), (text_c, images_c) = outputs
    assert text_a == text_b
    for image_a, image_b in zip(images_a, images_b):
        np.testing.assert_array_equal(image_a, image_b)
    assert text_a != text_c
    assert not np.array_equal(images_a[0], images_c[0])


def test_cli(tmp_path, monkeypatch):
    out_dir = str(tmp_path / 'cli')
    monkeypatch.setattr(sys, 'argv', [
        'make_synthetic_finers.py', out_dir, '--num-images', '1', '--image-size', '640', '360',
        '--seed', '4', '--split', 'val', '--image-format', 'png', '--options-format', 'dict'])
    runpy.run_path(osp.join(REPO, 'tools', 'misc', 'make_synthetic_finers.py'), run_name='__main__')
    records = _load(osp.join(out_dir, 'annotations', 'val.json'))
    assert [r['image_path'] for r in records] == ['val_000000.png'] * 3
    image = _read_rgb(osp.join(out_dir, 'images', 'val_000000.png'))
    assert image.shape == (360, 640, 3)


def test_bundled_samples(tmp_path):
    ann_file = osp.join(BUNDLED, 'annotations', 'train.json')
    records = _load(ann_file)
    width, height = BUNDLED_ARGS['image_size']
    assert len(records) == BUNDLED_ARGS['num_images'] * BUNDLED_ARGS['questions_per_image']
    for record in records:
        _check_record_format(record, osp.join(BUNDLED, 'images'))
        mask = rasterize_polygon(record['points'], height, width)
        assert record['area_percent'] == area_percent(mask)
    assert {r['Q-type'] for r in records} == set(QTYPE_FROM_ANNOTATION)
    assert {size_bucket(r['area_percent']) for r in records} == set(SIZE_BUCKETS)
    assert {(r['Q-type'], r['attribute']) for r in records} == {
        (q, a) for q in QTYPE_FROM_ANNOTATION for a in ATTRIBUTES}
    total = sum(
        osp.getsize(osp.join(root, n)) for root, _, names in os.walk(BUNDLED) for n in names)
    assert total < 2 * 1024 * 1024

    # the README command reproduces the JSON byte for byte
    regenerated = generate_synthetic_finers(str(tmp_path), show_progress=False, **BUNDLED_ARGS)
    with open(regenerated, 'rb') as f, open(ann_file, 'rb') as g:
        assert f.read() == g.read()

    # the JPEGs are the lossless scenes up to compression, and every target keeps its colour
    palette_names, palette = list(COLORS), np.array(list(COLORS.values()), dtype=float)
    for index in range(BUNDLED_ARGS['num_images']):
        per_image = BUNDLED_ARGS['questions_per_image']
        scene = synthesize_scene(
            np.random.default_rng([BUNDLED_ARGS['seed'], index]), (width, height), per_image,
            index * per_image)
        image = _read_rgb(osp.join(BUNDLED, 'images', f'train_{index:06d}.jpg'))
        assert image.shape == (height, width, 3)
        assert np.abs(image.astype(float) - scene.image).mean() < 6.0
        for target in scene.targets:
            median = np.median(image[rasterize_polygon(target.points, height, width)], axis=0)
            distances = np.linalg.norm(palette - median, axis=1)
            assert palette_names[int(distances.argmin())] == target.color
            assert distances.min() < 60


def test_object_scale_draws_every_object_that_much_wider():
    """A size curriculum's scenes: object_scale 3 makes each target ~9x its bucket's area and each
    distractor ~9x a distractor's, the descriptions still name one object; 1 is the default."""
    from finers_mm.testing.synthetic.vocab import BUCKET_AREA_RANGES, DISTRACTOR_AREA_RANGE
    from finers_mm.testing.synthetic.scene import question_plan
    size = (960, 540)
    default = synthesize_scene(np.random.default_rng(3), size, 6, 0, num_distractors=4)
    same = synthesize_scene(np.random.default_rng(3), size, 6, 0, num_distractors=4,
                            object_scale=1.0)
    assert default.records == same.records
    scene = synthesize_scene(np.random.default_rng(3), size, 6, 0, num_distractors=4,
                             object_scale=3.0)
    for index, (record, target, cues) in enumerate(zip(scene.records, scene.targets, scene.cues)):
        low, high = BUCKET_AREA_RANGES[question_plan(index)[1]]
        assert 0.8 * 9 * low <= record['area_percent'] <= 1.2 * 9 * high
        named = [o for o in scene.objects if all(
            _touches(o.points, value, size) if key == 'region' else getattr(o, key) == value
            for key, value in cues.items())]
        assert named == [target]
    distractors = [o for o in scene.objects if o not in scene.targets]
    assert len(distractors) == 4
    for obj in distractors:
        width, height = obj.bbox[2] - obj.bbox[0], obj.bbox[3] - obj.bbox[1]
        # a box holds at least its shape's area (a triangle fills about half of it)
        assert width * height >= 0.8 * 9 * DISTRACTOR_AREA_RANGE[0] / 100 * size[0] * size[1]
    with pytest.raises(ValueError, match='object_scale'):
        synthesize_scene(np.random.default_rng(3), size, 3, 0, object_scale=0)


def test_without_region_cues_no_question_says_where_the_target_is():
    scene = synthesize_scene(np.random.default_rng(5), (960, 540), 12, 0, num_distractors=4,
                             region_cues=False)
    for record, target, cues in zip(scene.records, scene.targets, scene.cues):
        assert 'region' not in cues
        assert not any(f'the {region} part' in record['Q'] for region in REGIONS), record['Q']
        named = [o for o in scene.objects if all(getattr(o, k) == v for k, v in cues.items())]
        assert named == [target]
    # every type still asked, the answers of "where" questions are the target's region
    assert {r['Q-type'] for r in scene.records} == set(QTYPE_FROM_ANNOTATION)
    assert {r['attribute'] for r in scene.records} == {'others', 'position'}
    cued = synthesize_scene(np.random.default_rng(5), (960, 540), 12, 0, num_distractors=4)
    assert sum('region' in cues for cues in cued.cues) > 6  # the default names regions


def test_without_clutter_the_ground_is_plain_and_only_objects_stand_out():
    """A curriculum's easiest scenes: the ground is one colour with pixel noise (no terrain, roads
    or roofs), the objects are painted as in any scene, and the default keeps its clutter."""
    from finers_mm.testing.synthetic.vocab import BACKGROUND_NOISE_STD, GROUND_COLORS
    size = (640, 360)
    plain = synthesize_scene(np.random.default_rng(7), size, 3, 0, num_distractors=2,
                             clutter=False)
    cluttered = synthesize_scene(np.random.default_rng(7), size, 3, 0, num_distractors=2)
    masks = np.zeros(size[::-1], bool)
    for obj in plain.objects:
        masks |= rasterize_polygon(obj.points, size[1], size[0])
        assert (plain.image[rasterize_polygon(obj.points, size[1], size[0])] ==
                COLORS[obj.color]).all()
    ground = plain.image[~masks].astype(np.float32)
    assert np.abs(ground.mean(0) - GROUND_COLORS[0]).max() < 1.0
    assert ground.std(0).max() < 1.5 * BACKGROUND_NOISE_STD
    assert cluttered.image[~masks].astype(np.float32).std(0).max() > 2 * BACKGROUND_NOISE_STD
