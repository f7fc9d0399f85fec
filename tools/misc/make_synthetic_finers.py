# Copyright (c) finers_mm contributors. All rights reserved.
r"""Write a synthetic data set in the FineRS-4k layout and annotation format.

Example::

    python tools/misc/make_synthetic_finers.py data/synthetic_finers --num-images 100 \
        --image-size 3840 2160 --seed 0 --split train

writes ``data/synthetic_finers/images/train_*.jpg`` and
``data/synthetic_finers/annotations/train.json`` (see :mod:`finers_mm.testing.synthetic`).
"""
import argparse

from finers_mm.testing.synthetic import (DISTRACTORS_PER_MEGAPIXEL, MIN_DISTRACTORS,
                                         generate_synthetic_finers)


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Generate synthetic FineRS-4k-format data')
    parser.add_argument('out_dir', help='output folder (gets images/ and annotations/)')
    parser.add_argument('--num-images', type=int, default=8, help='number of images')
    parser.add_argument(
        '--image-size', type=int, nargs=2, default=[1920, 1080], metavar=('W', 'H'),
        help='image size')
    parser.add_argument(
        '--questions-per-image', type=int, default=3, help='records (targets) per image')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument(
        '--split', default='train', help='annotation file name and image name prefix')
    parser.add_argument(
        '--image-format', choices=['jpg', 'png'], default='jpg', help='png is lossless')
    parser.add_argument('--jpeg-quality', type=int, default=90, help='JPEG quality')
    parser.add_argument(
        '--options-format', choices=['list', 'dict'], default='list',
        help="multiple-choice options as ['A. red', ...] or {'A': 'red', ...}")
    parser.add_argument(
        '--num-distractors', type=int, default=None,
        help=f'distractors per image (default: {DISTRACTORS_PER_MEGAPIXEL} per megapixel, '
        f'at least {MIN_DISTRACTORS})')
    parser.add_argument(
        '--object-scale', type=float, default=1.0,
        help='side factor of every object (a size curriculum: 3 draws objects 3x as wide as '
        'their size bucket; their recorded area, hence bucket, is the scaled one)')
    parser.add_argument(
        '--no-region-cues', dest='region_cues', action='store_false',
        help='word no question by a region of the image (where the target is must be seen, not '
        'read)')
    parser.add_argument(
        '--no-clutter', dest='clutter', action='store_false',
        help='paint the objects on a plain ground, without terrain, roads or roofs')
    return parser.parse_args()


def main() -> None:
    """Generate the data set and print the annotation file's path."""
    args = parse_args()
    ann_file = generate_synthetic_finers(
        args.out_dir,
        num_images=args.num_images,
        image_size=tuple(args.image_size),
        questions_per_image=args.questions_per_image,
        seed=args.seed,
        split=args.split,
        image_format=args.image_format,
        jpeg_quality=args.jpeg_quality,
        options_format=args.options_format,
        num_distractors=args.num_distractors,
        object_scale=args.object_scale,
        region_cues=args.region_cues,
        clutter=args.clutter)
    print(f'\nannotations written to {ann_file}')


if __name__ == '__main__':
    main()
