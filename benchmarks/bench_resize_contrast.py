# Copyright (c) finers_mm contributors. All rights reserved.
"""What the frame resize does to a tiny target: the contrast a bright square keeps.

A uniform grey original (3840 x 2160 by default) holds one bright square; the whole image is
resized to the explorer frame (1920 x 1080: a 2x downscale) by each method of
:func:`finers_mm.structures.resize_to_frame` ('cv2_linear': finers_mm; 'pil_bilinear': the authors'
evaluation; 'pil_bicubic': the authors' training converters). The contrast is the peak difference
from the background in the frame, in grey levels and as a fraction of the original's. A square's
phase on the source grid matters (at 2x, cv2 linear averages aligned 2 x 2 blocks), so every
offset of its corner modulo the scale is measured and the lowest and highest are shown.

    python benchmarks/bench_resize_contrast.py [--original 3840 2160] [--frame 1920 1080] \\
        [--sides 10 4] [--background 40] [--foreground 240]
"""
import argparse
import math
import os.path as osp
import sys

import numpy as np

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from finers_mm.structures import resize_to_frame  # noqa: E402
from finers_mm.structures.images import RESIZE_METHODS  # noqa: E402


def square_contrast(original, frame, side, offset, method, background, foreground):
    """Peak |frame - background| of one bright ``side`` square with its corner at ``offset``
    (pixels from the original's centre, both axes), resized by ``method``."""
    width, height = original
    img = np.full((height, width, 3), background, dtype=np.uint8)
    x = width // 2 + offset
    y = height // 2 + offset
    img[y:y + side, x:x + side] = foreground
    out = resize_to_frame(img, frame, resize=method).astype(np.int64)
    return int(np.abs(out - background).max())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--original', type=int, nargs=2, default=(3840, 2160))
    parser.add_argument('--frame', type=int, nargs=2, default=(1920, 1080))
    parser.add_argument('--sides', type=int, nargs='+', default=(10, 4))
    parser.add_argument('--background', type=int, default=40)
    parser.add_argument('--foreground', type=int, default=240)
    args = parser.parse_args(argv)
    full = args.foreground - args.background
    scale = max(args.original[0] / args.frame[0], args.original[1] / args.frame[1])
    phases = range(max(1, math.ceil(scale)))  # every corner offset modulo the scale
    print(f'{args.original[0]}x{args.original[1]} -> {args.frame[0]}x{args.frame[1]} '
          f'({scale:g}x downscale), square {args.foreground} on {args.background}: '
          f'full contrast {full}')
    print(f'{"side":>5} {"method":<13} {"contrast min..max over phases":>30} {"fraction":>14}')
    for side in args.sides:
        for method in RESIZE_METHODS:
            values = [square_contrast(args.original, args.frame, side, phase, method,
                                      args.background, args.foreground) for phase in phases]
            low, high = min(values), max(values)
            print(f'{side:>5} {method:<13} {f"{low}..{high}":>30} '
                  f'{f"{low / full:.2f}..{high / full:.2f}":>14}')


if __name__ == '__main__':
    main()
