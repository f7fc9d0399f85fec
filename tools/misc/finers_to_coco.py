# Copyright (c) finers_mm contributors. All rights reserved.
"""Write a COCO-format GT file of a FineRS annotation JSON, for mmdet's CocoMetric.

One COCO image per (image, question) sample, each mask the RLE of the FineRS raster (see
:func:`finers_mm.evaluation.dump_coco_gt`). Example::

    python tools/misc/finers_to_coco.py data/FineRS-4k/annotations/test.json \
        data/FineRS-4k/images data/FineRS-4k/annotations/test_coco.json
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from finers_mm.datasets import FineRS4kDataset  # noqa: E402
from finers_mm.evaluation import dump_coco_gt  # noqa: E402


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description='FineRS annotation JSON -> COCO GT JSON')
    parser.add_argument('ann_file', help="the authors' annotation JSON")
    parser.add_argument('img_dir', help='folder the records\' image_path is relative to')
    parser.add_argument('out_file', help='COCO GT JSON to write (atomically)')
    args = parser.parse_args(argv)
    dataset = FineRS4kDataset(ann_file=args.ann_file, data_prefix=dict(img=args.img_dir),
                              pipeline=[], test_mode=True, serialize_data=False)
    dump_coco_gt(dataset, args.out_file)
    print(f'{len(dataset)} samples -> {args.out_file}')
    return args.out_file


if __name__ == '__main__':
    main()
