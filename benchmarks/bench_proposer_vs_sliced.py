# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRS as a proposer for an mmdet detector vs sliced inference of the same detector.

On the bundled synthetic set (12 questions on 4 images of 1920x1080, CPU, 1 thread), both pipelines
of ``projects/reasoning_proposer`` are run through ``test_step`` on batches of 4:

- ``proposer``: ``ReasoningProposerDetector``: the explorer's region -> one 512 px crop window
  (``crop_min_side``) -> the detector on that crop;
- ``sliced``: ``SlicedDetector``: 512 px tiles with 0.2 overlap over the whole image (15 tiles on
  1920x1080) -> the same detector on every tile; merged with ``mmcv.ops.batched_nms``.

Measured per sample (one question):

- detector calls (crops the detector runs on; also per unique image: sliced inference does not
  depend on the question, so its tiles could be shared by the questions of an image);
- time per sample of the tiny random RTMDet pipeline (median of ``--repeats``), and, separately,
  the tiny random Qwen2.5-VL explorer's batched generate (what the proposer pays on top);
- target recall: the GT box counts as recalled when a predicted box has IoU >= 0.5 with it.
  With RANDOM detector weights that recall means nothing, so recall is measured with an ORACLE
  detector (``OracleCropDetector``: returns the GT box as seen, clipped, in whatever crop it gets),
  i.e. whether the target falls inside what the detector sees. The random tiny explorer never
  writes a parsable region either, so the proposer's regions are SCRIPTED: the 256 px explorer
  region around the GT (a perfect explorer), then displaced by ``--shifts`` explorer-frame pixels in
  a random direction (seeded) to show how coverage falls with the explorer's localisation error.

Prints the table and the ratios sliced / proposer.

    python benchmarks/bench_proposer_vs_sliced.py [--repeats 3] [--shifts 0 128 256 384]
"""
import argparse
import copy
import math
import os.path as osp
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from finers_mm.models.stages import Query  # noqa: E402
from finers_mm.registry import DATASETS, MODELS  # noqa: E402
from projects.mmdet_refiner.tools.build_tiny_detector import main as build_detector  # noqa
from projects.reasoning_proposer.reasoning_proposer import region_for  # noqa: E402

PROJECT = osp.join(REPO_ROOT, 'projects', 'reasoning_proposer')
PROPOSER_CFG = osp.join(PROJECT, 'configs', 'finers_tiny_reasoning_proposer.py')
SLICED_CFG = osp.join(PROJECT, 'configs', 'sliced_tiny_rtmdet.py')
DETECTOR_CFG = osp.join(REPO_ROOT, 'projects', 'mmdet_refiner', 'configs', 'rtmdet_tiny_1cls.py')


def box_iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def run(model, dataset, batch_size: int):
    """All samples through ``test_step``; (results, seconds)."""
    results, start = [], time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(dataset), batch_size):
            batch = [dataset[j] for j in range(i, min(i + batch_size, len(dataset)))]
            results.extend(model.test_step(pseudo_collate(batch)))
    return results, time.perf_counter() - start


def summarize(results, infos) -> dict:
    calls = [int(r.num_detector_inputs) for r in results]
    recalled, covered = [], []
    for r, info in zip(results, infos):
        gt = info['gt_bbox']
        boxes = r.pred_instances.bboxes.numpy().reshape(-1, 4)
        recalled.append(any(box_iou(b, gt) >= 0.5 for b in boxes))
        covered.append(any(w[0] <= gt[0] and w[1] <= gt[1] and w[2] >= gt[2] and w[3] >= gt[3]
                           for w in np.asarray(r.pred_windows).reshape(-1, 4)))
    per_image = {}
    for r, info in zip(results, infos):
        per_image[info['img_path']] = int(r.num_detector_inputs)
    return dict(calls=statistics.mean(calls), recall=100 * statistics.mean(recalled),
                covered=100 * statistics.mean(covered), n=len(results),
                images=len(per_image))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--shifts', type=float, nargs='+', default=[0, 128, 256, 384],
                        help='explorer localisation errors to script, explorer-frame pixels')
    parser.add_argument('--tiny-models', default=osp.join(REPO_ROOT, 'work_dirs', 'tiny_models'),
                        help='tiny Qwen2.5-VL for the explorer timing (built if missing)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    init_default_scope('finers_mm')
    tmp = tempfile.mkdtemp(prefix='bench_proposer_')
    checkpoint = build_detector([DETECTOR_CFG, osp.join(tmp, 'rtmdet_tiny_1cls.pth')])

    proposer_cfg = Config.fromfile(PROPOSER_CFG)
    sliced_cfg = Config.fromfile(SLICED_CFG)
    data_cfg = copy.deepcopy(proposer_cfg.test_dataloader.dataset)
    data_cfg.data_root = osp.join(REPO_ROOT, 'finers_mm', 'data', 'synthetic') + '/'
    dataset = DATASETS.build(data_cfg)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    rng = np.random.default_rng(args.seed)
    angles = rng.uniform(0, 2 * math.pi, size=len(infos))

    def regions(shift):
        return {info['question']: region_for(
            info['gt_bbox'], (info['width'], info['height']),
            shift=(shift * math.cos(a), shift * math.sin(a))).tolist()
            for info, a in zip(infos, angles)}

    tiny_det = dict(config=DETECTOR_CFG, checkpoint=checkpoint)
    oracle_det = dict(type='OracleCropDetector')

    def proposer(detector, shift):
        cfg = copy.deepcopy(proposer_cfg.model)
        cfg.explorer = dict(type='ScriptedRegionExplorer', regions=regions(shift))
        cfg.detector = detector
        return MODELS.build(cfg).eval()

    def sliced(detector):
        cfg = copy.deepcopy(sliced_cfg.model)
        cfg.detector = detector
        return MODELS.build(cfg).eval()

    rows = []
    # coverage / recall: oracle detector
    for shift in args.shifts:
        results, _ = run(proposer(oracle_det, shift), dataset, args.batch_size)
        rows.append((f'proposer, oracle det, explorer err {shift:g}px', summarize(results, infos)))
    results, _ = run(sliced(oracle_det), dataset, args.batch_size)
    sliced_oracle = summarize(results, infos)
    rows.append(('sliced 512/0.2, oracle det', sliced_oracle))

    # timing: the tiny random RTMDet, same crops sizes
    timings = {}
    for name, build in (('proposer', lambda: proposer(tiny_det, 0)),
                        ('sliced', lambda: sliced(tiny_det))):
        model = build()
        run(model, dataset, args.batch_size)  # warm-up
        times = []
        for _ in range(args.repeats):
            results, seconds = run(model, dataset, args.batch_size)
            times.append(seconds / len(dataset))
        timings[name] = statistics.median(times)
        rows.append((f'{name}, tiny random RTMDet', dict(summarize(results, infos),
                                                         time=timings[name])))

    # what the proposer pays on top: the explorer's generate (tiny random Qwen2.5-VL)
    explorer_time = None
    vlm_dir = osp.join(args.tiny_models, 'qwen2_5_vl')
    if not osp.isdir(vlm_dir):
        from finers_mm.testing.tiny_models import build_tiny_models
        vlm_dir = build_tiny_models(osp.join(tmp, 'tiny_models'), seed=0)['qwen2_5_vl']
    explorer_cfg = copy.deepcopy(proposer_cfg.model.explorer)
    explorer_cfg.vlm.pretrained = vlm_dir
    explorer = MODELS.build(explorer_cfg).eval()
    data_pre = MODELS.build(dict(type='FineRSDataPreprocessor'))
    times = []
    for repeat in range(args.repeats + 1):
        start = time.perf_counter()
        with torch.no_grad():
            for i in range(0, len(dataset), args.batch_size):
                batch = data_pre(pseudo_collate(
                    [dataset[j] for j in range(i, min(i + args.batch_size, len(dataset)))]))
                samples = batch['data_samples']
                explorer.explore(batch['inputs']['explorer'],
                                 [(s.ori_shape[1], s.ori_shape[0]) for s in samples],
                                 [Query.from_data_sample(s) for s in samples])
        if repeat:
            times.append((time.perf_counter() - start) / len(dataset))
    explorer_time = statistics.median(times)

    print(f'{len(dataset)} samples ({rows[0][1]["images"]} images, 1920x1080), CPU, 1 thread, '
          f'batch {args.batch_size}, median of {args.repeats}')
    print(f'{"pipeline":44s} {"calls/sample":>12s} {"recall%":>8s} {"covered%":>9s} '
          f'{"ms/sample":>10s}')
    for name, row in rows:
        ms = f'{1000 * row["time"]:10.1f}' if 'time' in row else f'{"-":>10s}'
        print(f'{name:44s} {row["calls"]:12.2f} {row["recall"]:8.1f} {row["covered"]:9.1f} {ms}')
    print(f'{"tiny random Qwen2.5-VL explorer (generate)":44s} {"-":>12s} {"-":>8s} {"-":>9s} '
          f'{1000 * explorer_time:10.1f}')
    prop = dict(rows)['proposer, tiny random RTMDet']
    sl = dict(rows)['sliced, tiny random RTMDet']
    per_q = len(dataset) / prop['images']
    print('ratios (sliced / proposer):')
    print(f'  detector calls per sample          {sl["calls"] / prop["calls"]:.2f}x '
          f'({sl["calls"]:.0f} vs {prop["calls"]:.0f}; {sl["calls"] / per_q / prop["calls"]:.2f}x '
          f'if the tiles of an image were shared by its {per_q:.0f} questions)')
    print(f'  detector time per sample           {timings["sliced"] / timings["proposer"]:.2f}x')
    total = timings['proposer'] + explorer_time
    print(f'  time per sample incl. the explorer {timings["sliced"] / total:.2f}x '
          f'(proposer {1000 * total:.1f} ms = detector {1000 * timings["proposer"]:.1f} + '
          f'tiny explorer {1000 * explorer_time:.1f})')
    oracle0 = rows[0][1]
    print(f'  target recall (oracle det, perfect explorer) '
          f'{sliced_oracle["recall"]:.1f}% vs {oracle0["recall"]:.1f}%')


if __name__ == '__main__':
    main()
