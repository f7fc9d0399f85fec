# Copyright (c) finers_mm contributors. All rights reserved.
"""The embedded default main job: train the tiny FineRS stages, evaluate before/after, run the demo.

Everything runs on CPU in a few minutes, offline, through the project's own tools (each step a
subprocess, its output in a log file next to its results), one function per step:

1. :func:`build_models`: build (once, cached) the tiny models of
   :mod:`finers_mm.testing.tiny_models`;
2. :func:`make_data`: generate a small synthetic training set
   (``tools/misc/make_synthetic_finers.py``);
3. :func:`evaluate_untrained`: evaluate the UNTRAINED tiny models on the bundled synthetic set
   (``tools/test.py`` with ``configs/finers/finers_tiny_test.py``, FineRSMetric);
4. :func:`train_stage` of the refiner (LPR): supervised warm-up
   (``configs/finers/lpr_tiny_sft.py``), export, GRPO from the export
   (``configs/finers/lpr_tiny.py``), export (``tools/misc/export_stage.py``);
5. :func:`train_stage` of the explorer (GSE): the same with ``gse_tiny_sft.py`` and ``gse_tiny.py``,
   side by side with the refiner (``--jobs 2``, the default: one core each; the steps use one
   thread each);
6. :func:`evaluate_trained`: evaluate the trained stages on the bundled set (the exports as
   ``model.explorer.vlm.pretrained`` and ``model.refiner.vlm.pretrained``); :func:`print_tables`
   prints both metric tables side by side, with the GRPO training reward of the first and last
   iterations (from each run's ``vis_data/scalars.json``);
7. :func:`run_demo`: ``tools/demo.py`` with the trained stages on the first bundled question.

A step whose results are complete is reused when the quick start runs again with the same settings
(``--force``: every step runs again); the demo runs every time. The step runner (subprocesses,
logs, stamps, side-by-side chains): ``quickstart_steps.py``; what is read from the steps' outputs
and the printed tables: ``quickstart_results.py``, both beside this file.

Example::

    python tools/misc/quickstart.py --out-dir work_dirs/quickstart
    python tools/misc/quickstart.py --quick   # a smoke run: 2 steps per stage, 2 eval samples
"""
import argparse
import json
import os
import os.path as osp
import sys
import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

MISC_DIR = osp.dirname(osp.abspath(__file__))
REPO_ROOT = osp.dirname(osp.dirname(MISC_DIR))
sys.path.insert(0, REPO_ROOT)
# the step runner and the results are sibling modules: a script's folder is on sys.path, but not
# when the file is loaded by its path (tests); appended, so that it shadows no other module
if MISC_DIR not in sys.path:
    sys.path.append(MISC_DIR)

from mmengine.config import Config  # noqa: E402
from quickstart_results import (format_metrics, format_rewards, read_metrics,  # noqa: E402
                                read_prediction, read_rewards, reward_summary, train_progress)
from quickstart_steps import Steps, relative, run_parallel  # noqa: E402

from finers_mm.structures.vocabulary import QTYPE_FROM_ANNOTATION  # noqa: E402
from finers_mm.testing.tiny_models import build_tiny_models  # noqa: E402
from finers_mm.utils.fileio import write_atomic  # noqa: E402

BUNDLED = osp.join(REPO_ROOT, 'finers_mm', 'data', 'synthetic')
CONFIGS = osp.join(REPO_ROOT, 'configs', 'finers')
TEST_CONFIG = osp.join(CONFIGS, 'finers_tiny_test.py')
TOOLS = osp.join(REPO_ROOT, 'tools')
#: data, 4 per stage (warm-up, export, GRPO, export), the two evaluations, the demo
TOTAL_STEPS = 12
#: completion budgets at evaluation (finers_tiny_test.py's 64 is too short for a refiner answer)
EVAL_MAX_NEW_TOKENS = dict(explorer=64, refiner=96)
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


@dataclass
class QuickStart:
    """What the steps of one quick start share.

    Args:
        args (argparse.Namespace): the command line (:func:`parse_args`).
        out_dir (str): the absolute output folder.
        models (dict[str, str]): the tiny models' paths (:func:`build_models`).
        steps (Steps): the step runner.
    """
    args: argparse.Namespace
    out_dir: str
    models: Dict[str, str]
    steps: Steps

    @property
    def data_dir(self) -> str:
        """The synthetic training set."""
        return osp.join(self.out_dir, 'data')

    @property
    def chain_options(self) -> List[str]:
        """``--cfg-options`` of the tiny chain (evaluations and demo): the tiny SAM and the
        completion budgets."""
        return [f"model.mask_head.config={self.models['sam_config']}",
                f"model.mask_head.checkpoint={self.models['sam']}",
                *(f'model.{stage}.vlm.generation.max_new_tokens={n}'
                  for stage, n in EVAL_MAX_NEW_TOKENS.items())]


@dataclass
class TrainedStage:
    """A trained and exported stage.

    Args:
        hf_dir (str): the exported Hugging Face model.
        depends (list[str]): the step that exported it (what later steps depend on).
        rewards (dict[str, dict]): ``reward_summary`` of its GRPO run.
    """
    hf_dir: str
    depends: List[str]
    rewards: Dict[str, dict]


def build_models(args: argparse.Namespace) -> Dict[str, str]:
    """Step 0: build the tiny models in ``--models-dir``, or reuse them (cached by their seed)."""
    print(f'[0/{TOTAL_STEPS}] building (or reusing) the tiny models in {args.models_dir} ...',
          flush=True)
    return build_tiny_models(args.models_dir, seed=args.seed)


def make_data(run: QuickStart) -> None:
    """The synthetic training set (``tools/misc/make_synthetic_finers.py``), step ``data``."""
    args = run.args
    run.steps.run('data', f'synthetic training set: {args.num_images} images of '
                  f'{args.image_size[0]}x{args.image_size[1]}', run.data_dir,
                  [osp.join(TOOLS, 'misc', 'make_synthetic_finers.py'), run.data_dir,
                   '--num-images', str(args.num_images), '--image-size',
                   *map(str, args.image_size), '--seed', str(args.seed)])


def evaluate(run: QuickStart, name: str, title: str, explorer: str, refiner: str,
             depends: Sequence[str] = ()) -> dict:
    """FineRSMetric of a chain on the bundled set (``tools/test.py``); its results (percent)."""
    folder = osp.join(run.out_dir, 'eval', name)
    subset = ([] if run.args.eval_samples is None
              else [f'test_dataloader.dataset.indices={run.args.eval_samples}'])
    run.steps.run(name, title, folder,
                  [osp.join(TOOLS, 'test.py'), TEST_CONFIG, '--work-dir', folder, '--cfg-options',
                   f'model.explorer.vlm.pretrained={explorer}',
                   f'model.refiner.vlm.pretrained={refiner}', *run.chain_options, *subset],
                  depends=depends)
    return read_metrics(folder)


def evaluate_untrained(run: QuickStart) -> dict:
    """FineRSMetric of the untrained tiny models, step ``eval_before``."""
    untrained = run.models['qwen2_5_vl']
    return evaluate(run, 'eval_before', 'FineRSMetric of the UNTRAINED tiny models on the '
                    'bundled set', untrained, untrained)


def train_stage(run: QuickStart, stage: str, short: str) -> TrainedStage:
    """Warm-up, export, GRPO from the export, export of one stage (steps ``<short>_sft``,
    ``<short>_sft_export``, ``<short>_grpo``, ``<short>_grpo_export``).

    Args:
        run (QuickStart): the quick start.
        stage (str): ``'refiner'`` or ``'explorer'`` (for the headers).
        short (str): ``'lpr'`` or ``'gse'`` (its configs ``<short>_tiny_sft.py``,
            ``<short>_tiny.py``).

    Returns:
        TrainedStage: the GRPO export, its step and the GRPO rewards.
    """
    pretrained, depends = run.models['qwen2_5_vl'], ['data']
    for phase in ('sft', 'grpo'):
        pretrained, depends, work_dir = _train_phase(run, stage, short, phase, pretrained,
                                                     depends)
    return TrainedStage(pretrained, depends, reward_summary(read_rewards(work_dir)))


def _train_phase(run: QuickStart, stage: str, short: str, phase: str, pretrained: str,
                 depends: List[str]) -> Tuple[str, List[str], str]:
    """Train one phase (``tools/train.py``) and export it (``tools/misc/export_stage.py``);
    the export's Hugging Face dir, its step and the training work dir."""
    args = run.args
    config = osp.join(CONFIGS, f'{short}_tiny_sft.py' if phase == 'sft' else f'{short}_tiny.py')
    iters = args.sft_iters if phase == 'sft' else args.grpo_iters
    name = f'{short}_{phase}'
    work_dir = osp.join(run.out_dir, 'train', name)
    options = [f'model.vlm.pretrained={pretrained}',
               f'train_dataloader.dataset.data_root={run.data_dir}/']
    max_iters = _config_iters(config) if iters is None else iters
    if iters is not None:
        options += [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}']
        if phase == 'sft':  # the cosine decay ends with the run
            options.append(f'param_scheduler.1.end={max(iters, 21)}')
    if phase == 'grpo':  # scalars.json: every iteration's own values, not running means
        options.append('log_processor.window_size=1')
    what = 'supervised warm-up' if phase == 'sft' else 'GRPO from the warm-up'
    run.steps.run(name, f'{stage} ({short.upper()}): {what}, {max_iters} iterations', work_dir,
                  [osp.join(TOOLS, 'train.py'), config, '--work-dir', work_dir, '--cfg-options',
                   *options], depends=depends, progress=train_progress(max_iters))
    model_dir = osp.join(run.out_dir, 'models', name if phase == 'sft' else short)
    run.steps.run(f'{name}_export', f'export the {short.upper()} {phase.upper()} checkpoint as a '
                  'Hugging Face model', model_dir,
                  [osp.join(TOOLS, 'misc', 'export_stage.py'), config,
                   osp.join(work_dir, f'iter_{max_iters}.pth'), osp.join(model_dir, 'hf'),
                   '--cfg-options', f'model.vlm.pretrained={pretrained}'], depends=[name])
    return osp.join(model_dir, 'hf'), [f'{name}_export'], work_dir


def evaluate_trained(run: QuickStart, explorer: TrainedStage, refiner: TrainedStage) -> dict:
    """FineRSMetric of the trained stages, step ``eval_after``."""
    return evaluate(run, 'eval_after', 'FineRSMetric of the TRAINED stages on the bundled set',
                    explorer.hf_dir, refiner.hf_dir, depends=explorer.depends + refiner.depends)


def print_tables(run: QuickStart, before: dict, after: dict,
                 rewards: Dict[str, Dict[str, dict]]) -> None:
    """The before/after FineRSMetric table and each stage's GRPO training reward."""
    num_questions = len(bundled_records())
    if run.args.eval_samples is not None:
        num_questions = min(num_questions, run.args.eval_samples)
    print(f'\n=== FineRSMetric on the bundled synthetic set ({num_questions} questions) ===')
    print(format_metrics(before, after))
    print('\n=== GRPO training reward (untrained models: 0 on every term, no answer tag) ===')
    for stage, summary in rewards.items():
        print(format_rewards(stage, summary))


def run_demo(run: QuickStart, explorer: TrainedStage, refiner: TrainedStage) -> dict:
    """``tools/demo.py`` with the trained stages on the first bundled question (step ``demo``,
    every time); it prints the answer and writes ``vis/``, ``masks/`` and ``preds/``.

    Args:
        run (QuickStart): the quick start.
        explorer (TrainedStage): the trained explorer (GSE).
        refiner (TrainedStage): the trained refiner (LPR).

    Returns:
        dict: the demo's prediction (``preds/``), ``mask_file`` included.
    """
    record = first_bundled_record()
    image = osp.join(BUNDLED, 'images', record['image_path'])
    options = ['--options', *record['options']] if record.get('options') else []
    print()
    run.steps.run_always(
        'demo', 'demo with the trained stages on a bundled question (ground truth answer: '
        f"{record['A']!r})", osp.join(run.out_dir, 'demo.log'),
        [osp.join(TOOLS, 'demo.py'), image, record['Q'], '--type',
         QTYPE_FROM_ANNOTATION[record['Q-type']], *options, '--out-dir', run.out_dir,
         '--device', 'cpu', '--cfg-options', f'model.explorer.vlm.pretrained={explorer.hf_dir}',
         f'model.refiner.vlm.pretrained={refiner.hf_dir}', *run.chain_options])
    return read_prediction(run.out_dir, image)


def bundled_records() -> List[dict]:
    """The records of the bundled synthetic annotations (the authors' format)."""
    with open(osp.join(BUNDLED, 'annotations', 'train.json'), encoding='utf-8') as f:
        return json.load(f)['annotations']


def first_bundled_record() -> dict:
    """The first record of the bundled synthetic annotations (the demo's question)."""
    return bundled_records()[0]


def main(argv=None) -> dict:
    """Run the quick start; the demo's prediction with the summary under ``quickstart``."""
    args = parse_args(argv)
    start = time.perf_counter()
    out_dir = osp.abspath(args.out_dir)
    os.makedirs(out_dir, exist_ok=True)
    run = QuickStart(args, out_dir, build_models(args),
                     Steps(TOTAL_STEPS, force=args.force, cwd=REPO_ROOT))
    make_data(run)
    # the two stages train independently (LPR first in the paper only because the region search
    # needs the trained LPR, which the tiny run skips): one core each with --jobs 2
    done = run_parallel(dict(refiner=lambda: train_stage(run, 'refiner', 'lpr'),
                             explorer=lambda: train_stage(run, 'explorer', 'gse'),
                             before=lambda: evaluate_untrained(run)), jobs=args.jobs)
    explorer, refiner, before = done['explorer'], done['refiner'], done['before']
    after = evaluate_trained(run, explorer, refiner)
    rewards = dict(LPR=refiner.rewards, GSE=explorer.rewards)
    print_tables(run, before, after, rewards)
    prediction = run_demo(run, explorer, refiner)

    total = time.perf_counter() - start
    summary = dict(metrics=dict(untrained=before, trained=after), grpo_rewards=rewards,
                   step_seconds=run.steps.timings, total_seconds=total,
                   models=dict(explorer=explorer.hf_dir, refiner=refiner.hf_dir),
                   settings=dict(vars(args)))
    write_atomic(osp.join(out_dir, 'summary.json'), json.dumps(summary, indent=2))
    print(f'\nquick start finished in {total:.0f} s ({total / 60:.1f} min); summary: '
          f"{relative(osp.join(out_dir, 'summary.json'))}")
    prediction['quickstart'] = summary
    return prediction


_CONFIG_LOCK = threading.Lock()


def _config_iters(config: str) -> int:
    """``train_cfg.max_iters`` of a training config."""
    with _CONFIG_LOCK:  # Config.fromfile imports the file: once at a time (the chains are threads)
        return int(Config.fromfile(config).train_cfg.max_iters)


if __name__ == '__main__':
    main()
