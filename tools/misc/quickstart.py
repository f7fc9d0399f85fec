# Copyright (c) finers_mm contributors. All rights reserved.
"""The embedded default main job: train the tiny FineRS stages, evaluate before/after, run the demo.

Everything runs on CPU in a few minutes, offline, through the project's own tools (each step a
subprocess, its output in a log file next to its results):

1. build (once, cached) the tiny models of :mod:`finers_mm.testing.tiny_models`;
2. generate a small synthetic training set (``tools/misc/make_synthetic_finers.py``);
3. evaluate the UNTRAINED tiny models on the bundled synthetic set (``tools/test.py`` with
   ``configs/finers/finers_tiny_test.py``, FineRSMetric);
4. refiner (LPR): supervised warm-up (``configs/finers/lpr_tiny_sft.py``), export, GRPO from the
   export (``configs/finers/lpr_tiny.py``), export (``tools/misc/export_stage.py``);
5. explorer (GSE): the same with ``gse_tiny_sft.py`` and ``gse_tiny.py``, side by side with the
   refiner (``--jobs 2``, the default: one core each; the steps use one thread each);
6. evaluate the trained stages on the bundled set (the exports as ``model.explorer.vlm.pretrained``
   and ``model.refiner.vlm.pretrained``) and print both metric tables side by side, with the GRPO
   training reward of the first and last iterations (from each run's ``vis_data/scalars.json``);
7. run the demo (``tools/demo.py``) with the trained stages on the first bundled question.

A step whose results are complete (a stamp written last, holding the step's command and the
stamps of the steps it depends on) is reused when the quick start runs again with the same
settings; otherwise its folder is removed and the step runs again (``--force``: every step).

Each step is a separate process because mmengine keeps process-wide singletons by name (the
``visualizer`` of the configs, message hubs, loggers): a second runner in the same process would
get the first run's visualizer and write its scalars into the first run's folder.

Example::

    python tools/misc/quickstart.py --out-dir work_dirs/quickstart
    python tools/misc/quickstart.py --quick   # a smoke run: 2 steps per stage, 2 eval samples
"""
import argparse
import glob
import hashlib
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO_ROOT)
sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))

import demo  # noqa: E402

from finers_mm.structures.vocabulary import QTYPE_FROM_ANNOTATION  # noqa: E402
from finers_mm.testing.tiny_models import build_tiny_models  # noqa: E402
from finers_mm.utils.fileio import write_atomic  # noqa: E402

BUNDLED = osp.join(REPO_ROOT, 'finers_mm', 'data', 'synthetic')
CONFIGS = osp.join(REPO_ROOT, 'configs', 'finers')
TEST_CONFIG = osp.join(CONFIGS, 'finers_tiny_test.py')
STAMP = '.quickstart_done.json'
#: completion budgets at evaluation (finers_tiny_test.py's 64 is too short for a refiner answer)
EVAL_MAX_NEW_TOKENS = dict(explorer=64, refiner=96)
#: the metrics of the side-by-side table (FineRSMetric's names, in percent)
TABLE_METRICS = ('gIoU', 'cIoU', 'gIoU_XXS', 'invalid_rate', 'MVQA', 'OVQA')
#: what --quick sets (a smoke run of the whole flow, not a useful model)
QUICK = dict(num_images=2, sft_iters=2, grpo_iters=2, eval_samples=2)
#: the defaults of the settings --quick changes (None: the configs' iterations, every question)
DEFAULTS = dict(num_images=64, sft_iters=None, grpo_iters=None, eval_samples=None)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train the tiny FineRS stages, evaluate them before/after and run the demo')
    parser.add_argument('--out-dir', default='work_dirs/quickstart', help='where outputs go')
    parser.add_argument('--models-dir', default='work_dirs/tiny_models', help='tiny model cache')
    parser.add_argument('--seed', type=int, default=0, help='seed of the tiny models and the data')
    parser.add_argument('--num-images', type=int, default=None,
                        help=f"synthetic training images, 3 questions each (default: "
                        f"{DEFAULTS['num_images']})")
    parser.add_argument('--image-size', type=int, nargs=2, default=[960, 540],
                        metavar=('W', 'H'), help='size of the synthetic training images')
    parser.add_argument('--sft-iters', type=int, default=None,
                        help="supervised warm-up steps per stage (default: the configs')")
    parser.add_argument('--grpo-iters', type=int, default=None,
                        help="GRPO steps per stage (default: the configs')")
    parser.add_argument('--eval-samples', type=int, default=None,
                        help='evaluate on the first N bundled questions (default: all)')
    parser.add_argument('--quick', action='store_true',
                        help=f'smoke run of the whole flow, for tests: {QUICK} where not given')
    parser.add_argument('--jobs', type=int, choices=[1, 2], default=2,
                        help='train the refiner and the explorer one after the other (1) or side '
                        'by side (2, default: one core each)')
    parser.add_argument('--force', action='store_true', help='redo every step')
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


class Steps:
    """Runs the quick start's steps: subprocesses with logs, stamps, reuse and timings."""

    def __init__(self, out_dir: str, total: int, force: bool) -> None:
        self.out_dir = out_dir
        self.total = total
        self.force = force
        self.done = 0
        self.lock = threading.Lock()  # steps of the two stages may run in two threads
        self.timings: Dict[str, float] = {}
        self.digests: Dict[str, str] = {}
        self.env = dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1',
                        PYTHONUNBUFFERED='1')
        # one intra-op thread: much faster for the tiny models than several on a busy machine
        for name in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
            self.env.setdefault(name, '1')

    def run(self, name: str, title: str, folder: str, command: List[str],
            depends: Sequence[str] = (), progress: Optional[re.Pattern] = None) -> bool:
        """Run ``command`` (a list, ``sys.executable`` prepended) unless ``folder`` holds the
        stamp of the same command and dependencies; return whether it ran.

        The folder is emptied first, the output goes to ``folder/quickstart_step.log``, the stamp
        is written (atomically) only after success. Raises SystemExit with the log's tail when
        the command fails.
        """
        with self.lock:
            self.done += 1
            key = json.dumps(dict(command=command, depends=[self.digests[d] for d in depends]))
            digest = hashlib.sha1(key.encode()).hexdigest()
            self.digests[name] = digest
            header = f'[{self.done}/{self.total}] {title}'
        stamp_file = osp.join(folder, STAMP)
        if not self.force and _read_json(stamp_file).get('digest') == digest:
            self.timings[name] = 0.0
            print(f'{header}: done before, reusing {_rel(folder)}', flush=True)
            return False
        print(f'{header} ...', flush=True)
        if osp.isdir(folder):
            shutil.rmtree(folder)
        os.makedirs(folder)
        log_file = osp.join(folder, 'quickstart_step.log')
        start = time.perf_counter()
        with open(log_file, 'w', encoding='utf-8') as log:
            process = subprocess.Popen([sys.executable, *command], cwd=REPO_ROOT, env=self.env,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, errors='replace')
            for line in process.stdout:
                log.write(line)
                match = progress.search(line) if progress else None
                if match:
                    print(f'    {name}: {match.group(0).strip()}', flush=True)
            returncode = process.wait()
        seconds = time.perf_counter() - start
        if returncode != 0:
            with open(log_file, encoding='utf-8') as f:
                tail = f.read()[-4000:]
            raise SystemExit(f'{header} FAILED (exit code {returncode}); the end of '
                             f'{log_file}:\n{tail}')
        self.timings[name] = seconds
        write_atomic(stamp_file, json.dumps(dict(digest=digest, key=json.loads(key),
                                                 seconds=seconds), indent=2))
        print(f'{header}: done in {seconds:.0f} s (log: {_rel(log_file)})', flush=True)
        return True


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _rel(path: str) -> str:
    rel = osp.relpath(path)
    return path if rel.startswith('..') else rel


def _train_progress(max_iters: int) -> re.Pattern:
    """The training log lines worth showing: about 5 per run, with the loss or the reward."""
    every = max(1, max_iters // 5)
    wanted = '|'.join(str(i) for i in range(every, max_iters + 1, every))
    return re.compile(rf'Iter\(train\) \[\s*({wanted})/{max_iters}\].*?'
                      r'(reward: [-\d.e]+|loss: [-\d.e]+)')


def first_bundled_record() -> dict:
    """The first record of the bundled synthetic annotations (the authors' format)."""
    with open(osp.join(BUNDLED, 'annotations', 'train.json'), encoding='utf-8') as f:
        return json.load(f)['annotations'][0]


def read_metrics(eval_dir: str) -> dict:
    """FineRSMetric's results (names without the ``finers/`` prefix) that tools/test.py wrote."""
    files = sorted(glob.glob(osp.join(eval_dir, '*', '*.json')))
    if not files:
        raise SystemExit(f'no metrics file under {eval_dir}')
    metrics = _read_json(files[-1])
    return {key.split('/', 1)[1]: value for key, value in metrics.items() if '/' in key}


def read_rewards(work_dir: str) -> List[dict]:
    """The per-iteration scalars of a GRPO run (``vis_data/scalars.json``, logged every step)."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise SystemExit(f'no scalars.json under {work_dir}')
    with open(files[-1], encoding='utf-8') as f:
        return [json.loads(line) for line in f if line.strip()]


def reward_summary(rows: List[dict]) -> Dict[str, dict]:
    """Each reward key's value at the first and last iteration and its mean over the first and
    last ``k`` iterations (k = a third of the run, at most 10)."""
    k = max(1, min(10, len(rows) // 3))
    keys = [key for key in rows[0] if key == 'reward' or key.startswith('reward/')
            or key == 'invalid_rate']
    summary = {}
    for key in keys:
        values = [row[key] for row in rows if key in row]
        summary[key] = dict(first=values[0], last=values[-1], first_k=sum(values[:k]) / k,
                            last_k=sum(values[-k:]) / k, k=k, iters=len(values))
    return summary


def format_metrics(before: dict, after: dict) -> str:
    """The before/after table of the FineRSMetric results (percent)."""
    lines = [f"{'metric (%)':<14}{'untrained':>11}{'trained':>11}"]
    for name in TABLE_METRICS:
        if name in before or name in after:
            cells = [f'{m[name]:11.1f}' if isinstance(m.get(name), (int, float)) else f"{'-':>11}"
                     for m in (before, after)]
            lines.append(f'{name:<14}' + ''.join(cells))
    return '\n'.join(lines)


def format_rewards(stage: str, summary: Dict[str, dict]) -> str:
    """One stage's GRPO training reward, first vs last iteration (and the mean over k of each)."""
    any_row = next(iter(summary.values()))
    k, iters = any_row['k'], any_row['iters']
    lines = [f"{stage + ' GRPO (' + str(iters) + ' iters)':<26}{'first':>8}{'last':>8}"
             f"{'first ' + str(k):>10}{'last ' + str(k):>9}"]
    for key, row in summary.items():
        lines.append(f'{key:<26}{row["first"]:8.3f}{row["last"]:8.3f}{row["first_k"]:10.3f}'
                     f'{row["last_k"]:9.3f}')
    return '\n'.join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    start = time.perf_counter()
    out_dir = osp.abspath(args.out_dir)
    os.makedirs(out_dir, exist_ok=True)
    print(f'[0/12] building (or reusing) the tiny models in {args.models_dir} ...', flush=True)
    paths = build_tiny_models(args.models_dir, seed=args.seed)
    steps = Steps(out_dir, total=12, force=args.force)

    data_dir = osp.join(out_dir, 'data')
    steps.run('data', f'synthetic training set: {args.num_images} images of '
              f'{args.image_size[0]}x{args.image_size[1]}', data_dir,
              [osp.join(REPO_ROOT, 'tools', 'misc', 'make_synthetic_finers.py'), data_dir,
               '--num-images', str(args.num_images), '--image-size', *map(str, args.image_size),
               '--seed', str(args.seed)])

    sam = [f"model.mask_head.config={paths['sam_config']}",
           f"model.mask_head.checkpoint={paths['sam']}"]
    subset = ([] if args.eval_samples is None
              else [f'test_dataloader.dataset.indices={args.eval_samples}'])
    budgets = [f'model.{stage}.vlm.generation.max_new_tokens={n}'
               for stage, n in EVAL_MAX_NEW_TOKENS.items()]
    test_script = osp.join(REPO_ROOT, 'tools', 'test.py')

    def evaluate(name, title, explorer, refiner, depends=()):
        folder = osp.join(out_dir, 'eval', name)
        steps.run(name, title, folder,
                  [test_script, TEST_CONFIG, '--work-dir', folder, '--cfg-options',
                   f'model.explorer.vlm.pretrained={explorer}',
                   f'model.refiner.vlm.pretrained={refiner}', *sam, *budgets, *subset],
                  depends=depends)
        return read_metrics(folder)

    train_script = osp.join(REPO_ROOT, 'tools', 'train.py')
    export_script = osp.join(REPO_ROOT, 'tools', 'misc', 'export_stage.py')

    def train_stage(stage: str, short: str) -> tuple:
        """Warm-up, export, GRPO, export of one stage; its HF dir, step name and GRPO rewards."""
        pretrained, depends = paths['qwen2_5_vl'], ['data']
        for phase, config_name, iters in (('sft', f'{short}_tiny_sft.py', args.sft_iters),
                                          ('grpo', f'{short}_tiny.py', args.grpo_iters)):
            config = osp.join(CONFIGS, config_name)
            name = f'{short}_{phase}'
            work_dir = osp.join(out_dir, 'train', name)
            options = [f'model.vlm.pretrained={pretrained}',
                       f'train_dataloader.dataset.data_root={data_dir}/']
            max_iters = _config_iters(config) if iters is None else iters
            if iters is not None:
                options += [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}']
                if phase == 'sft':  # the cosine decay ends with the run
                    options.append(f'param_scheduler.1.end={max(iters, 21)}')
            if phase == 'grpo':  # scalars.json: every iteration's own values, not running means
                options.append('log_processor.window_size=1')
            what = ('supervised warm-up' if phase == 'sft' else 'GRPO from the warm-up')
            steps.run(name, f'{stage} ({short.upper()}): {what}, {max_iters} iterations',
                      work_dir, [train_script, config, '--work-dir', work_dir,
                                 '--cfg-options', *options],
                      depends=depends, progress=_train_progress(max_iters))
            model_dir = osp.join(out_dir, 'models', name if phase == 'sft' else short)
            steps.run(f'{name}_export', f'export the {short.upper()} {phase.upper()} checkpoint '
                      'as a Hugging Face model', model_dir,
                      [export_script, config, osp.join(work_dir, f'iter_{max_iters}.pth'),
                       osp.join(model_dir, 'hf'), '--cfg-options',
                       f'model.vlm.pretrained={pretrained}'], depends=[name])
            pretrained, depends = osp.join(model_dir, 'hf'), [f'{name}_export']
        return pretrained, depends, reward_summary(read_rewards(work_dir))

    # the two stages train independently (LPR first in the paper only because the region search
    # needs the trained LPR, which the tiny run skips): one core each with --jobs 2
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = dict(
            refiner=pool.submit(train_stage, 'refiner', 'lpr'),
            explorer=pool.submit(train_stage, 'explorer', 'gse'),
            before=pool.submit(evaluate, 'eval_before', 'FineRSMetric of the UNTRAINED tiny '
                               'models on the bundled set', paths['qwen2_5_vl'],
                               paths['qwen2_5_vl']))
        errors = [future.exception() for future in futures.values()]
        if any(errors):
            raise next(error for error in errors if error is not None)
    before = futures['before'].result()
    exported = {stage: futures[stage].result()[:2] for stage in ('refiner', 'explorer')}
    rewards = {short: futures[stage].result()[2]
               for stage, short in (('refiner', 'LPR'), ('explorer', 'GSE'))}

    after = evaluate('eval_after', 'FineRSMetric of the TRAINED stages on the bundled set',
                     exported['explorer'][0], exported['refiner'][0],
                     depends=exported['explorer'][1] + exported['refiner'][1])

    with open(osp.join(BUNDLED, 'annotations', 'train.json'), encoding='utf-8') as f:
        num_questions = len(json.load(f)['annotations'])
    if args.eval_samples is not None:
        num_questions = min(num_questions, args.eval_samples)
    print(f'\n=== FineRSMetric on the bundled synthetic set ({num_questions} questions) ===')
    print(format_metrics(before, after))
    print('\n=== GRPO training reward (untrained models: 0 on every term, no answer tag) ===')
    for stage, summary in rewards.items():
        print(format_rewards(stage, summary))

    record = first_bundled_record()
    print(f'\n[12/12] demo with the trained stages on a bundled question '
          f"(ground truth answer: {record['A']!r})", flush=True)
    demo_args = [osp.join(BUNDLED, 'images', record['image_path']), record['Q'],
                 '--type', QTYPE_FROM_ANNOTATION[record['Q-type']], '--out-dir', out_dir,
                 '--device', 'cpu', '--cfg-options',
                 f"model.explorer.vlm.pretrained={exported['explorer'][0]}",
                 f"model.refiner.vlm.pretrained={exported['refiner'][0]}", *sam, *budgets]
    if record.get('options'):
        demo_args[3:3] = ['--options', *record['options']]
    prediction = demo.main(demo_args)

    total = time.perf_counter() - start
    summary = dict(metrics=dict(untrained=before, trained=after), grpo_rewards=rewards,
                   step_seconds=steps.timings, total_seconds=total,
                   models=dict(explorer=exported['explorer'][0], refiner=exported['refiner'][0]),
                   settings=dict(vars(args)))
    write_atomic(osp.join(out_dir, 'summary.json'), json.dumps(summary, indent=2))
    print(f'\nquick start finished in {total:.0f} s ({total / 60:.1f} min); summary: '
          f"{_rel(osp.join(out_dir, 'summary.json'))}")
    prediction['quickstart'] = summary
    return prediction


_CONFIG_LOCK = threading.Lock()


def _config_iters(config: str) -> int:
    """``train_cfg.max_iters`` of a training config."""
    from mmengine.config import Config
    with _CONFIG_LOCK:  # Config.fromfile imports the file: once at a time
        return int(Config.fromfile(config).train_cfg.max_iters)


if __name__ == '__main__':
    main()
