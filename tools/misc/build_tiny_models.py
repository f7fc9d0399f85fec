# Copyright (c) finers_mm contributors. All rights reserved.
"""Build the tiny local models (Qwen2.5-VL, Qwen2-VL, SAM) used by tests, examples and smoke runs.

Example:
    python tools/misc/build_tiny_models.py work_dirs/tiny_models --seed 0

Nothing is downloaded; a complete build already in OUT_DIR for the same seed is reused.
"""
import argparse
import json
import os
import time

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')

from finers_mm.testing.tiny_models import build_tiny_models  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (list[str], optional): Arguments; defaults to ``sys.argv[1:]``.

    Returns:
        argparse.Namespace: ``out_dir`` and ``seed``.
    """
    parser = argparse.ArgumentParser(
        description='Build the tiny local FineRS models (no download).')
    parser.add_argument('out_dir', help='directory to write the models into')
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of the random weights (default 0)')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    """Build the models and print their paths as json."""
    args = parse_args(argv)
    start = time.perf_counter()
    paths = build_tiny_models(args.out_dir, seed=args.seed)
    print(json.dumps(paths, indent=2))
    print(f'done in {time.perf_counter() - start:.1f} s')


if __name__ == '__main__':
    main()
