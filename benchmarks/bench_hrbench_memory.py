# Copyright (c) finers_mm contributors. All rights reserved.
"""Resident memory of HRBenchDataset on an 8K-sized TSV: the file is never held in memory.

Writes an HR-Bench TSV of ``--rows`` rows (default 2,000) whose ``image`` fields are ~``--mb`` MB
of base64 each (one random-noise JPEG, the same bytes in every row: the reader cannot tell), i.e.
a ~2 GB file in a temporary folder, then in this process measures the resident set size (VmRSS)
before building the dataset, after indexing the file, and its peak while iterating every sample
through ``LoadFineRSImage`` (each row's base64 image decoded when the sample is drawn, as in the
dataloader). Prints the file size, the index time, and the RSS increases over the baseline.

    python benchmarks/bench_hrbench_memory.py [--rows 2000] [--mb 1.0] [--limit-mb 200]

Exits with status 1 when the peak increase exceeds ``--limit-mb``. Measured (2 loaded CPU cores,
defaults: 2,000 rows of 1.49 MB base64, a 2.98 GB file): index 18.5 s (0.16 GB/s), RSS +2.4 MiB
after indexing, peak +10.7 MiB while decoding all 2,000 images (limit 200 MiB).
"""
import argparse
import base64
import os
import os.path as osp
import sys
import tempfile
import time

import cv2
import numpy as np


def rss_mb() -> float:
    """This process's resident set size in MiB (Linux /proc)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    raise RuntimeError('no VmRSS in /proc/self/status')


def noise_jpeg_base64(target_mb: float) -> str:
    """Base64 of a noise JPEG of about ``target_mb`` MB of base64."""
    side = 256
    while True:
        pixels = np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8)
        text = base64.b64encode(cv2.imencode('.jpg', pixels, [cv2.IMWRITE_JPEG_QUALITY, 95])[1]
                                .tobytes()).decode()
        if len(text) >= target_mb * 1e6:
            return text
        side = int(side * 1.25)


def write_tsv(path: str, rows: int, image: str) -> None:
    header = ['index', 'question', 'A', 'B', 'C', 'D', 'answer', 'category', 'image',
              'cycle_category']
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\t'.join(header) + '\n')
        for k in range(rows):
            f.write('\t'.join([str(k), f'What is written on sign {k}?', 'a', 'b', 'c', 'd',
                               'ABCD'[k % 4], ('FSP', 'FCP')[k % 2], image,
                               f'cycle{k % 4}']) + '\n')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rows', type=int, default=2000)
    parser.add_argument('--mb', type=float, default=1.0)
    parser.add_argument('--limit-mb', type=float, default=200.0)
    args = parser.parse_args(argv)

    from mmengine.registry import init_default_scope

    from finers_mm.datasets.benchmarks import HRBenchDataset
    init_default_scope('finers_mm')
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'hr_bench_8k_scaled.tsv')
        image = noise_jpeg_base64(args.mb)
        write_tsv(path, args.rows, image)
        del image
        size_gb = os.path.getsize(path) / 1e9
        baseline = rss_mb()
        start = time.perf_counter()
        dataset = HRBenchDataset(ann_file=path, pipeline=[dict(type='LoadFineRSImage')],
                                 test_mode=True)
        index_s = time.perf_counter() - start
        after_index = rss_mb() - baseline
        peak, shape = after_index, None
        for k in range(len(dataset)):
            shape = dataset[k]['img'].shape
            peak = max(peak, rss_mb() - baseline)
        print(f'TSV: {args.rows} rows, {size_gb:.2f} GB (image field {args.mb:g} MB of base64, '
              f'decoded {shape[1]}x{shape[0]})')
        print(f'index: {index_s:.1f} s ({size_gb / index_s:.2f} GB/s)')
        print(f'RSS over the baseline ({baseline:.0f} MiB): after indexing {after_index:.1f} MiB, '
              f'peak while iterating all {len(dataset)} samples {peak:.1f} MiB '
              f'(limit {args.limit_mb:g} MiB)')
    return 0 if peak <= args.limit_mb else 1


if __name__ == '__main__':
    sys.exit(main())
