# Copyright (c) finers_mm contributors. All rights reserved.
"""Does the tiny FineRS chain locate? Its figures on a held-out synthetic set, chain by chain.

Generates the held-out set once (the quick start's generator settings, another seed: 960 x 540,
4 distractors, ``--num-images`` x 3 questions), runs ``tools/test.py`` with
``configs/finers/finers_tiny_loc_test.py`` on it for each chain given
(``NAME=EXPLORER_DIR,REFINER_DIR``;
``untrained`` is the random locator model in both stages) and prints one table: FineRSMetric's
gIoU / cIoU / invalid rate / MVQA / OVQA and where the chain looked (``window_recall``: the final
crop window holds the GT box; ``region_in_band``: the explorer's region has the asked size +- 15 px
in its frame; ``box_iou``: the final box's mean IoU with the GT box; ``beats_text_cue`` and
``refiner_beats_centre``: :func:`looking_figures`, whether the stages looked or only read the
question), all in percent. The figures also go to ``OUT_DIR/figures.json`` (atomically).

Example::

    python benchmarks/bench_tiny_localisation.py \
        shipped=finers_mm/data/tiny_locator/explorer,finers_mm/data/tiny_locator/refiner \
        --num-images 16 --out-dir work_dirs/bench_tiny_localisation

``untrained`` is the random tiny Qwen3-VL locator
(:func:`~finers_mm.testing.tiny_models.build_tiny_qwen3_locator`, as
``tools/misc/train_tiny_locator.py`` builds it: ``ATTENTION_SHARPNESS``). Measured with version 1 of
``tools/misc/train_tiny_locator.py`` (the tiny Qwen2.5-VL locator, which
``benchmarks/bench_tiny_vision_probe.py`` later showed cannot learn where an object is; 2 CPU cores
shared with other jobs, 48 held-out questions, 42 s for both chains), ``--num-images 800``, 1000
supervised steps each, final loss 0.72 refiner / 0.58 explorer:

=============== ========= ===================
metric (%)      untrained 1000 supervised steps
=============== ========= ===================
gIoU            0.00      0.00
invalid_rate    100.00    100.00
MVQA            0.00      31.25
OVQA            0.00      25.00
window_recall   0.00      25.00
region_in_band  0.00      0.00
=============== ========= ===================

The answer layout is learnt, the coordinates are not: the explorer's regions barely follow the GT
(correlation of x1 with the GT centre 0.23, of y1 -0.18; 22/48 boxes malformed, e.g.
``[34, 160, 1160, 160]``), the refiner answers a near-constant ``[19, 19, 19, 19]``.

With the tiny Qwen3-VL locator (versions 3 and 4 of the script, 2026-12-07, 2 CPU cores, one
stage per core, ~1 s a step), each stage after its curriculum's first sets, on held-out sets of
those sets' kind (``--object-scale``, ``--no-region-cues``):

==================== ============= ============= ================= ==============
metric (%)           v3, 1400 x3   v3, +1200 x2  v4, 1400 x3 no    v4, the same on
                     (cues)        (cues)        cues (held-out)   x3 with cues
==================== ============= ============= ================= ==============
gIoU                 6.91          4.04          0.08              0.04
invalid_rate         0.00          0.00          0.00              14.58
MVQA                 12.50         6.25          43.75             50.00
OVQA                 18.75         31.25         12.50             6.25
window_recall        72.92         70.83         8.33              8.33
region_in_band       100.00        100.00        100.00            81.25
beats_text_cue       41.67         37.50         20.83             6.25
refiner_beats_centre 22.86         41.18         0.00              25.00
==================== ============= ============= ================= ==============

Version 3's window recall is the questions' doing: its explorer answers the centre of the cell
the question names (median centre error 44 px, the named cell's centre 42 px), its refiner a box
further off than its crop's centre. Version 4, whose first set names no region, has no such
shortcut and has not learnt to look after 1400 steps (window recall 17 % on its own training
images, while its teacher-forced loss fell from 0.74 to 0.35: once x1 and y1 are written, x2, y2
and the layout are easy), nor after 1500 more on the same set (loss 0.31; held-out window recall
10 % after 750 of them, 4 % after 1500; ``beats_text_cue`` 48 % and 33 %, where the "cue" of a
question naming no region is the image centre).

Version 5's first set, ``single``: one x3 target alone on a plain ground, no region words
(2026-12-07; held out with ``--num-images 48 --object-scale 3 --no-region-cues --no-clutter
--num-distractors 0 --questions-per-image 1``; 4000 training images; runs of 1500-2000 steps at
lr 1e-3 with cosine decay, each from the last one's checkpoint). Explorer init "plain" is
transformers', "sharp" ``attention_sharpness`` 3 (the script's); the refiner of each chain is
trained on the same set's crops from the plain init, 1000, 2000 or 3600 steps. The untrained
chain never closes an answer (invalid 100 %, every figure 0). The last two rows are not the
bench's: the correlation of the explorer's region centres with the targets' (x / y) and their
median distance (the image centre's: 312 px):

===================== ======= ======= ======= ======= ======= =======
explorer steps (init) 2000    2000    3000    4000    5000    6000
                      plain   sharp   sharp   sharp   sharp   sharp
refiner steps         1000    2000    2000    2000    2000    3600
===================== ======= ======= ======= ======= ======= =======
gIoU                  1.43    0.15    1.74    6.68    6.93    34.59
invalid_rate          0.00    0.00    0.00    0.00    0.00    0.00
window_recall         12.50   10.42   25.00   41.67   95.83   100.00
region_in_band        100.00  100.00  100.00  100.00  100.00  100.00
beats_text_cue        27.08   27.08   43.75   81.25   93.75   97.92
refiner_beats_centre  66.67   20.00   33.33   35.00   17.39   47.92
centre correlation    .13/.17 .06/-.17 .55/.36 .95/.50 .99/.97 1.0/.99
median centre error   373 px  347 px  327 px  173 px  38 px   30 px
===================== ======= ======= ======= ======= ======= =======

So the explorer learns to look after ~3000 steps and locates at 5000-6000 (window recall 96-100
%); the refiner starts later (after 3600 steps its boxes follow the target in y, correlation 0.97,
not yet in x, -0.02), and the 6000-step chain's gIoU, 35 %, is mostly the GrabCut mask in a window
that holds the target. The same chain on the next set's kind (``--object-scale 3
--no-region-cues --num-distractors 2``: three targets among two distractors on the cluttered
ground) has not learnt it: window recall 8 %, invalid 17 %, centre correlation -0.17 / 0.04.

GRPO from that 6000-step chain (``configs/finers/{lpr,gse}_tiny_loc.py``, 80 iterations each on
the ``single`` set's images, one core each; the same held-out set):

===================== ======= ================ ================ ================
GRPO                  none    both: LPR 5e-4,  GSE 2e-4 only    both: LPR 5e-4,
                              GSE 2e-4                          GSE 5e-5
===================== ======= ================ ================ ================
gIoU                  34.59   74.53            35.57            80.36
cIoU                  41.57   65.10            45.29            82.84
invalid_rate          0.00    0.00             0.00             0.00
MVQA                  31.25   37.50            18.75            37.50
window_recall         100.00  89.58            89.58            100.00
region_in_band        100.00  100.00           100.00           100.00
===================== ======= ================ ================ ================

The refiner's GRPO makes the chain (its box and points reward: the GrabCut mask follows them);
the explorer's at gse_tiny.py's 2e-4 costs window recall, at 5e-5 (gse_tiny_loc.py) it does not.
MVQA here is the refiner's answer (the protocol's); the explorer's, which
``finers_tiny_loc_test.py`` now takes (``qa_stage='explorer'``: only it sees where the object
is), gives OVQA 100 % and MVQA 37.5 % with the last chain: it names the cell, not yet the letter.

The shipped stages (``tools/misc/train_tiny_locator.py`` version 6, ``--until single``, another
data seed, the refiner from the sharper init too) on the quick start's held-out set (this
benchmark's seed and the set's scene, 48 questions): after 6000 steps each window recall 31.25 %,
gIoU 6.90 %; after 8000 (shipped) 97.92 % and 31.01 %, OVQA 100 %, MVQA 18.75 %, region in band
100 %, invalid 0 %; after the quick start's GRPO (refiner at 2e-4) 95.83 % and 13.66 %.
Version 7 (the same explorer, the refiner retrained from the plain init): gIoU 26.78 % after 4000
refiner steps, 31.09 % after 6000, 72.04 % after 8000 (shipped; cIoU 83.37 %); the quick start's
GRPO (refiner at 1e-4): 47.18 %, 53.96 %, 72.20 %.

MVQA: the shipped explorer names the right cell (OVQA 100 %) but answers every multiple-choice
question with one letter (C). 3000 more steps from it (a run of 2000, then 1000 of another)
with ``choice_think='Locate. {choice}'`` (the right option's text in the ``<think>`` of
multiple-choice targets, so that the letter follows the cell it stands for; 96 held-out
questions, 32 multiple-choice, version 6's refiner): after 1000, 2000 and 3000 steps its think
named the right cell on nearly every question, and its letter was one for (nearly) all (D, then
C or B; MVQA 21.9 %, 9.4 %, 21.9 %; gIoU 31.7 %, 25.1 %, 34.3 %): finding the letter that stands
before a text in the prompt was not learnt within 3000 steps. With the letter right after the
text (``choice_think='Locate. {choice} is {letter}'``, the response then copies it; 2000 steps
on a set of half multiple-choice questions, 3000 more on multiple-choice ones only; 80 held-out
multiple-choice questions, another seed), after 2000, 4000 and 5000 steps: the think named the
right cell on 80 of 80 and a letter that stands for it on 21, 20 and 20 (chance), MVQA 26.3 %,
25.0 % and 25.0 %: the tiny locator (4 layers x 128) does not learn to find the letter of a
seen text among the options.

Does GRPO add to the shipped chain? On 48 questions the quick start measures 72.0 % -> 72.2 %;
with 240 (``--num-images 240 --questions-per-image 1 --object-scale 3 --no-region-cues
--no-clutter --num-distractors 0``; seed 1, and another set of seed 777) the quick start's GRPO
stages give gIoU 72.09 % -> 73.33 % (seed 777: 72.12 % -> 75.56 %), cIoU 82.99 % -> 80.56 %
(82.25 % -> 82.45 %). The gain is not better localisation: the refiner's boxes grew (median
area 1.01 -> 1.25 x the GT's) and their IoU with the GT fell (0.53 -> 0.47); the GrabCut mask
head fills a looser box better. The authors' LPR terms reward any box with IoU > 0.5 and mean
L1 < 10 px, and points inside the box, so a larger box costs nothing. Tried (240 questions,
seed 777, shipped explorer): the continuous IoU term (``IoUReward``, weight 2) kept the boxes'
size (0.97 x) but not their IoU (0.52 -> 0.49; gIoU 70.1 %); 400 training images instead of 64
(each sample's crop window is fixed, so 64 images give 64 crops seen ~6 times each): gIoU
74.1 %, box IoU 0.44, area 1.41 x (seed 1); both: gIoU 68.7 %, box IoU 0.47, area 1.03 x
(seed 1). With the IoU term the sampled answers' IoU (temperature 0.7) rose towards the greedy
one (its mean 0.47 -> 0.53 with 64 images, 0.40 -> 0.47 with 400), the greedy answers' did not:
GRPO sharpened the sampling of a refiner whose greedy boxes were already its best. Also tried
(seed 1, shipped explorer; box IoU of the shipped chain 53.1 %): lr 2e-5 gIoU 72.95 %, box IoU
52.0 %; with the IoU term 71.75 %, 51.3 %; the authors' 8 samples at temperature 1.0 (lr 1e-4)
72.82 %, 47.0 %; and with the IoU term 69.48 %, 45.3 %. No variant made the greedy boxes
better. The
explorer's GRPO at 1e-5 / 2e-5 instead of 5e-5: window recall 100 % on 48 questions, gIoU within
3 points of the shipped chain's, as in the other runs.
"""
import argparse
import json
import os
import os.path as osp
import pickle
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
sys.path.append(osp.join(REPO_ROOT, 'tools', 'misc'))

import numpy as np  # noqa: E402
from quickstart_results import (LOCALISATION_METRICS, TABLE_METRICS, format_chains,  # noqa: E402
                                gt_box_original, localisation_figures, pred_box_original,
                                read_metrics, window_holds_gt)

from train_tiny_locator import ATTENTION_SHARPNESS, HELDOUT, SCENE  # noqa: E402

from finers_mm.testing.synthetic import (REGIONS, generate_synthetic_finers,  # noqa: E402
                                         region_boxes)
from finers_mm.testing.tiny_models import build_tiny_qwen3_locator  # noqa: E402
from finers_mm.utils.fileio import write_atomic  # noqa: E402

CONFIG = osp.join(REPO_ROOT, 'configs', 'finers', 'finers_tiny_loc_test.py')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Held-out localisation figures of tiny chains')
    parser.add_argument('chains', nargs='*', help='NAME=EXPLORER_DIR,REFINER_DIR (Hugging Face '
                        "dirs); 'untrained' is always measured first")
    parser.add_argument('--out-dir', default='work_dirs/bench_tiny_localisation')
    parser.add_argument('--num-images', type=int, default=16,
                        help='held-out images (default 16: 48 questions at 3 an image)')
    parser.add_argument('--no-untrained', action='store_true', help='skip the untrained chain')
    parser.add_argument('--object-scale', type=float, default=SCENE['object_scale'],
                        help="the held-out objects' side factor (a curriculum set's sizes, e.g. 3 "
                        "to check a chain after tools/misc/train_tiny_locator.py's first set)")
    parser.add_argument('--no-region-cues', dest='region_cues', action='store_false',
                        help='no held-out question names a region (the first curriculum sets)')
    parser.add_argument('--no-clutter', dest='clutter', action='store_false',
                        help='a plain ground without roads or roofs (the first curriculum set)')
    parser.add_argument('--num-distractors', type=int, default=SCENE['num_distractors'],
                        help='distractors per held-out image')
    parser.add_argument('--questions-per-image', type=int, default=SCENE['questions_per_image'],
                        help='questions (= targets) per held-out image')
    return parser.parse_args(argv)


#: how a changed setting names the held-out set's folder
_SCENE_TAGS = dict(object_scale=lambda v: f'_x{v:g}', region_cues=lambda v: '_nocue',
                   clutter=lambda v: '_plain', num_distractors=lambda v: f'_d{v}',
                   questions_per_image=lambda v: f'_q{v}')


def make_heldout(out_dir: str, num_images: int, **scene) -> str:
    """The held-out set under ``out_dir``, made once per size and scene settings; its data root.

    Args:
        out_dir (str): the benchmark's output folder.
        num_images (int): held-out images.
        **scene: settings of train_tiny_locator's ``SCENE`` (the curriculum's last set's) to
            change, e.g. to an earlier curriculum set's: ``object_scale``, ``region_cues``,
            ``clutter``, ``num_distractors``, ``questions_per_image``.

    Returns:
        str: the data root (``annotations/test.json``, ``images/``).
    """
    unknown = set(scene) - set(SCENE)
    if unknown:
        raise TypeError(f'make_heldout: unknown scene settings {sorted(unknown)}')
    settings = dict(SCENE, **scene)
    changed = changed_settings(settings)
    tags = ''.join(tag(changed[key]) for key, tag in _SCENE_TAGS.items() if key in changed)
    root = osp.join(out_dir, f'heldout_{num_images}{tags}')
    if not osp.isfile(osp.join(root, 'annotations', f"{HELDOUT['split']}.json")):
        generate_synthetic_finers(root, num_images, show_progress=False,
                                  **dict(HELDOUT, **settings))
    return root


def changed_settings(scene: Dict[str, object]) -> Dict[str, object]:
    """The settings of a full held-out ``scene`` that differ from ``SCENE`` (what names the
    held-out folder and the printed table's title)."""
    return {key: scene[key] for key in SCENE if scene[key] != SCENE[key]}


#: the rows of :func:`looking_figures`
LOOKING_METRICS = ('beats_text_cue', 'refiner_beats_centre')


def looking_figures(predictions: List[dict]) -> Dict[str, float]:
    """Did the stages look, or read? Two figures in percent:

    - ``beats_text_cue``: the questions whose explorer region centre lies closer to the target's
      centre than the centre of the 3x3 cell the question names (the image centre when it names
      none), the region a chain that only reads the question would answer; a sample without a
      region does not beat it. A chain that reads scores about half or less, one that looks close
      to 100;
    - ``refiner_beats_centre``: of the questions whose crop window holds the target, those whose
      refiner box centre lies closer to the target's centre than the window's centre (what a
      refiner blind to the crop would answer); a sample without a box does not beat it.

    Args:
        predictions (list[dict]): ``tools/test.py --out`` samples with ``question``,
            ``pred_region`` and ``pred_window`` (ORIGINAL pixels), ``pred_instances['bboxes']``
            ((N, 4), ORIGINAL pixels), ``gt_bbox_explorer``, ``explorer_frame`` ``(fw, fh)`` and
            ``ori_shape`` ``(H, W)``.

    Returns:
        dict[str, float]: both figures.
    """
    explorer_wins = refiner_wins = held = 0
    for pred in predictions:
        height, width = pred['ori_shape']
        target = _centre(gt_box_original(pred))
        named = [name for name in REGIONS if f'the {name} part' in pred['question']]
        cell = region_boxes((width, height))[named[0]] if named else (0, 0, width, height)
        if pred.get('pred_region') is not None:
            explorer_wins += bool(_distance(pred['pred_region'], target)
                                  < _distance(cell, target))
        if not window_holds_gt(pred):
            continue
        held += 1
        box = pred_box_original(pred)
        if box is not None:
            refiner_wins += bool(_distance(box, target) < _distance(pred['pred_window'], target))
    return dict(beats_text_cue=100.0 * explorer_wins / max(1, len(predictions)),
                refiner_beats_centre=100.0 * refiner_wins / max(1, held))


def _centre(box: Sequence[float]) -> np.ndarray:
    box = np.asarray(box, np.float64)
    return (box[:2] + box[2:]) / 2


def _distance(box: Sequence[float], point: np.ndarray) -> float:
    """Distance from a box's centre to a point."""
    return float(np.linalg.norm(_centre(box) - point))


def evaluate_chain(name: str, explorer: str, refiner: str, data_root: str, out_dir: str,
                   extra: Optional[List[str]] = None) -> Dict[str, float]:
    """``tools/test.py`` of one chain on the held-out set; FineRSMetric's figures and
    :func:`~quickstart_results.localisation_figures`, with ``seconds``."""
    work_dir = osp.join(out_dir, 'eval', name)
    os.makedirs(work_dir, exist_ok=True)
    pkl = osp.join(work_dir, 'predictions.pkl')
    command = [sys.executable, osp.join(REPO_ROOT, 'tools', 'test.py'), CONFIG, '--work-dir',
               work_dir, '--out', pkl, '--cfg-options', f'model.explorer.vlm.pretrained={explorer}',
               f'model.refiner.vlm.pretrained={refiner}',
               f'test_dataloader.dataset.data_root={data_root}/',
               f"test_dataloader.dataset.ann_file=annotations/{HELDOUT['split']}.json",
               *(extra or [])]
    env = dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1')
    env.setdefault('OMP_NUM_THREADS', '1')
    start = time.perf_counter()
    with open(osp.join(work_dir, 'test.log'), 'w', encoding='utf-8') as log:
        code = subprocess.call(command, cwd=REPO_ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    if code != 0:
        raise SystemExit(f'{name}: tools/test.py failed (exit {code}), see {work_dir}/test.log')
    with open(pkl, 'rb') as f:
        predictions = pickle.load(f)
    figures = dict(read_metrics(work_dir), **localisation_figures(predictions),
                   **looking_figures(predictions))
    figures['seconds'] = time.perf_counter() - start
    return figures


def main(argv=None) -> Dict[str, dict]:
    args = parse_args(argv)
    out_dir = osp.abspath(args.out_dir)
    scene = {key: getattr(args, key) for key in SCENE}
    data_root = make_heldout(out_dir, args.num_images, **scene)
    chains = {}
    if not args.no_untrained:
        untrained = build_tiny_qwen3_locator(osp.join(out_dir, 'untrained_locator'),
                                             attention_sharpness=ATTENTION_SHARPNESS['explorer'])
        chains['untrained'] = (untrained, untrained)
    for spec in args.chains:
        name, _, dirs = spec.partition('=')
        explorer, _, refiner = dirs.partition(',')
        if not (name and explorer and refiner):
            raise SystemExit(f'chain {spec!r}: expected NAME=EXPLORER_DIR,REFINER_DIR')
        chains[name] = (osp.abspath(explorer), osp.abspath(refiner))
    results = {name: evaluate_chain(name, *dirs, data_root, out_dir)
               for name, dirs in chains.items()}
    changed = ', '.join(f'{key} {value}' for key, value in changed_settings(scene).items())
    print(f'\n=== held-out synthetic set: {args.num_images * args.questions_per_image} questions '
          f"(seed {HELDOUT['seed']}, {HELDOUT['image_size'][0]}x{HELDOUT['image_size'][1]}"
          f"{', ' + changed if changed else ''}) ===")
    print(format_chains(results, TABLE_METRICS + LOCALISATION_METRICS + LOOKING_METRICS))
    write_atomic(osp.join(out_dir, 'figures.json'), json.dumps(results, indent=2))
    return results


if __name__ == '__main__':
    main()
