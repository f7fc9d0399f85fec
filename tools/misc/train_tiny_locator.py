# Copyright (c) finers_mm contributors. All rights reserved.
"""Train, once, the tiny explorer and refiner the quick start starts from, and ship them.

The quick start has 10 minutes on 2 CPU cores; a tiny VLM from random weights needs longer than
that to learn where an object is. This script does that part once, reproducibly, and writes the
two trained stages into the repository (``finers_mm/data/tiny_locator/{explorer,refiner}``, float16
safetensors, about 2 MB each) with a ``manifest.json`` recording how (seed, this script's
version, the git commit, the configs, the data settings, the iterations and the final losses):

1. the tiny Qwen3-VL locator (:func:`finers_mm.testing.tiny_models.build_tiny_qwen3_locator`,
   ``--seed``; version 1 trained the Qwen2.5-VL locator, which never learnt where objects are);
2. the synthetic training sets of a size curriculum (``tools/misc/make_synthetic_finers.py``:
   :data:`DATA` and each :data:`CURRICULUM` set's object scale and distractors, ``--num-images``
   each, seeded by ``--seed``; version 2 had one set at the real sizes);
3. the refiner's and the explorer's supervised training side by side (``tools/train.py`` with
   ``configs/finers/lpr_tiny_loc_sft.py`` and ``gse_tiny_loc_sft.py``, one core each), each
   curriculum set's share of ``--sft-iters`` (:func:`curriculum_iters`) in runs of at most
   :data:`RUN_ITERS`, each from the last one's checkpoint (``load_from``), up to the set
   ``--until`` names; the last exported (``tools/misc/export_stage.py``).

Status (issue 16): the repository ships version 7 trained on the first set only (``--until single``;
the command below); training the later sets is still to do. Version 1 (the Qwen2.5-VL locator, 1000
steps per stage) learnt the answer layout, not the coordinates. Version 3 (the Qwen3-VL locator,
this curriculum with region cues in every set, 1400 + 1200 steps; ~1 s a step per stage, one core
each) learnt to answer, not to look: on held-out sets of the curriculum's sizes its window recall
was 73 % (x3) and 71 % (x2), region in band 100 %, gIoU 7 % / 4 %, but the explorer's region centre
was as far from the target as the centre of the 3x3 cell the question names (median 44 px vs 42 px;
on questions naming no region 291 px vs 308 px for the image centre), and the refiner's box centre
further off than its crop's centre (66 px vs 41 px), on held-out and training crops alike. Version 4
words the first set's questions without regions, so that only the pixels say where the target is:
after 1400 steps its explorer's window recall was 8 % on a held-out set of that kind (17 % on its
own training images), after 1500 more on that set 4 % (``bench_tiny_localisation.py``): the stages
have not learnt to look at these scenes (960 x 540, distractors, roof and line clutter) within ~3000
steps. Version 5 begins with the easiest scenes: one x3 target alone on a plain ground, worded
without regions (the 'single' set), and builds its locator with sharper attention
(:data:`ATTENTION_SHARPNESS`). On that set's kind (held out with ``bench_tiny_localisation.py
--object-scale 3 --no-region-cues --no-clutter --num-distractors 0 --questions-per-image 1``; runs
of 1500-2000 steps, each from the last one's checkpoint; the bench's docstring has the table) the
explorer learns to look only after ~3000 steps: at 2000 its regions barely follow the target (plain
init or sharper; also at a 45-token pixel budget), at 3000 (sharper) their centres correlate with
the target's (0.55 in x, 0.36 in y), at 4000 0.95 / 0.50 with window recall 42 %, at 5000 and 6000
it locates (window recall 96 % and 100 %, centres 38 and 30 px from the target's; a 30-token prompt
with the plain init: 0.17 / 0.73 at 3000). The refiner starts later: after 2000 steps on that set's
crops its box centre is 100 px from the target, its crop's centre 82 px; after 3600 its boxes follow
the target in y (correlation 0.97), not yet in x. With both, the chain's gIoU on that set is 35 %;
on the next set's kind (distractors, clutter) the same chain's window recall is 8 %. So the default
``--sft-iters`` (the configs' 4000, 1600 on that set) is too short. The vision probe's ``cell`` task
(16 image tokens, a short question) needs ~2000 steps too, and with the explorer's 290-token prompt
before its question it stayed at chance after 2000 (19 %; 47 % without).

Version 6 trains each set in runs of at most :data:`RUN_ITERS` (the 6000-step explorer above was
three runs of 2000) and ships what ``--until`` names. With another data seed the same recipe
was behind that explorer at 6000 steps (``lead_digit_nll`` 0.99, 0.42 there; held-out window
recall 31 %, gIoU 6.9 %); a fourth run (``--sft-iters 20000``, reusing the three done) made it
locate: the shipped stages, 8000 steps each, on 48 held-out questions of their kind: window
recall 97.9 %, gIoU 31.0 %, OVQA 100 %, MVQA 18.8 %, region in band 100 %, invalid 0 %. The
refiner, from the sharper init here (the one above started plain), was the weaker stage, and the
quick start's GRPO lowered the chain's gIoU (31.0 % -> 13.7 %).

Version 7 starts the refiner from the plain init (:data:`ATTENTION_SHARPNESS` per stage; the
explorer's runs are version 6's, reused). With the shipped explorer, on the quick start's 48
held-out questions, its chain's gIoU was 26.8 % after 4000 steps, 31.1 % after 6000 and 72.0 %
after 8000 (shipped; cIoU 83.4 %, window recall 97.9 %, invalid 0 %); the quick start's GRPO
(refiner at 1e-4) raised the first two to 47.2 % and 54.0 % and keeps the shipped one (72.2 %).
On the 12 bundled questions (real sizes, distractors, clutter) this refiner leaves 9 of 12
answers unclosed (invalid 83 %; version 6's: 17 %).

Steps are those of the quick start (``quickstart_steps.py``: a subprocess each, logged, reused
when done before with the same command).

Example::

    # what the repository ships (about 2.3 h on 2 CPU cores, one stage per core)
    python tools/misc/train_tiny_locator.py --num-images 4000 --sft-iters 20000 --until single
    python tools/misc/train_tiny_locator.py --out /tmp/loc --num-images 4 --sft-iters 2   # smoke
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Optional

MISC_DIR = osp.dirname(osp.abspath(__file__))
REPO_ROOT = osp.dirname(osp.dirname(MISC_DIR))
sys.path.insert(0, REPO_ROOT)
if MISC_DIR not in sys.path:
    sys.path.append(MISC_DIR)

from quickstart_steps import Steps, relative, run_parallel  # noqa: E402

from finers_mm.testing.paths import TINY_LOCATOR  # noqa: E402
from finers_mm.testing.tiny_models import build_tiny_qwen3_locator  # noqa: E402
from finers_mm.utils.fileio import staged_dir, write_atomic  # noqa: E402

#: bump when what this script trains changes (recorded in the manifest)
SCRIPT_VERSION = 7
CONFIGS = dict(refiner=osp.join('configs', 'finers', 'lpr_tiny_loc_sft.py'),
               explorer=osp.join('configs', 'finers', 'gse_tiny_loc_sft.py'))
#: each stage's decoder attention logits at init, x this (build_tiny_qwen3_locator's
#: ``attention_sharpness``). The explorer that learnt to look on the 'single' set with the
#: project's prompts (from ~3000 steps on) started sharper; a plain-init one with a 30-token prompt
#: began at ~3000 steps too, one with the project's prompts was not run past 2000 steps, so whether
#: the explorer needs it is open. The refiner does better from the plain init: with the same
#: explorer, a plain-init refiner of 3600 steps gave the chain gIoU 34.6 % (80.4 % after the quick
#: start's GRPO), a sharper one of 6000 steps 14.5 % (version 6's, which GRPO did not improve)
ATTENTION_SHARPNESS = dict(refiner=1.0, explorer=3.0)
#: the folder in ``--work-dir`` of the untrained locator each stage starts from (the explorer's is
#: the one of versions 5 and 6, whose runs a later version then reuses)
BASE_DIRS = dict(refiner='base_plain', explorer='base')
#: the synthetic training sets' common settings (besides --num-images and --seed)
DATA = dict(image_size=(960, 540))
#: the held-out sets' generator settings besides the scene (benchmarks/bench_tiny_localisation.py,
#: the quick start): another seed than every training set's
HELDOUT = dict(image_size=DATA['image_size'], seed=1, split='test')
#: a curriculum set's scene, where its entry does not say otherwise: the quick start's
SCENE = dict(object_scale=1.0, num_distractors=4, questions_per_image=3, region_cues=True,
             clutter=True)
#: the curriculum: each stage trains ``share`` of its iterations on each set in turn, from the
#: weights the set before left; a set's scene is :data:`SCENE` updated by its entry.
#: Easy first, as the vision probe learnt (benchmarks/bench_tiny_vision_probe.py: the tiny
#: Qwen3-VL reads out where an 8-28 px square is after it learnt it on 30-60 px ones, 100 %; 16 %
#: without): one large object on a plain ground, then distractors to tell apart by colour and
#: shape, then the clutter, the region words and the real sizes. ``object_scale`` 3 makes an XXS
#: target ~27 px wide, an S one ~80 px (make_synthetic_finers.py --object-scale). No region named
#: in the first sets' questions (``region_cues``): with them, version 3's stages learnt to answer
#: the named region's centre, not to look (explorer centre error 44 px, the named cell's centre
#: 42 px; the refiner's boxes further off than its crop's centre). Version 4 began with the
#: second set (2 distractors and the clutter) and had not learnt to look after 2900 steps; on
#: the first set alone an explorer began to look after ~3000 steps, hence its larger share.
CURRICULUM = (
    dict(name='single', object_scale=3.0, num_distractors=0, questions_per_image=1,
         region_cues=False, clutter=False, share=0.4, seed_offset=3000),
    dict(name='large', object_scale=3.0, num_distractors=2, region_cues=False, share=0.2,
         seed_offset=1000),
    dict(name='medium', object_scale=2.0, share=0.2, seed_offset=2000),
    dict(name='final', share=0.2, seed_offset=0),
)
#: a set's iterations are trained in runs of at most this many, each from the weights the run
#: before left with the config's schedule (warm-up, cosine decay) started afresh: the explorer that
#: located on the 'single' set was trained so (3 runs of 2000); one longer schedule is untried
RUN_ITERS = 2000
#: make_synthetic_finers.py's flag for each scene setting
_SCENE_FLAGS = dict(object_scale='--object-scale', num_distractors='--num-distractors',
                    questions_per_image='--questions-per-image')


def scene_of(phase: dict) -> dict:
    """A curriculum set's full scene settings (:data:`SCENE` updated by the set's own)."""
    return {key: phase.get(key, default) for key, default in SCENE.items()}


def data_flags(phase: dict) -> List[str]:
    """make_synthetic_finers.py's scene flags for a curriculum set."""
    scene = scene_of(phase)
    flags = [arg for key, flag in _SCENE_FLAGS.items() for arg in (flag, str(scene[key]))]
    return (flags + ([] if scene['region_cues'] else ['--no-region-cues']) +
            ([] if scene['clutter'] else ['--no-clutter']))


def curriculum_iters(total: int) -> List[int]:
    """Iterations of each curriculum set for ``total`` in all (at least 1 each).

    Args:
        total (int): the stage's iterations.

    Returns:
        list[int]: one count per :data:`CURRICULUM` set, summing to ``total`` when ``total`` is at
        least the number of sets.
    """
    counts = [max(1, int(total * phase['share'])) for phase in CURRICULUM]
    counts[-1] = max(1, total - sum(counts[:-1]))
    return counts


def split_runs(iters: int, run_iters: Optional[int] = None) -> List[int]:
    """A set's ``iters`` as runs of at most ``run_iters`` (:data:`RUN_ITERS` by default; equal
    but for the last).

    Returns:
        list[int]: the runs' iterations, summing to ``iters`` (one run when ``iters`` is at most
        ``run_iters``).
    """
    run_iters = run_iters or RUN_ITERS
    full, rest = divmod(iters, run_iters)
    return [run_iters] * full + ([rest] if rest else [])


def trained_sets(until: Optional[str]) -> tuple:
    """The curriculum's sets up to and including ``until`` (all of them when ``None``)."""
    names = [phase['name'] for phase in CURRICULUM]
    return CURRICULUM if until is None else CURRICULUM[:names.index(until) + 1]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train and ship the tiny locating stages')
    parser.add_argument('--out', default=TINY_LOCATOR,
                        help='where the two stages and the manifest go')
    parser.add_argument('--work-dir', default='work_dirs/tiny_locator', help='training outputs')
    parser.add_argument('--seed', type=int, default=0, help='weights, data and training seed')
    parser.add_argument('--num-images', type=int, default=1000,
                        help='synthetic training images per curriculum set, 3 questions each')
    parser.add_argument('--sft-iters', type=int, default=None,
                        help="iterations per stage over the whole curriculum (default: the "
                        "configs')")
    parser.add_argument('--until', choices=[phase['name'] for phase in CURRICULUM],
                        help='train (and ship) the curriculum up to and including this set; each '
                        "set still trains its share of --sft-iters (default: all sets)")
    parser.add_argument('--jobs', type=int, choices=[1, 2], default=2)
    parser.add_argument('--force', action='store_true', help='redo every step')
    return parser.parse_args(argv)


def train(steps: Steps, args: argparse.Namespace, stage: str, base: str, data: List[str],
          iters_of_sets: List[int], work: str) -> Dict[str, object]:
    """Train one stage through the curriculum (``iters_of_sets`` on each set, from
    :func:`stage_set_iters`; runs each from the last one's checkpoint) and export it; its Hugging
    Face dir, iterations and final loss."""
    config = osp.join(REPO_ROOT, CONFIGS[stage])
    checkpoint, depends = None, []
    for phase, root, iters in zip(trained_sets(args.until), data, iters_of_sets):
        runs = split_runs(iters)
        for run, run_iters in enumerate(runs, 1):
            suffix = f'_{run}' if len(runs) > 1 else ''
            work_dir = osp.join(work, 'train', stage, phase['name'] + suffix)
            options = [f'model.vlm.pretrained={base}',
                       f'train_dataloader.dataset.data_root={root}/',
                       f'randomness.seed={args.seed}', f'train_cfg.max_iters={run_iters}',
                       f'train_cfg.val_interval={run_iters}',
                       f'param_scheduler.1.end={max(run_iters, 21)}',
                       f'default_hooks.checkpoint.interval={run_iters}']
            if checkpoint is not None:
                options.append(f'load_from={checkpoint}')
            name = f"{stage}_sft_{phase['name']}{suffix}"
            what = (f"{stage}: supervised training on the {phase['name']} set, {run_iters} "
                    'iterations' + (f' (run {run} of {len(runs)})' if len(runs) > 1 else ''))
            steps.run(name, what, work_dir,
                      [osp.join(REPO_ROOT, 'tools', 'train.py'), config, '--work-dir', work_dir,
                       '--cfg-options', *options],
                      depends=[f"data_{phase['name']}", *depends])
            checkpoint, depends = osp.join(work_dir, f'iter_{run_iters}.pth'), [name]
    hf_dir = osp.join(work, 'export', stage)
    steps.run(f'{stage}_export', f'export the {stage}', hf_dir,
              [osp.join(REPO_ROOT, 'tools', 'misc', 'export_stage.py'), config, checkpoint,
               osp.join(hf_dir, 'hf'), '--cfg-options', f'model.vlm.pretrained={base}'],
              depends=depends)
    return dict(hf=osp.join(hf_dir, 'hf'), iters=sum(iters_of_sets), set_iters=iters_of_sets,
                loss=_last_loss(osp.dirname(checkpoint)))


def make_data(steps: Steps, args: argparse.Namespace, work: str) -> List[str]:
    """The curriculum's synthetic training sets (one step each, ``--jobs`` at once); their data
    roots."""
    def root_of(phase: dict) -> str:
        return osp.join(work, 'data', phase['name'])

    def make(phase: dict) -> None:
        root, scene = root_of(phase), scene_of(phase)
        steps.run(f"data_{phase['name']}",
                  f"synthetic training set '{phase['name']}': {args.num_images} images, "
                  f"{scene['questions_per_image']} targets and {scene['num_distractors']} "
                  f"distractors each, objects x{scene['object_scale']:g}"
                  f"{'' if scene['region_cues'] else ', no region cues'}"
                  f"{'' if scene['clutter'] else ', plain ground'}",
                  root,
                  [osp.join(REPO_ROOT, 'tools', 'misc', 'make_synthetic_finers.py'), root,
                   '--num-images', str(args.num_images), '--image-size',
                   *map(str, DATA['image_size']), *data_flags(phase),
                   '--seed', str(args.seed + phase['seed_offset'])])

    sets = trained_sets(args.until)
    run_parallel({phase['name']: (lambda phase=phase: make(phase)) for phase in sets},
                 jobs=args.jobs)
    return [root_of(phase) for phase in sets]


def ship(trained: Dict[str, dict], args: argparse.Namespace, commit: str) -> None:
    """Write each stage as float16 safetensors with its processor, and the manifest, into
    ``--out`` (replaced whole, atomically)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor
    with staged_dir(osp.abspath(args.out)) as staging:
        for stage, info in trained.items():
            model = AutoModelForImageTextToText.from_pretrained(info['hf'], local_files_only=True)
            model.half().save_pretrained(osp.join(staging, stage))
            AutoProcessor.from_pretrained(info['hf'], local_files_only=True).save_pretrained(
                osp.join(staging, stage))
        manifest = dict(
            script='tools/misc/train_tiny_locator.py', script_version=SCRIPT_VERSION,
            git_commit=commit, seed=args.seed, command=' '.join(sys.argv),
            attention_sharpness=dict(ATTENTION_SHARPNESS),
            data=dict(DATA, num_images=args.num_images, seed=args.seed, until=args.until,
                      curriculum=[dict(phase, **scene_of(phase), iters=iters,
                                       runs=split_runs(iters))
                                  for phase, iters in zip(trained_sets(args.until),
                                                          set_iters(trained))]),
            stages={stage: dict(config=CONFIGS[stage], iters=info['iters'],
                                final_loss=info['loss']) for stage, info in trained.items()},
            dtype='float16')
        write_atomic(osp.join(staging, 'manifest.json'), json.dumps(manifest, indent=2) + '\n')


def main(argv=None) -> None:
    args = parse_args(argv)
    commit = _git_commit()  # the code that trains (the tree may move on during the hours)
    work = osp.abspath(args.work_dir)
    iters_of_sets = {stage: stage_set_iters(args, stage) for stage in CONFIGS}
    runs = sum(len(split_runs(iters)) for stage in CONFIGS for iters in iters_of_sets[stage])
    steps = Steps(len(trained_sets(args.until)) + runs + len(CONFIGS), force=args.force,
                  cwd=REPO_ROOT)
    bases = {stage: build_tiny_qwen3_locator(osp.join(work, BASE_DIRS[stage]), seed=args.seed,
                                             attention_sharpness=ATTENTION_SHARPNESS[stage])
             for stage in CONFIGS}
    data = make_data(steps, args, work)
    trained = run_parallel(
        {stage: (lambda stage=stage: train(steps, args, stage, bases[stage], data,
                                           iters_of_sets[stage], work))
         for stage in CONFIGS}, jobs=args.jobs)
    ship(trained, args, commit)
    print(f'shipped the tiny explorer and refiner in {relative(osp.abspath(args.out))}')


def set_iters(trained: Dict[str, dict]) -> List[int]:
    """The iterations each trained set had (the same for every stage)."""
    (iters, ) = {tuple(info['set_iters']) for info in trained.values()}
    return list(iters)


def stage_set_iters(args: argparse.Namespace, stage: str) -> List[int]:
    """A stage's iterations on each set it trains (those up to ``--until``): its share of
    ``--sft-iters``, or of its config's iterations."""
    if args.sft_iters is not None:
        total = args.sft_iters
    else:
        from mmengine.config import Config
        total = int(Config.fromfile(osp.join(REPO_ROOT, CONFIGS[stage])).train_cfg.max_iters)
    return curriculum_iters(total)[:len(trained_sets(args.until))]


def _last_loss(work_dir: str) -> float:
    """The last logged training loss of a run (``vis_data/scalars.json``)."""
    rows: List[dict] = []
    for root, _, names in os.walk(work_dir):
        if 'scalars.json' in names:
            with open(osp.join(root, 'scalars.json'), encoding='utf-8') as f:
                rows += [json.loads(line) for line in f if line.strip()]
    losses = [row['loss'] for row in rows if 'loss' in row]
    return float(losses[-1]) if losses else float('nan')


def _git_commit() -> str:
    try:
        return subprocess.check_output(['git', 'rev-parse', 'HEAD'], cwd=REPO_ROOT,
                                       text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


if __name__ == '__main__':
    main()
