# Copyright (c) finers_mm contributors. All rights reserved.
"""TEST SCAFFOLDING: write the regions a perfect explorer would answer, for ScriptedRegionExplorer.

For each record of a FineRS annotation file: the 256 px explorer-frame region around its GT box
(what GlobalExplorer is trained to answer), in ORIGINAL pixels, keyed by the question;
``--shift S`` moves every region S explorer-frame pixels in a random (seeded) direction, to mimic a
localisation error. Example::

    python projects/reasoning_proposer/tools/make_scripted_regions.py \
        finers_mm/data/synthetic/annotations/train.json finers_mm/data/synthetic/images \
        work_dirs/reasoning_proposer/regions.json
"""
import argparse
import math
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))))

import numpy as np  # noqa: E402

from finers_mm.datasets import FineRS4kDataset  # noqa: E402
from finers_mm.utils.fileio import write_json_atomic  # noqa: E402
from projects.reasoning_proposer.reasoning_proposer.scaffolding import region_for  # noqa: E402


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description='GT-derived explorer regions (test scaffolding)')
    parser.add_argument('ann_file', help='FineRS annotation JSON')
    parser.add_argument('img_dir', help="folder the records' image_path is relative to")
    parser.add_argument('out_file', help='regions JSON to write')
    parser.add_argument('--explorer-size', type=int, nargs=2, default=(1920, 1080))
    parser.add_argument('--region-size', type=int, default=256)
    parser.add_argument('--shift', type=float, default=0.0, help='explorer-frame pixels')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    dataset = FineRS4kDataset(ann_file=args.ann_file, data_prefix=dict(img=args.img_dir),
                              pipeline=[], test_mode=True, serialize_data=False)
    dataset.full_init()
    rng = np.random.default_rng(args.seed)
    regions = {}
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        angle = rng.uniform(0, 2 * math.pi)
        regions[info['question']] = region_for(
            info['gt_bbox'], (info['width'], info['height']), tuple(args.explorer_size),
            args.region_size, (args.shift * math.cos(angle), args.shift * math.sin(angle))).tolist()
    write_json_atomic(args.out_file, regions, indent=1)
    print(f'{len(regions)} regions -> {args.out_file}')
    return args.out_file


if __name__ == '__main__':
    main()
