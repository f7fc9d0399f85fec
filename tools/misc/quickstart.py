# Copyright (c) finers_mm contributors. All rights reserved.
"""The embedded default main job: the FineRS demo on a bundled synthetic sample, no downloads.

Builds (once, cached) the tiny models of :mod:`finers_mm.utils.tiny_models`, then runs
``tools/demo.py`` with ``configs/finers/finers_tiny_test.py`` on the first bundled question: the
explorer's region, the crop, the refiner's box and points and SAM's mask, drawn and saved. The
weights are random, so the answer is usually "invalid": the demo shows that path cleanly.

Example::

    python tools/misc/quickstart.py --out-dir work_dirs/quickstart
"""
import argparse
import json
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO_ROOT)
sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))

import demo  # noqa: E402

from finers_mm.datasets.question_types import QTYPE_FROM_ANNOTATION  # noqa: E402
from finers_mm.utils.tiny_models import build_tiny_models  # noqa: E402

BUNDLED = osp.join(REPO_ROOT, 'finers_mm', 'data', 'synthetic')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Run the FineRS demo on the embedded default')
    parser.add_argument('--out-dir', default='work_dirs/quickstart', help='where outputs go')
    parser.add_argument('--models-dir', default='work_dirs/tiny_models', help='tiny model cache')
    parser.add_argument('--seed', type=int, default=0, help='seed of the tiny models')
    return parser.parse_args(argv)


def first_bundled_record() -> dict:
    """The first record of the bundled synthetic annotations (the authors' format)."""
    with open(osp.join(BUNDLED, 'annotations', 'train.json'), encoding='utf-8') as f:
        return json.load(f)['annotations'][0]


def main(argv=None) -> dict:
    args = parse_args(argv)
    print(f'building (or reusing) the tiny models in {args.models_dir} ...')
    paths = build_tiny_models(args.models_dir, seed=args.seed)
    record = first_bundled_record()
    demo_args = [osp.join(BUNDLED, 'images', record['image_path']), record['Q'],
                 '--type', QTYPE_FROM_ANNOTATION[record['Q-type']], '--out-dir', args.out_dir,
                 '--device', 'cpu', '--cfg-options',
                 f"model.explorer.vlm.pretrained={paths['qwen2_5_vl']}",
                 f"model.refiner.vlm.pretrained={paths['qwen2_5_vl']}",
                 f"model.mask_head.config={paths['sam_config']}",
                 f"model.mask_head.checkpoint={paths['sam']}"]
    if record.get('options'):
        demo_args[3:3] = ['--options', *record['options']]
    print(f"ground truth answer: {record['A']!r}")
    return demo.main(demo_args)


if __name__ == '__main__':
    main()
