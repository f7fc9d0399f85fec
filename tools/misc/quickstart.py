# Copyright (c) finers_mm contributors. All rights reserved.
"""The embedded default main job: train the tiny FineRS stages, evaluate before/after, run the demo.

Everything runs on CPU in a few minutes, offline, through the project's own tools (each step a
subprocess, its output in a log file next to its results), one function per step. Two tiny chains
(``--chain``):

- ``locator`` (the default): the tiny Qwen3-VL explorer and refiner that
  ``tools/misc/train_tiny_locator.py`` trained once, supervised, and shipped in
  ``finers_mm/data/tiny_locator/`` (``--locator-dir``; its ``manifest.json`` says how): the quick
  start fine-tunes them with GRPO (``configs/finers/{lpr,gse}_tiny_loc.py``) on synthetic scenes
  of the kind they last trained on, and evaluates the untrained model, the shipped stages (the
  warm-up) and the GRPO stages on the bundled questions and on a held-out set of that kind
  (``--heldout-questions``, 48: the generator with another seed; with window recall and the
  region size band);
- ``tiny``: the tiny Qwen2.5-VL and Qwen2-VL with random weights, a supervised warm-up and GRPO
  (``{lpr,gse}_tiny_sft.py`` then ``{lpr,gse}_tiny.py``), evaluated on the bundled questions.

The steps:

1. :func:`build_models`: build (once, cached) the tiny models of
   :mod:`finers_mm.testing.tiny_models`;
2. :func:`make_data`: generate a small synthetic training set (and, for the locating chain, the
   held-out set: :func:`make_heldout`; ``tools/misc/make_synthetic_finers.py``);
3. :func:`evaluate_untrained`: evaluate the UNTRAINED tiny models (``tools/test.py`` with the
   chain's test config, FineRSMetric); the locating chain's shipped stages too
   (:func:`evaluate_warmup`);
4. :func:`train_stage` of the refiner (LPR): each phase of the chain (a supervised warm-up, GRPO),
   each followed by its export (``tools/misc/export_stage.py``);
5. :func:`train_stage` of the explorer (GSE), side by side with the refiner (``--jobs 2``, the
   default: one core each; the steps use one thread each);
6. :func:`evaluate_trained`: evaluate the trained stages (the exports as
   ``model.explorer.vlm.pretrained`` and ``model.refiner.vlm.pretrained``); :func:`print_tables`
   prints the metric tables side by side, with the GRPO training reward of the first and last
   iterations (from each run's ``vis_data/scalars.json``);
7. :func:`run_demo`: ``tools/demo.py`` with the trained stages on the first held-out question
   (the tiny chain: the first bundled one).

A step whose results are complete is reused when the quick start runs again with the same settings
(``--force``: every step runs again); the demo runs every time. The step runner (subprocesses,
logs, stamps, side-by-side chains): ``quickstart_steps.py``; what is read from the steps' outputs
and the printed tables: ``quickstart_results.py``, both beside this file.

Example::

    python tools/misc/quickstart.py --out-dir work_dirs/quickstart
    python tools/misc/quickstart.py --quick   # a smoke run: 2 steps per stage, 2 eval samples
    python tools/misc/quickstart.py --chain tiny   # the random tiny Qwen2.5-VL chain
"""
import argparse
import json
import os
import os.path as osp
import pickle
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
from quickstart_results import (LOCALISATION_METRICS, TABLE_METRICS, format_chains,  # noqa: E402
                                format_metrics, format_rewards, localisation_figures,
                                read_metrics, read_prediction, read_rewards, reward_summary,
                                train_progress)
from quickstart_steps import Steps, relative, run_parallel  # noqa: E402
from train_tiny_locator import HELDOUT, data_flags, scene_of  # noqa: E402

from finers_mm.structures.vocabulary import QTYPE_FROM_ANNOTATION  # noqa: E402
from finers_mm.testing.paths import TINY_LOCATOR  # noqa: E402
from finers_mm.testing.tiny_models import build_tiny_models, build_tiny_qwen3_locator  # noqa: E402
from finers_mm.utils.fileio import write_atomic  # noqa: E402

BUNDLED = osp.join(REPO_ROOT, 'finers_mm', 'data', 'synthetic')
CONFIGS = osp.join(REPO_ROOT, 'configs', 'finers')
TOOLS = osp.join(REPO_ROOT, 'tools')
#: completion budgets at evaluation (finers_tiny_test.py's 64 is too short for a refiner answer)
EVAL_MAX_NEW_TOKENS = dict(explorer=64, refiner=96)
#: what --quick sets (a smoke run of the whole flow, not a useful model)
QUICK = dict(num_images=2, sft_iters=2, grpo_iters=2, eval_samples=2, heldout_questions=2)
#: the defaults of the settings --quick changes (None: the configs' iterations, every question)
DEFAULTS = dict(num_images=64, sft_iters=None, grpo_iters=None, eval_samples=None,
                heldout_questions=48)


@dataclass(frozen=True)
class ChainKind:
    """One of the quick start's tiny chains.

    Args:
        test_config (str): its evaluation config in ``configs/finers``.
        suffix (str): its training configs are ``<short><suffix>_sft.py`` (supervised) and
            ``<short><suffix>.py`` (GRPO), ``short`` being ``lpr`` or ``gse``.
        phases (tuple[str]): what the quick start trains, in order, from the start weights.
        shipped (bool): whether the start weights are the shipped stages (the warm-up, evaluated
            too, with a held-out set of their scenes) or the untrained model.
    """
    test_config: str
    suffix: str
    phases: Tuple[str, ...]
    shipped: bool


CHAIN_KINDS = dict(
    locator=ChainKind('finers_tiny_loc_test.py', '_tiny_loc', ('grpo', ), shipped=True),
    tiny=ChainKind('finers_tiny_test.py', '_tiny', ('sft', 'grpo'), shipped=False))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train the tiny FineRS stages, evaluate them before/after and run the demo')
    parser.add_argument('--out-dir', default='work_dirs/quickstart', help='where outputs go')
    parser.add_argument('--chain', choices=sorted(CHAIN_KINDS), default='locator',
                        help='locator (default): GRPO from the shipped tiny locating stages; '
                        'tiny: a supervised warm-up and GRPO from random tiny Qwen2.5-VLs')
    parser.add_argument('--locator-dir', default=TINY_LOCATOR,
                        help='the shipped locating stages (tools/misc/train_tiny_locator.py)')
    parser.add_argument('--models-dir', default='work_dirs/tiny_models', help='tiny model cache')
    parser.add_argument('--seed', type=int, default=0, help='seed of the tiny models and the data')
    parser.add_argument('--num-images', type=int, default=None,
                        help=f"synthetic training images (default: {DEFAULTS['num_images']})")
    parser.add_argument('--image-size', type=int, nargs=2, default=[960, 540],
                        metavar=('W', 'H'), help='size of the synthetic training images')
    parser.add_argument('--sft-iters', type=int, default=None,
                        help="supervised warm-up steps per stage of --chain tiny (default: the "
                        "configs'); the locating chain's warm-up is the shipped stages")
    parser.add_argument('--grpo-iters', type=int, default=None,
                        help="GRPO steps per stage (default: the configs')")
    parser.add_argument('--eval-samples', type=int, default=None,
                        help='evaluate on the first N bundled questions (default: all)')
    parser.add_argument('--heldout-questions', type=int, default=None,
                        help='questions of the locating chain\'s held-out set (default: '
                        f"{DEFAULTS['heldout_questions']})")
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
        kind (ChainKind): the chain (``--chain``).
        start (dict[str, str]): each stage's start weights (``explorer``, ``refiner``).
        untrained (str): the untrained model of the chain (both stages).
        scene (dict): the training and held-out sets' scene (train_tiny_locator's ``SCENE``
            settings; ``{}``: make_synthetic_finers.py's defaults).
        manifest (dict): the shipped stages' ``manifest.json`` (``{}`` for the tiny chain).
    """
    args: argparse.Namespace
    out_dir: str
    models: Dict[str, str]
    steps: Steps
    kind: ChainKind
    start: Dict[str, str]
    untrained: str
    scene: dict
    manifest: dict

    @property
    def data_dir(self) -> str:
        """The synthetic training set."""
        return osp.join(self.out_dir, 'data')

    @property
    def heldout_dir(self) -> str:
        """The held-out synthetic set (the locating chain's)."""
        return osp.join(self.out_dir, 'heldout')

    @property
    def scene_flags(self) -> List[str]:
        """make_synthetic_finers.py's flags of :attr:`scene`."""
        return data_flags(self.scene) if self.scene else []

    @property
    def chain_options(self) -> List[str]:
        """``--cfg-options`` of the tiny chain (evaluations and demo): the completion budgets,
        and the tiny SAM (the locating chain's config has a GrabCut mask head)."""
        budgets = [f'model.{stage}.vlm.generation.max_new_tokens={n}'
                   for stage, n in EVAL_MAX_NEW_TOKENS.items()]
        if self.kind.shipped:
            return budgets
        return [f"model.mask_head.config={self.models['sam_config']}",
                f"model.mask_head.checkpoint={self.models['sam']}", *budgets]


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
    print(f'[0/{total_steps(CHAIN_KINDS[args.chain])}] building (or reusing) the tiny models in '
          f'{args.models_dir} ...', flush=True)
    return build_tiny_models(args.models_dir, seed=args.seed)


def total_steps(kind: ChainKind) -> int:
    """The steps of a quick start: the data (and the held-out set), a training run and an export
    per phase and stage, the evaluations, the demo."""
    evaluations = 6 if kind.shipped else 2  # untrained, warm-up, trained; bundled and held out
    return 1 + kind.shipped + 2 * 2 * len(kind.phases) + evaluations + 1


def read_locator_manifest(locator_dir: str) -> dict:
    """The shipped locating stages' ``manifest.json``; a clear exit when they are missing."""
    path = osp.join(locator_dir, 'manifest.json')
    if not osp.isfile(path):
        raise SystemExit(f'{path}: no shipped tiny locating stages; train them with '
                         '`python tools/misc/train_tiny_locator.py` (hours on CPU), or run the '
                         'random tiny chain with --chain tiny')
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def setup(args: argparse.Namespace) -> QuickStart:
    """The quick start of ``args``: the models, the chain's start weights and scenes."""
    out_dir = osp.abspath(args.out_dir)
    os.makedirs(out_dir, exist_ok=True)
    kind = CHAIN_KINDS[args.chain]
    steps = Steps(total_steps(kind), force=args.force, cwd=REPO_ROOT)
    models = build_models(args)
    if not kind.shipped:
        return QuickStart(args, out_dir, models, steps, kind,
                          dict(explorer=models['qwen2_5_vl'], refiner=models['qwen2_5_vl']),
                          models['qwen2_5_vl'], {}, {})
    locator_dir = osp.abspath(args.locator_dir)
    manifest = read_locator_manifest(locator_dir)
    # the untrained model the shipped explorer started from (the script's seed and init; the
    # untrained chain answers nothing whole with either stage's init)
    sharpness = manifest['attention_sharpness']['explorer']
    untrained = build_tiny_qwen3_locator(
        osp.join(args.models_dir, f"qwen3_vl_locator_seed{manifest['seed']}_x{sharpness:g}"),
        seed=manifest['seed'], attention_sharpness=sharpness)
    # the scenes the shipped stages last trained on
    scene = scene_of(manifest['data']['curriculum'][-1])
    return QuickStart(args, out_dir, models, steps, kind,
                      {stage: osp.join(locator_dir, stage) for stage in ('explorer', 'refiner')},
                      osp.abspath(untrained), scene, manifest)


def make_data(run: QuickStart) -> None:
    """The synthetic training set (``tools/misc/make_synthetic_finers.py``), step ``data``."""
    args = run.args
    run.steps.run('data', f'synthetic training set: {args.num_images} images of '
                  f"{args.image_size[0]}x{args.image_size[1]}{_scene_title(run)}", run.data_dir,
                  [osp.join(TOOLS, 'misc', 'make_synthetic_finers.py'), run.data_dir,
                   '--num-images', str(args.num_images), '--image-size',
                   *map(str, args.image_size), *run.scene_flags, '--seed', str(args.seed)])


def make_heldout(run: QuickStart) -> None:
    """The locating chain's held-out set (the training set's scenes, train_tiny_locator's
    ``HELDOUT`` seed: the benchmark's), step ``heldout``."""
    args = run.args
    images = -(-args.heldout_questions // run.scene['questions_per_image'])
    run.steps.run('heldout', f'held-out synthetic set: {images} images, seed {HELDOUT["seed"]}'
                  f'{_scene_title(run)}', run.heldout_dir,
                  [osp.join(TOOLS, 'misc', 'make_synthetic_finers.py'), run.heldout_dir,
                   '--num-images', str(images), '--image-size', *map(str, HELDOUT['image_size']),
                   *run.scene_flags, '--seed', str(HELDOUT['seed']), '--split',
                   HELDOUT['split']])


def _scene_title(run: QuickStart) -> str:
    return f" ({' '.join(run.scene_flags)})" if run.scene else ''


def evaluate(run: QuickStart, name: str, title: str, explorer: str, refiner: str,
             depends: Sequence[str] = (), heldout: bool = False) -> dict:
    """FineRSMetric of a chain on the bundled set, or on the held-out set with
    :func:`~quickstart_results.localisation_figures` (``tools/test.py``); its results
    (percent)."""
    folder = osp.join(run.out_dir, 'eval', name)
    if heldout:
        data = [f'test_dataloader.dataset.data_root={run.heldout_dir}/',
                f"test_dataloader.dataset.ann_file=annotations/{HELDOUT['split']}.json"]
        out, depends = ['--out', osp.join(folder, 'predictions.pkl')], [*depends, 'heldout']
    else:
        data = ([] if run.args.eval_samples is None
                else [f'test_dataloader.dataset.indices={run.args.eval_samples}'])
        out = []
    run.steps.run(name, title, folder,
                  [osp.join(TOOLS, 'test.py'), osp.join(CONFIGS, run.kind.test_config),
                   '--work-dir', folder, *out, '--cfg-options',
                   f'model.explorer.vlm.pretrained={explorer}',
                   f'model.refiner.vlm.pretrained={refiner}', *run.chain_options, *data],
                  depends=depends)
    metrics = read_metrics(folder)
    if heldout:
        with open(osp.join(folder, 'predictions.pkl'), 'rb') as f:
            metrics.update(localisation_figures(pickle.load(f)))
    return metrics


def evaluate_untrained(run: QuickStart) -> Dict[str, dict]:
    """FineRSMetric of the untrained tiny model, steps ``eval_before`` (and ``heldout_before``);
    the results by set (``bundled``, ``heldout``)."""
    results = dict(bundled=evaluate(run, 'eval_before', 'FineRSMetric of the UNTRAINED tiny '
                                    'models on the bundled set', run.untrained, run.untrained))
    if run.kind.shipped:
        results['heldout'] = evaluate(run, 'heldout_before', 'FineRSMetric of the UNTRAINED '
                                      'tiny models on the held-out set', run.untrained,
                                      run.untrained, heldout=True)
    return results


def evaluate_warmup(run: QuickStart) -> Dict[str, dict]:
    """FineRSMetric of the shipped stages (the locating chain's warm-up), steps ``eval_warmup``
    and ``heldout_warmup``; the results by set."""
    explorer, refiner = run.start['explorer'], run.start['refiner']
    return dict(
        bundled=evaluate(run, 'eval_warmup', 'FineRSMetric of the SHIPPED (supervised) stages on '
                         'the bundled set', explorer, refiner),
        heldout=evaluate(run, 'heldout_warmup', 'FineRSMetric of the SHIPPED (supervised) stages '
                         'on the held-out set', explorer, refiner, heldout=True))


def train_stage(run: QuickStart, stage: str, short: str) -> TrainedStage:
    """Each phase of the chain (steps ``<short>_<phase>``) and its export (``_export``): a
    supervised warm-up (the tiny chain), GRPO.

    Args:
        run (QuickStart): the quick start.
        stage (str): ``'refiner'`` or ``'explorer'`` (for the headers).
        short (str): ``'lpr'`` or ``'gse'`` (its configs ``<short><suffix>_sft.py``,
            ``<short><suffix>.py``).

    Returns:
        TrainedStage: the GRPO export, its step and the GRPO rewards.
    """
    pretrained, depends = run.start[stage], ['data']
    for phase in run.kind.phases:
        pretrained, depends, work_dir = _train_phase(run, stage, short, phase, pretrained,
                                                     depends)
    return TrainedStage(pretrained, depends, reward_summary(read_rewards(work_dir)))


def _train_phase(run: QuickStart, stage: str, short: str, phase: str, pretrained: str,
                 depends: List[str]) -> Tuple[str, List[str], str]:
    """Train one phase (``tools/train.py``) and export it (``tools/misc/export_stage.py``);
    the export's Hugging Face dir, its step and the training work dir."""
    args = run.args
    config = osp.join(CONFIGS, f'{short}{run.kind.suffix}' + ('_sft.py' if phase == 'sft'
                                                                else '.py'))
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
    what = ('supervised warm-up' if phase == 'sft' else
            'GRPO from the shipped stage' if run.kind.shipped else 'GRPO from the warm-up')
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


def evaluate_trained(run: QuickStart, explorer: TrainedStage,
                     refiner: TrainedStage) -> Dict[str, dict]:
    """FineRSMetric of the trained stages, step ``eval_after`` (and ``heldout_after``, side by
    side); the results by set."""
    depends = explorer.depends + refiner.depends
    tasks = dict(bundled=lambda: evaluate(
        run, 'eval_after', 'FineRSMetric of the TRAINED stages on the bundled set',
        explorer.hf_dir, refiner.hf_dir, depends=depends))
    if run.kind.shipped:
        tasks['heldout'] = lambda: evaluate(
            run, 'heldout_after', 'FineRSMetric of the TRAINED stages on the held-out set',
            explorer.hf_dir, refiner.hf_dir, depends=depends, heldout=True)
    return run_parallel(tasks, jobs=run.args.jobs)


def print_tables(run: QuickStart, metrics: Dict[str, Dict[str, dict]],
                 rewards: Dict[str, Dict[str, dict]]) -> None:
    """The FineRSMetric tables (bundled, held-out) of each chain side by side, and each stage's
    GRPO training reward.

    Args:
        run (QuickStart): the quick start.
        metrics (dict): each set's (``bundled``, ``heldout``) results by chain (``untrained``,
            ``warm-up``, ``trained``).
        rewards (dict): each stage's :func:`~quickstart_results.reward_summary`.
    """
    num_questions = len(bundled_records())
    if run.args.eval_samples is not None:
        num_questions = min(num_questions, run.args.eval_samples)
    print(f'\n=== FineRSMetric on the bundled synthetic set ({num_questions} questions) ===')
    bundled = metrics['bundled']
    if run.kind.shipped:
        print(format_chains(bundled, TABLE_METRICS))
        heldout = metrics['heldout']
        count = next(iter(heldout.values())).get('num_samples', '?')
        print(f"\n=== on the held-out synthetic set ({count} questions, seed {HELDOUT['seed']})"
              f'{_scene_title(run)} ===')
        print(format_chains(heldout, TABLE_METRICS + LOCALISATION_METRICS))
    else:
        print(format_metrics(bundled['untrained'], bundled['trained']))
    start = ('from the shipped stages' if run.kind.shipped else
             'untrained models: 0 on every term, no answer tag')
    print(f'\n=== GRPO training reward ({start}) ===')
    for stage, summary in rewards.items():
        print(format_rewards(stage, summary))


def run_demo(run: QuickStart, explorer: TrainedStage, refiner: TrainedStage) -> dict:
    """``tools/demo.py`` with the trained stages on the first question of the demo's set
    (:func:`demo_question`; step ``demo``, every time); it prints the answer and writes
    ``vis/``, ``masks/`` and ``preds/``.

    Args:
        run (QuickStart): the quick start.
        explorer (TrainedStage): the trained explorer (GSE).
        refiner (TrainedStage): the trained refiner (LPR).

    Returns:
        dict: the demo's prediction (``preds/``), ``mask_file`` included.
    """
    record, image, where = demo_question(run)
    options = ['--options', *record['options']] if record.get('options') else []
    print()
    run.steps.run_always(
        'demo', f'demo with the trained stages on the first {where} question (ground truth '
        f"answer: {record['A']!r})", osp.join(run.out_dir, 'demo.log'),
        [osp.join(TOOLS, 'demo.py'), image, record['Q'], '--type',
         QTYPE_FROM_ANNOTATION[record['Q-type']], *options, '--out-dir', run.out_dir,
         '--config', osp.join(CONFIGS, run.kind.test_config), '--device', 'cpu',
         '--cfg-options', f'model.explorer.vlm.pretrained={explorer.hf_dir}',
         f'model.refiner.vlm.pretrained={refiner.hf_dir}', *run.chain_options])
    return read_prediction(run.out_dir, image)


def demo_question(run: QuickStart) -> Tuple[dict, str, str]:
    """The demo's question: the first held-out one of the locating chain (scenes of the kind
    its stages trained on), the first bundled one of the tiny chain.

    Returns:
        tuple: the record (the authors' format), its image's path and the set's name.
    """
    if not run.kind.shipped:
        record = first_bundled_record()
        return record, osp.join(BUNDLED, 'images', record['image_path']), 'bundled'
    with open(osp.join(run.heldout_dir, 'annotations', f"{HELDOUT['split']}.json"),
              encoding='utf-8') as f:
        record = json.load(f)['annotations'][0]
    return record, osp.join(run.heldout_dir, 'images', record['image_path']), 'held-out'


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
    run = setup(args)
    make_data(run)
    if run.kind.shipped:
        make_heldout(run)
    # the two stages train independently (LPR first in the paper only because the region search
    # needs the trained LPR, which the tiny run skips): one core each with --jobs 2; the
    # evaluations before training take the first free core
    tasks = dict(refiner=lambda: train_stage(run, 'refiner', 'lpr'),
                 explorer=lambda: train_stage(run, 'explorer', 'gse'),
                 untrained=lambda: evaluate_untrained(run))
    if run.kind.shipped:
        tasks['warm-up'] = lambda: evaluate_warmup(run)
    done = run_parallel(tasks, jobs=args.jobs)
    explorer, refiner = done.pop('explorer'), done.pop('refiner')
    done['trained'] = evaluate_trained(run, explorer, refiner)
    metrics = {data: {chain: results[data] for chain, results in done.items()}
               for data in done['trained']}
    rewards = dict(LPR=refiner.rewards, GSE=explorer.rewards)
    print_tables(run, metrics, rewards)
    prediction = run_demo(run, explorer, refiner)

    total = time.perf_counter() - start
    summary = dict(chain=args.chain, metrics=metrics['bundled'], grpo_rewards=rewards,
                   step_seconds=run.steps.timings, total_seconds=total,
                   models=dict(explorer=explorer.hf_dir, refiner=refiner.hf_dir),
                   settings=dict(vars(args)))
    if run.kind.shipped:
        summary['heldout_metrics'] = metrics['heldout']
        summary['shipped'] = run.manifest
    write_atomic(osp.join(run.out_dir, 'summary.json'), json.dumps(summary, indent=2))
    print(f'\nquick start finished in {total:.0f} s ({total / 60:.1f} min); summary: '
          f"{relative(osp.join(run.out_dir, 'summary.json'))}")
    prediction['quickstart'] = summary
    return prediction


_CONFIG_LOCK = threading.Lock()


def _config_iters(config: str) -> int:
    """``train_cfg.max_iters`` of a training config."""
    with _CONFIG_LOCK:  # Config.fromfile imports the file: once at a time (the chains are threads)
        return int(Config.fromfile(config).train_cfg.max_iters)


if __name__ == '__main__':
    main()
