# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRSDetector's inference modes (``multi_hypothesis``) on the bundled synthetic set.

Runs the tiny chain (Qwen2.5-VL explorer and refiner, tiny SAM; CPU, 1 thread, batches of 4) over
the 12 bundled questions (4 images of 1920x1080) in each mode, through ``test_step`` and
``FineRSMetric``:

- ``paper``: ``multi_hypothesis=None``, the paper's single region (the default);
- ``topk_beam`` / ``topk_sample``: 4 explorer regions per question (beam search / sampling at
  temperature 1), all refined in one batch, the best kept by the ``product`` fusion
  (exp(refiner mean token log-prob) x SAM's predicted IoU);
- ``adaptive``: the paper's region, then a second refinement on a window sized to the predicted
  object (context 4x, side in [128, 512]);
- ``tiled``: the paper's region, or 512 px tiles (0.2 overlap) when the explorer gives none;
- ``all``: ``configs/finers/finers_tiny_test_multihyp.py`` (top-4 beam + adaptive + tiled);
- ``tiled_forced``: ``tiled`` with every explorer answer discarded, so every sample is tiled:
  what the fallback gives when it triggers (the trained tiny explorer always answers a region).

Printed per mode: gIoU and XXS gIoU (FineRSMetric, in percent like all its figures: 0.0444 below
is 0.0444 %, not 4.4 %), the invalid rate (samples with an ``invalid_reason``, %), the fallback
rate (%), the window recall (fraction of samples whose final crop window contains the GT box;
meaningful even for weak models), the refiner crops per sample and the time per sample (seconds,
median of ``--repeats`` after one warm-up), and the ratios to ``paper``. The stages are the quick start's TRAINED tiny exports
(``work_dirs/quickstart/models/{gse,lpr}/hf``, ``tools/misc/quickstart.py``) when they exist (or
``--explorer`` / ``--refiner``), else the RANDOM tiny models (said in the output); completion
budgets as the quick start's evaluation (explorer 64, refiner 96 new tokens).

    python benchmarks/bench_inference_modes.py [--repeats 1] [--modes paper topk_beam ...]

Measured (quick-start-trained tiny stages, CPU, 1 thread, 12 samples, ``--repeats 2``; the
machine was shared, times are +-30 %)::

  mode            gIoU  gIoU_XXS  invalid%  fallback% win_recall crops/smp  s/sample  x gIoU  x time
  paper         0.0444    0.0164       0.0        0.0      1.000      1.00     0.146    1.00    1.00
  topk_beam     0.0444    0.0164       0.0        0.0      1.000      1.00     0.199    1.00    1.36
  topk_sample   0.0173    0.0084      33.3        0.0      0.667      0.67     0.184    0.39    1.26
  adaptive      0.0790    0.0310       0.0        0.0      0.417      2.00     0.216    1.78    1.48
  tiled         0.0444    0.0164       0.0        0.0      1.000      1.00     0.140    1.00    0.96
  all           0.0790    0.0310       0.0        0.0      0.417      2.00     0.257    1.78    1.76
  tiled_forced  0.0677    0.0000     100.0      100.0      0.083     15.00     0.655    1.53    4.48

Read with care: the quick start's tiny explorer answers (almost) the same region for every
question, larger than the image, so every window is the whole image (window recall 1.0 is trivial)
and its 4 beams all give that same window (1 crop per sample: top-k beam costs only the wider
generate and the scoring pass). Sampled at temperature 1 a third of the questions get no valid
region in 4 tries (lower ``vlm.generation.temperature`` to sample closer to greedy). The tiny
refiner answers one tall box whatever it sees; the adaptive zoom re-crops around it (880 px, the
box's extent) and SAM's masks on that crop overlap the GT more (gIoU 1.8x, XXS 1.9x) although the
window recall falls: with models this weak the quality columns measure the mechanics, not the
method. The explorer never fails, so ``tiled`` changes nothing; ``tiled_forced`` shows the
fallback's cost when it triggers: 15 crops per sample, 4.5x the time. With the RANDOM tiny models
(explorer never valid): paper 0.057 s/sample, topk_beam 2.2x, tiled / all 9.3x / 9.9x (every sample
falls back to 15 tiles), all gIoU 0.
"""
import argparse
import copy
import dataclasses
import os.path as osp
import sys
import time

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from finers_mm.models.hypotheses import parse_multi_hypothesis  # noqa: E402
from finers_mm.registry import DATASETS, MODELS  # noqa: E402
from finers_mm.structures import box_contains  # noqa: E402

TINY_CONFIG = osp.join(REPO_ROOT, 'configs', 'finers', 'finers_tiny_test.py')
MULTIHYP_CONFIG = osp.join(REPO_ROOT, 'configs', 'finers', 'finers_tiny_test_multihyp.py')
QUICKSTART = osp.join(REPO_ROOT, 'work_dirs', 'quickstart', 'models')
TINY_MODELS = osp.join(REPO_ROOT, 'work_dirs', 'tiny_models')
MAX_NEW_TOKENS = dict(explorer=64, refiner=96)  # the quick start's evaluation budgets

#: mode -> (multi_hypothesis, the explorer's multi_region)
MODES = {
    'paper': (None, 'beam'),
    'topk_beam': (dict(num_regions=4, fusion='product'), 'beam'),
    'topk_sample': (dict(num_regions=4, fusion='product'), 'sample'),
    'adaptive': (dict(num_regions=1, fusion='product', adaptive_window={}), 'beam'),
    'tiled': (dict(num_regions=1, fusion='product', tiled_fallback={}), 'beam'),
    'all': None,  # the multihyp test config
    # the fallback when it triggers: every explorer answer discarded, every sample tiled
    'tiled_forced': (dict(num_regions=1, fusion='product', tiled_fallback={}), 'beam'),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--explorer', help='explorer HF dir (default: the quick start export)')
    parser.add_argument('--refiner', help='refiner HF dir (default: the quick start export)')
    parser.add_argument('--models-dir', default=TINY_MODELS, help='tiny models (SAM, random VLM)')
    parser.add_argument('--repeats', type=int, default=1)
    parser.add_argument('--modes', nargs='+', default=list(MODES), choices=list(MODES))
    return parser.parse_args(argv)


def stage_paths(args):
    """(explorer dir, refiner dir, description)."""
    trained = (osp.join(QUICKSTART, 'gse', 'hf'), osp.join(QUICKSTART, 'lpr', 'hf'))
    if args.explorer or args.refiner:
        return args.explorer or trained[0], args.refiner or trained[1], 'given'
    if all(osp.isfile(osp.join(p, 'config.json')) for p in trained):
        return trained[0], trained[1], 'quick-start-trained tiny stages'
    if not osp.isfile(osp.join(args.models_dir, 'qwen2_5_vl', 'config.json')):
        from finers_mm.testing.tiny_models import build_tiny_models
        build_tiny_models(args.models_dir, seed=0)
    random = osp.join(args.models_dir, 'qwen2_5_vl')
    return random, random, 'RANDOM tiny models (no quick start exports found)'


def build(args):
    init_default_scope('finers_mm')
    explorer, refiner, what = stage_paths(args)
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.merge_from_dict({
        'model.explorer.vlm.pretrained': explorer, 'model.refiner.vlm.pretrained': refiner,
        'model.explorer.vlm.generation.max_new_tokens': MAX_NEW_TOKENS['explorer'],
        'model.refiner.vlm.generation.max_new_tokens': MAX_NEW_TOKENS['refiner'],
        'model.mask_head.config': osp.join(args.models_dir, 'sam_tiny.json'),
        'model.mask_head.checkpoint': osp.join(args.models_dir, 'sam_tiny.pth'),
        'test_dataloader.dataset.data_root': osp.join(REPO_ROOT, 'finers_mm/data/synthetic/')})
    if not osp.isfile(cfg.model.mask_head.checkpoint):
        from finers_mm.testing.tiny_models import build_tiny_models
        build_tiny_models(args.models_dir, seed=0)
    detector = MODELS.build(cfg.model).eval()
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    return detector, dataset, what, cfg.test_dataloader.batch_size


def set_mode(detector, mode):
    """Switch the built detector to a mode (the same weights for every mode)."""
    if mode == 'all':
        model = Config.fromfile(MULTIHYP_CONFIG).model
        multi, decoding = copy.deepcopy(model.multi_hypothesis), model.explorer.multi_region
    else:
        multi, decoding = copy.deepcopy(MODES[mode])
    detector.multi_hypothesis = parse_multi_hypothesis(multi, detector.crop_min_side)
    detector.explorer.multi_region = decoding


def _discarding(explore):
    """``explore`` with every region dropped (``tiled_forced``)."""
    def wrapped(*args, **kwargs):
        return [dataclasses.replace(out, region=None, invalid='discarded')
                for out in explore(*args, **kwargs)]
    return wrapped


def run_mode(detector, dataset, batch_size, repeats, discard_regions=False):
    """Predictions of one mode, its time per sample and the refiner crops it ran."""
    crops = []
    refine = detector.refiner.refine
    if discard_regions:
        detector.explorer.explore = _discarding(detector.explorer.explore)

    def counting_refine(images, windows, queries, **kwargs):
        crops.append(len(windows))
        return refine(images, windows, queries, **kwargs)

    detector.refiner.refine = counting_refine
    try:
        times, results = [], None
        for repeat in range(repeats + 1):
            torch.manual_seed(0)
            crops.clear()
            results = []
            start = time.perf_counter()
            with torch.no_grad():
                for i in range(0, len(dataset), batch_size):
                    indices = range(i, min(i + batch_size, len(dataset)))
                    results += detector.test_step(pseudo_collate([dataset[j] for j in indices]))
            if repeat:
                times.append((time.perf_counter() - start) / len(dataset))
    finally:
        del detector.refiner.refine
        if discard_regions:
            del detector.explorer.explore
    return results, float(np.median(times)), sum(crops) / len(dataset)


def evaluate(results, dataset):
    evaluator = Evaluator([dict(type='FineRSMetric')])
    evaluator.dataset_meta = dataset.metainfo
    evaluator.process(data_samples=copy.deepcopy(results))
    metrics = evaluator.evaluate(len(results))
    recall = []
    for index, result in enumerate(results):
        window = result.get('pred_window')
        gt = dataset.get_data_info(index)['gt_bbox']
        recall.append(window is not None and box_contains(window, gt))
    fallback = [result.get('fallback') == 'tiled' for result in results]
    return dict(gIoU=metrics['finers/gIoU'], gIoU_XXS=metrics.get('finers/gIoU_XXS', float('nan')),
                invalid=metrics.get('finers/invalid_rate', 0.0),
                fallback=100.0 * float(np.mean(fallback)), recall=float(np.mean(recall)))


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)
    detector, dataset, what, batch_size = build(args)
    print(f'stages: {what}; {len(dataset)} samples, batches of {batch_size}, CPU, 1 thread, '
          f'median of {args.repeats} run(s) after a warm-up')
    rows = {}
    for mode in args.modes:
        set_mode(detector, mode)
        results, seconds, crops = run_mode(detector, dataset, batch_size, args.repeats,
                                           discard_regions=mode == 'tiled_forced')
        rows[mode] = dict(evaluate(results, dataset), seconds=seconds, crops=crops)
        print(f'  done {mode}', flush=True)
    header = (f"{'mode':<12} {'gIoU':>7} {'gIoU_XXS':>9} {'invalid%':>9} {'fallback%':>10} "
              f"{'win_recall':>10} {'crops/smp':>9} {'s/sample':>9} {'x gIoU':>7} {'x time':>7}")
    print(header)
    base = rows.get('paper')
    for mode, row in rows.items():
        ratio_giou = (row['gIoU'] / base['gIoU'] if base and base['gIoU'] > 0 else float('nan'))
        ratio_time = row['seconds'] / base['seconds'] if base else float('nan')
        print(f"{mode:<12} {row['gIoU']:>7.4f} {row['gIoU_XXS']:>9.4f} {row['invalid']:>9.1f} "
              f"{row['fallback']:>10.1f} {row['recall']:>10.3f} {row['crops']:>9.2f} "
              f"{row['seconds']:>9.3f} {ratio_giou:>7.2f} {ratio_time:>7.2f}")
    return rows


if __name__ == '__main__':
    main()
