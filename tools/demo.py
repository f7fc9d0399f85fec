# Copyright (c) finers_mm contributors. All rights reserved.
"""Ask FineRS a question about an image: prints the answer and reasoning, saves the drawing and mask.

Examples::

    python tools/demo.py IMAGE 'Please segment the red car near the top-left.'
    python tools/demo.py IMAGE 'What colour is the small boat?' --type open
    python tools/demo.py IMAGE 'Which shape is the blue object?' --type multiple_choice \
        --options 'A. circle' 'B. star' 'C. square' 'D. hexagon'
    python tools/demo.py IMAGE QUESTION --config configs/finers/finers_qwen7b_test.py --device cuda:0

The image is read as tools/test.py reads it (the config's LoadFineRSImage: EXIF orientation
applied, 16-bit scaled to 8 bits); the drawing, mask and prediction files are written atomically
(complete or absent), the prediction as strict JSON. ``--weights`` must be a checkpoint of the
chain: a stage's (GSE / LPR) is refused with the export command to run instead, a URL unless
``FINERS_MM_ALLOW_DOWNLOAD=1``.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402

import finers_mm  # noqa: E402,F401
from finers_mm.apis import FineRSInferencer  # noqa: E402
from finers_mm.structures.vocabulary import QUESTION_TYPES  # noqa: E402
from finers_mm.utils.run_config import load_config  # noqa: E402

DEFAULT_CONFIG = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs', 'finers',
                          'finers_tiny_test.py')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='FineRS demo: one image, one question')
    parser.add_argument('image', help='image file')
    parser.add_argument('question', help='question or segmentation instruction')
    parser.add_argument('--type', default='segmentation', choices=QUESTION_TYPES,
                        help='question type')
    parser.add_argument('--options', nargs='+', help='multiple-choice options, e.g. "A. red"')
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='FineRS config (default: the tiny embedded default)')
    parser.add_argument(
        '--weights', help="mmengine checkpoint of the chain (default: the config's weights); a "
        'stage checkpoint goes through tools/misc/export_stage.py and the config instead')
    parser.add_argument('--out-dir', default='outputs', help='where the drawing and mask go')
    parser.add_argument('--device', help='e.g. cpu or cuda:0 (default: the available one)')
    parser.add_argument('--show', action='store_true', help='show the drawing in a window')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override settings of the config')
    args = parser.parse_args(argv)
    if args.type == 'multiple_choice' and not args.options:
        parser.error('--type multiple_choice needs --options')
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    inferencer = FineRSInferencer(cfg, weights=args.weights, device=args.device,
                                  show_progress=False)
    result = inferencer(
        dict(img=args.image, question=args.question, question_type=args.type,
             options=args.options), out_dir=args.out_dir, show=args.show)
    prediction = result['predictions'][0]
    print(f'question : {args.question}')
    print(f"answer   : {prediction['answer'] or '(none)'}")
    if prediction['invalid_reason']:
        print(f"invalid  : {prediction['invalid_reason']} (the model's output could not be used)")
    print(f"region   : {prediction['region']}")
    print(f"box      : {prediction['bbox']}")
    print(f"points   : {prediction['points']}")
    print(f"reasoning (explorer): {prediction['explorer_completion']!r}")
    print(f"reasoning (refiner) : {prediction['refiner_completion']!r}")
    print(f"drawing  : {osp.join(args.out_dir, 'vis')}")
    layout = getattr(inferencer.visualizer, 'layout', None)  # FineRSVisualizer's record
    for note in layout.notes if layout is not None else []:
        print(f'  note   : {note}')
    print(f"mask     : {prediction['mask_file']}")
    print(f"all      : {osp.join(args.out_dir, 'preds')}")
    return prediction


if __name__ == '__main__':
    main()
