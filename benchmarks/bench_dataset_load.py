# Copyright (c) finers_mm contributors. All rights reserved.
"""Time FineRS4kDataset loading on synthetic records and check that loading never rasterises a mask.

Writes ``--records`` hand-made records (polygons of 3 to 12 vertices with float coordinates, all
three question types, half with a best_region) over ``--images`` small PNGs in a temporary folder
(FineRS-4k's ratio of about 2.7 questions per image by default), then times dataset construction +
``full_init`` and ``get_data_info`` over every sample (and, to split the time, construction
without serialisation). References measured in the same process: ``json.load`` of the same
file, and rasterising every mask at 4K (what loading would cost if it rasterised).

    python benchmarks/bench_dataset_load.py [--records 1000] [--images 370]
"""
import argparse
import json
import math
import os.path as osp
import tempfile
import time

import cv2
import numpy as np
from PIL import Image

import finers_mm.structures.masks as masks
from finers_mm.datasets import FineRS4kDataset

IMAGE_SIZE = (320, 240)  # (w, h) of the synthetic images
QTYPES = ('referring', 'option', 'reasoning')


def make_record(index: int, num_images: int, rng: np.random.Generator) -> dict:
    """One record in the authors' format: a star-shaped polygon around a random centre.

    Args:
        index (int): record index (picks the image and the question type).
        num_images (int): number of images the records are spread over.
        rng (np.random.Generator): source of the polygon's shape.

    Returns:
        dict: the record.
    """
    width, height = IMAGE_SIZE
    num_vertices = int(rng.integers(3, 13))
    angles = np.sort(rng.uniform(0, 2 * math.pi, num_vertices))
    radii = rng.uniform(3, 20, num_vertices)
    centre = rng.uniform((25, 25), (width - 25, height - 25))
    points = centre + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    qtype = QTYPES[index % 3]
    record = {
        'image_path': f'img_{index % num_images:04d}.png',
        'Q': f'Question {index} about the object?',
        'A': {'referring': 'The object is found.', 'option': 'A', 'reasoning': 'car'}[qtype],
        'Q-type': qtype,
        'points': np.round(points, 3).tolist(),
        'attribute': ('colors', 'shape', 'position', 'others')[index % 4],
        'area_percent': float(rng.uniform(0.001, 0.1)),
    }
    if qtype == 'option':
        record['options'] = ['red', 'white', 'blue', 'black']
    if index % 2:
        record['best_region'] = [0, 0, 256, 256]
    return record


def write_data(root: str, num_records: int, num_images: int) -> str:
    """Write the images and the annotation file; return the annotation file path."""
    for i in range(num_images):
        Image.new('RGB', IMAGE_SIZE, (i % 256, 90, 160)).save(osp.join(root, f'img_{i:04d}.png'))
    rng = np.random.default_rng(0)
    records = [make_record(i, num_images, rng) for i in range(num_records)]
    ann_file = osp.join(root, 'ann.json')
    with open(ann_file, 'w') as f:
        json.dump({'annotations': records}, f)
    return ann_file


def count_calls(owner, name: str, counter: dict) -> None:
    """Replace ``owner.name`` by a wrapper that counts its calls in ``counter[name]``."""
    original = getattr(owner, name)
    counter[name] = 0

    def wrapper(*args, **kwargs):
        counter[name] += 1
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--records', type=int, default=1000)
    parser.add_argument('--images', type=int, default=370)
    args = parser.parse_args()
    calls: dict = {}
    with tempfile.TemporaryDirectory() as root:
        ann_file = write_data(root, args.records, args.images)
        count_calls(masks, 'rasterize_polygon', calls)
        count_calls(cv2, 'fillPoly', calls)
        count_calls(Image.Image, 'load', calls)  # pixel decode
        start = time.perf_counter()
        with open(ann_file) as f:
            json.load(f)
        t_json = time.perf_counter() - start

        start = time.perf_counter()
        dataset = FineRS4kDataset(ann_file=ann_file, data_prefix=dict(img=root), lazy_init=True)
        dataset.full_init()
        t_init = time.perf_counter() - start
        start = time.perf_counter()
        infos = [dataset.get_data_info(i) for i in range(len(dataset))]
        t_get = time.perf_counter() - start
        start = time.perf_counter()
        FineRS4kDataset(ann_file=ann_file, data_prefix=dict(img=root), serialize_data=False)
        t_parse = time.perf_counter() - start
        assert len(infos) == args.records, (len(infos), args.records)
        load_calls = dict(calls)

    polygons = [info['gt_polygon'] for info in infos[:100]]
    start = time.perf_counter()
    for polygon in polygons:
        masks.rasterize_polygon(polygon, 2160, 3840)
    t_raster_4k = (time.perf_counter() - start) / len(polygons) * len(infos)

    total = t_init + t_get
    print(f'{args.records} records over {args.images} images')
    print(f'construction + full_init : {t_init:.3f} s ({args.records / t_init:,.0f} records/s)')
    print(f'  of which parsing (serialize_data=False): {t_parse:.3f} s; the rest is mmengine\'s '
          'serialisation, whose gc.collect() grows with the process heap')
    print(f'get_data_info x {len(infos)}   : {t_get:.3f} s ({len(infos) / t_get:,.0f} records/s)')
    print(f'total                    : {total:.3f} s ({args.records / total:,.0f} records/s)')
    print(f'reference json.load      : {t_json:.3f} s -> '
          f'loading costs {total / t_json:.1f}x json.load')
    print(f'reference: rasterising every mask at 3840x2160 would add {t_raster_4k:.2f} s '
          f'({t_raster_4k / total:.1f}x the whole load)')
    print(f'calls during loading: rasterize_polygon={load_calls["rasterize_polygon"]}, '
          f'cv2.fillPoly={load_calls["fillPoly"]}, image decodes={load_calls["load"]}')
    assert load_calls['rasterize_polygon'] == 0 and load_calls['fillPoly'] == 0, load_calls
    assert load_calls['load'] == 0, load_calls


if __name__ == '__main__':
    main()
