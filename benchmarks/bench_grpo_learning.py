# Copyright (c) finers_mm contributors. All rights reserved.
"""Does GRPO itself raise the reward? A tiny stage, warmed up, then trained by GRPO on CPU.

The same steps as the quick start (``tools/misc/quickstart.py``), for one stage: generate the
synthetic training set, supervised warm-up (``<stage>_tiny_sft.py``), export, GRPO from the export
(``<stage>_tiny.py``, every iteration logged), export. Then two measurements:

1. the training curve: the mean reward (and each term) of blocks of ``k`` GRPO iterations, and
   the first-``k`` versus last-``k`` means and their ratio;
2. a fixed rollout before and after: the same ``--eval-prompts`` training prompts, the same seed,
   ``num_generations`` samples each at the config's temperature, scored by the config's reward,
   for the warm-up model (GRPO's starting point) and for the GRPO-trained one.

Steps whose results exist are reused (as in the quick start); ``--force`` redoes them.

    python benchmarks/bench_grpo_learning.py [--stage gse|lpr] [--grpo-iters N] [--sft-iters N]
        [--work-dir work_dirs/bench_grpo_learning] [--k 10] [--eval-prompts 32] [--seed 0]
    python benchmarks/bench_grpo_learning.py --stage lpr --from-quickstart work_dirs/quickstart

Measured with ``--from-quickstart`` on a default quick start (2 CPU cores; gse_tiny.py at lr 2e-4):
GSE mean reward of the first 10 / last 10 of 80 iterations 1.80 -> 2.45 (x1.36; json_format
0.32 -> 0.75, region_contains 0.11 -> 0.40 by blowing the region up while region_size stays ~0,
see configs/finers/gse_tiny.py); LPR, 100 iterations, 1.54 -> 2.01 (x1.30; json_format
0.17 -> 0.64; box and points terms stay ~0). Fixed rollout, 32 prompts x 4 samples, warm-up vs
after GRPO: GSE 1.73 -> 2.48, LPR 1.56 -> 1.98 (json_format 0.20 -> 0.56).
"""
import argparse
import copy
import importlib.util
import json
import os.path as osp
import sys
import time

import numpy as np

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

_spec = importlib.util.spec_from_file_location(
    '_quickstart', osp.join(REPO_ROOT, 'tools', 'misc', 'quickstart.py'))
quickstart = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quickstart)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='GRPO raises the reward of a tiny FineRS stage')
    parser.add_argument('--stage', choices=['gse', 'lpr'], default='gse',
                        help='gse: the explorer (default), lpr: the refiner')
    parser.add_argument('--work-dir', default='work_dirs/bench_grpo_learning')
    parser.add_argument('--models-dir', default='work_dirs/tiny_models', help='tiny model cache')
    parser.add_argument('--num-images', type=int, default=64, help='synthetic training images')
    parser.add_argument('--sft-iters', type=int, default=None, help="default: the config's")
    parser.add_argument('--grpo-iters', type=int, default=None, help="default: the config's")
    parser.add_argument('--k', type=int, default=10, help='iterations per block of the curve')
    parser.add_argument('--eval-prompts', type=int, default=32,
                        help='training prompts of the fixed before/after rollout')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true', help='redo every step')
    parser.add_argument('--from-quickstart', metavar='DIR',
                        help='measure the runs of a finished quick start (its out dir) instead of '
                        'training here')
    return parser.parse_args(argv)


def train_stage(args) -> dict:
    """Data, warm-up, export, GRPO, export (subprocesses, reused when done)."""
    if args.from_quickstart:
        root = osp.abspath(args.from_quickstart)
        return dict(data=osp.join(root, 'data'),
                    sft=osp.join(root, 'models', f'{args.stage}_sft', 'hf'),
                    grpo=osp.join(root, 'models', args.stage, 'hf'),
                    grpo_work_dir=osp.join(root, 'train', f'{args.stage}_grpo'),
                    config=osp.join(quickstart.CONFIGS, f'{args.stage}_tiny.py'))
    out_dir = osp.abspath(osp.join(args.work_dir, args.stage))
    paths = quickstart.build_tiny_models(args.models_dir, seed=0)
    steps = quickstart.Steps(total=5, force=args.force, cwd=REPO_ROOT)
    data_dir = osp.join(out_dir, 'data')
    steps.run('data', f'synthetic training set: {args.num_images} images', data_dir,
              [osp.join(REPO_ROOT, 'tools', 'misc', 'make_synthetic_finers.py'), data_dir,
               '--num-images', str(args.num_images), '--image-size', '960', '540',
               '--seed', str(args.seed)])
    pretrained, depends, result = paths['qwen2_5_vl'], ['data'], {}
    for phase, iters in (('sft', args.sft_iters), ('grpo', args.grpo_iters)):
        name = f'{args.stage}_tiny_sft.py' if phase == 'sft' else f'{args.stage}_tiny.py'
        config = osp.join(quickstart.CONFIGS, name)
        max_iters = quickstart._config_iters(config) if iters is None else iters
        work_dir = osp.join(out_dir, phase)
        options = [f'model.vlm.pretrained={pretrained}', f'randomness.seed={args.seed}',
                   f'train_dataloader.dataset.data_root={data_dir}/']
        if iters is not None:
            options += [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}']
            if phase == 'sft':
                options.append(f'param_scheduler.1.end={max(iters, 21)}')
        if phase == 'grpo':
            options.append('log_processor.window_size=1')
        steps.run(phase, f'{args.stage.upper()} {phase.upper()}, {max_iters} iterations', work_dir,
                  [osp.join(REPO_ROOT, 'tools', 'train.py'), config, '--work-dir', work_dir,
                   '--cfg-options', *options], depends=depends,
                  progress=quickstart.train_progress(max_iters))
        model_dir = osp.join(out_dir, f'{phase}_hf')
        steps.run(f'{phase}_export', f'export the {phase.upper()} checkpoint', model_dir,
                  [osp.join(REPO_ROOT, 'tools', 'misc', 'export_stage.py'), config,
                   osp.join(work_dir, f'iter_{max_iters}.pth'), osp.join(model_dir, 'hf'),
                   '--cfg-options', f'model.vlm.pretrained={pretrained}'], depends=[phase])
        result[phase] = osp.join(model_dir, 'hf')
        pretrained, depends = result[phase], [f'{phase}_export']
    result.update(data=data_dir, grpo_work_dir=osp.join(out_dir, 'grpo'),
                  config=osp.join(quickstart.CONFIGS, f'{args.stage}_tiny.py'))
    return result


def fixed_rollout(config: str, pretrained: str, data_root: str, num_prompts: int,
                  seed: int) -> dict:
    """Mean reward (and terms) of ``num_generations`` samples of the first ``num_prompts``
    training prompts, sampled as in GRPO (the hook's temperature and budget) with a fixed seed."""
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope

    from finers_mm.registry import DATASETS, HOOKS, MODELS
    from finers_mm.utils.run_config import load_config
    torch.set_num_threads(1)
    init_default_scope('finers_mm')
    cfg = load_config(config)
    cfg.model.vlm.pretrained = pretrained
    hook = HOOKS.build(copy.deepcopy(cfg.custom_hooks[0]))  # its sampling and reward, defaults in
    stage = MODELS.build(cfg.model).eval()
    reward = hook.reward
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg.data_root = data_root + '/'
    dataset = DATASETS.build(dataset_cfg)
    torch.manual_seed(seed)
    totals, terms = [], {}
    for first in range(0, min(num_prompts, len(dataset)), 8):
        batch = pseudo_collate([dataset[i] for i in
                                range(first, min(first + 8, num_prompts, len(dataset)))])
        data = stage.data_preprocessor(batch, False)
        samples = data['data_samples']
        views = stage.views(data['inputs'], samples)
        with torch.no_grad():
            generation = stage.vlm.generate(views, stage.build_prompts(samples, views),
                                            **hook.sampling)
        scored = reward(generation.texts, [stage.reward_sample(s, v) for s, v in
                                           zip(samples, views)
                                           for _ in range(hook.num_generations)])
        totals += list(scored.total)
        for name, values in scored.terms.items():
            terms.setdefault(name, []).extend(values)
    return dict(reward=float(np.mean(totals)),
                **{f'reward/{name}': float(np.mean(v)) for name, v in terms.items()})


def main(argv=None) -> dict:
    args = parse_args(argv)
    start = time.perf_counter()
    trained = train_stage(args)
    rows = quickstart.read_rewards(trained['grpo_work_dir'])
    keys = [key for key in rows[0] if key == 'reward' or key.startswith('reward/')
            or key == 'invalid_rate']
    k = min(args.k, max(1, len(rows) // 2))
    print(f'\n=== {args.stage.upper()} GRPO training curve: mean of blocks of {k} iterations '
          f'({len(rows)} iterations, {rows[0]["reward"] if rows else 0:.3f} at the first) ===')
    curve = {}
    for key in keys:
        values = np.array([row[key] for row in rows])
        blocks = [float(values[i:i + k].mean()) for i in range(0, len(values), k)]
        first, last = float(values[:k].mean()), float(values[-k:].mean())
        curve[key] = dict(blocks=blocks, first_k=first, last_k=last)
        ratio = f'{last / first:6.2f}' if first > 0 else '   inf' if last > 0 else '     -'
        print(f'{key:24s} first {k}: {first:6.3f}  last {k}: {last:6.3f}  ratio {ratio}   curve '
              + ' '.join(f'{b:.2f}' for b in blocks))

    print(f'\n=== fixed rollout: the first {args.eval_prompts} training prompts, same seed, '
          'before (warm-up) and after GRPO ===')
    before = fixed_rollout(trained['config'], trained['sft'], trained['data'],
                           args.eval_prompts, args.seed)
    after = fixed_rollout(trained['config'], trained['grpo'], trained['data'],
                          args.eval_prompts, args.seed)
    for key in before:
        print(f'{key:24s} before {before[key]:6.3f}  after {after[key]:6.3f}  '
              f'change {after[key] - before[key]:+6.3f}')
    total = time.perf_counter() - start
    print(f'\nfinished in {total:.0f} s')
    result = dict(curve=curve, fixed_rollout=dict(before=before, after=after), seconds=total)
    out_file = osp.join(args.from_quickstart or osp.join(args.work_dir, args.stage),
                        f'bench_grpo_learning_{args.stage}.json')
    with open(out_file, 'w') as f:
        json.dump(result, f, indent=2)
    print(f'results: {out_file}')
    return result


if __name__ == '__main__':
    main()
