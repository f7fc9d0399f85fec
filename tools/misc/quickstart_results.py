# Copyright (c) finers_mm contributors. All rights reserved.
"""What the quick start reads from its steps' outputs, and the tables it prints.

- the training progress worth showing (:func:`train_progress`, lines of mmengine's training log);
- FineRSMetric's results that ``tools/test.py`` wrote (:func:`read_metrics`) and their
  before/after table (:func:`format_metrics`);
- the per-iteration GRPO scalars of a training run (:func:`read_rewards`), their first/last
  summary (:func:`reward_summary`) and its table (:func:`format_rewards`);
- the demo's prediction (:func:`read_prediction`);
- where the chain looked on the held-out set (:func:`localisation_figures`: window recall, region
  size band, the final box's IoU) and the table of several chains (:func:`format_chains`).
"""
import glob
import json
import math
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence

import numpy as np

from finers_mm.rl.rewards import box_iou
from finers_mm.structures import box_contains

#: the metrics of the side-by-side table (FineRSMetric's names, in percent)
TABLE_METRICS = ('gIoU', 'cIoU', 'gIoU_XXS', 'invalid_rate', 'MVQA', 'OVQA')


def train_progress(max_iters: int) -> re.Pattern:
    """The training log lines worth showing: about 5 per run, with the loss or the reward.

    Args:
        max_iters (int): the run's iterations.

    Returns:
        re.Pattern: matches mmengine's ``Iter(train) [i/max_iters] ...`` lines of those
        iterations, up to the first ``reward: ...`` or ``loss: ...``.
    """
    every = max(1, max_iters // 5)
    wanted = '|'.join(str(i) for i in range(every, max_iters + 1, every))
    return re.compile(rf'Iter\(train\) \[\s*({wanted})/{max_iters}\].*?'
                      r'(reward: [-\d.e]+|loss: [-\d.e]+)')


def read_metrics(eval_dir: str) -> dict:
    """FineRSMetric's results that tools/test.py wrote under ``eval_dir`` (its last run).

    Args:
        eval_dir (str): the ``--work-dir`` of tools/test.py (``<timestamp>/<timestamp>.json``).

    Returns:
        dict: metric name (without the ``finers/`` prefix) to value (percent).
    """
    files = sorted(glob.glob(osp.join(eval_dir, '*', '*.json')))
    if not files:
        raise SystemExit(f'no metrics file under {eval_dir}')
    metrics = _load_json(files[-1])
    return {key.split('/', 1)[1]: value for key, value in metrics.items() if '/' in key}


def read_rewards(work_dir: str) -> List[dict]:
    """The per-iteration scalars of a GRPO run (``vis_data/scalars.json``, logged every step).

    Args:
        work_dir (str): the training run's ``--work-dir``.

    Returns:
        list[dict]: one row of scalars per logged iteration, in order.
    """
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise SystemExit(f'no scalars.json under {work_dir}')
    with open(files[-1], encoding='utf-8') as f:
        return [json.loads(line) for line in f if line.strip()]


def reward_summary(rows: List[dict]) -> Dict[str, dict]:
    """Each reward key's value at the first and last iteration and its mean over the first and
    last ``k`` iterations (k = a third of the run, at most 10).

    Args:
        rows (list[dict]): :func:`read_rewards` of a run.

    Returns:
        dict[str, dict]: for ``reward``, every ``reward/<term>`` and ``invalid_rate``:
        ``first``, ``last``, ``first_k``, ``last_k``, ``k`` and ``iters`` (rows holding it).
    """
    k = max(1, min(10, len(rows) // 3))
    keys = [key for key in rows[0] if key == 'reward' or key.startswith('reward/')
            or key == 'invalid_rate']
    summary = {}
    for key in keys:
        values = [row[key] for row in rows if key in row]
        summary[key] = dict(first=values[0], last=values[-1], first_k=sum(values[:k]) / k,
                            last_k=sum(values[-k:]) / k, k=k, iters=len(values))
    return summary


def format_percent(value: float) -> str:
    """A FineRSMetric figure (percent) with enough digits to tell it from 0.

    Two decimals from 1 % up (``55.12``); below, three significant digits (``0.0444``: a gIoU of
    0.0444 % printed with one decimal would read ``0.0``); 0 as ``0.00``.

    Args:
        value (float): the figure, in percent.

    Returns:
        str: the figure without its unit.
    """
    if value == 0 or not math.isfinite(value) or abs(value) >= 1:
        return f'{value:.2f}'
    return f'{value:.{2 - math.floor(math.log10(abs(value)))}f}'


def format_metrics(before: dict, after: dict) -> str:
    """The before/after table of the FineRSMetric results (percent, :func:`format_percent`;
    ``-`` where one is missing).

    Args:
        before (dict): :func:`read_metrics` of the untrained models.
        after (dict): :func:`read_metrics` of the trained stages.

    Returns:
        str: the table, one line per metric of :data:`TABLE_METRICS` that either holds.
    """
    lines = [f"{'metric (%)':<14}{'untrained':>11}{'trained':>11}"]
    for name in TABLE_METRICS:
        if name in before or name in after:
            cells = [f'{format_percent(m[name]):>11}' if isinstance(m.get(name), (int, float))
                     else f"{'-':>11}" for m in (before, after)]
            lines.append(f'{name:<14}' + ''.join(cells))
    return '\n'.join(lines)


def format_rewards(stage: str, summary: Dict[str, dict]) -> str:
    """One stage's GRPO training reward, first vs last iteration (and the mean over k of each).

    Args:
        stage (str): the stage's short name (``LPR``, ``GSE``).
        summary (dict[str, dict]): :func:`reward_summary` of its GRPO run.

    Returns:
        str: the table, one line per reward key.
    """
    any_row = next(iter(summary.values()))
    k, iters = any_row['k'], any_row['iters']
    lines = [f"{stage + ' GRPO (' + str(iters) + ' iters)':<26}{'first':>8}{'last':>8}"
             f"{'first ' + str(k):>10}{'last ' + str(k):>9}"]
    for key, row in summary.items():
        lines.append(f'{key:<26}{row["first"]:8.3f}{row["last"]:8.3f}{row["first_k"]:10.3f}'
                     f'{row["last_k"]:9.3f}')
    return '\n'.join(lines)


#: what :func:`localisation_figures` adds to a chain's FineRSMetric results (percent)
LOCALISATION_METRICS = ('window_recall', 'region_in_band', 'box_iou')
#: half-width of the region size band in explorer-frame pixels (the authors' 256 +- 15)
REGION_BAND = 15


def localisation_figures(predictions: List[dict], band: float = REGION_BAND) -> Dict[str, float]:
    """Where the chain looked, from ``tools/test.py --out`` predictions (mmdet's dump).

    - ``window_recall``: the final crop window (``pred_window``, ORIGINAL pixels) contains the
      whole GT box; a sample without a window misses;
    - ``region_in_band``: the explorer's region has both sides within ``region_size +- band`` in
      the explorer frame (the paper's fixed-size region; a region blown up to contain everything
      is out of band); a sample without a region is out of band;
    - ``box_iou``: the mean IoU of the final box with the GT box (0 for a sample without a box).
      gIoU alone can hide a worse box: a mask head that fills a looser box better (the GrabCut
      head of the tiny chains) raises gIoU while the box's IoU falls.

    Args:
        predictions (list[dict]): one dict per sample with ``pred_window``, ``pred_region``,
            ``gt_bbox_explorer``, ``explorer_frame`` ``(fw, fh)``, ``ori_shape`` ``(H, W)``,
            ``region_size`` and ``pred_instances`` (``bboxes`` (K, 4) ORIGINAL pixels; absent:
            no box), what the FineRS test pipeline packs and the detector predicts.
        band (float): the band's half-width in explorer-frame pixels.

    Returns:
        dict[str, float]: the three figures in percent, and ``num_samples``.
    """
    hits = in_band = 0
    iou_sum = 0.0
    for pred in predictions:
        hits += window_holds_gt(pred)
        box = pred_box_original(pred)
        if box is not None:
            iou_sum += box_iou(box.tolist(), gt_box_original(pred).tolist())
        region = pred.get('pred_region')
        if region is not None:
            region = np.asarray(region, np.float64) / _explorer_scale(pred)
            sides = region[2:] - region[:2]
            in_band += bool((np.abs(sides - pred['region_size']) <= band).all())
    num = max(1, len(predictions))
    return dict(window_recall=100.0 * hits / num, region_in_band=100.0 * in_band / num,
                box_iou=100.0 * iou_sum / num, num_samples=len(predictions))


def gt_box_original(pred: dict) -> np.ndarray:
    """A predicted sample's GT box in ORIGINAL pixels ((4,) float64), from its
    ``gt_bbox_explorer``, ``explorer_frame`` ``(fw, fh)`` and ``ori_shape`` ``(H, W)``."""
    return np.asarray(pred['gt_bbox_explorer'], np.float64) * _explorer_scale(pred)


def pred_box_original(pred: dict) -> Optional[np.ndarray]:
    """A predicted sample's final box in ORIGINAL pixels ((4,) float64), the first of its
    ``pred_instances['bboxes']`` ((K, 4)); None without one (K = 0 or no ``pred_instances``)."""
    boxes = np.asarray((pred.get('pred_instances') or {}).get('bboxes', []), np.float64)
    return boxes[0] if len(boxes) else None


def window_holds_gt(pred: dict) -> bool:
    """Whether a predicted sample's final crop window (``pred_window``, ORIGINAL pixels) holds
    its whole GT box; False without a window."""
    window = pred.get('pred_window')
    # 1e-3 px: the GT box went to the explorer frame and back
    return window is not None and box_contains(window, gt_box_original(pred), tol=1e-3)


def _explorer_scale(pred: dict) -> np.ndarray:
    """(4,) ORIGINAL / explorer-frame scale of a box ``[x1, y1, x2, y2]``."""
    frame_w, frame_h = pred['explorer_frame']
    height, width = pred['ori_shape']
    return np.array([width / frame_w, height / frame_h] * 2)


def format_chains(results: Dict[str, dict],
                  names: Sequence[str] = TABLE_METRICS + LOCALISATION_METRICS) -> str:
    """A table of several chains' figures side by side (percent, :func:`format_percent`).

    Args:
        results (dict[str, dict]): each chain's figures (FineRSMetric's and
            :func:`localisation_figures`), by column title, in column order.
        names (Sequence[str]): the rows, those that some chain holds.

    Returns:
        str: the table.
    """
    width = max(11, *(len(title) + 2 for title in results))
    lines = [f"{'metric (%)':<16}" + ''.join(f'{title:>{width}}' for title in results)]
    for name in names:
        if any(name in m for m in results.values()):
            cells = [f'{format_percent(m[name]):>{width}}' if isinstance(m.get(name), (int, float))
                     else f"{'-':>{width}}" for m in results.values()]
            lines.append(f'{name:<16}' + ''.join(cells))
    return '\n'.join(lines)


def read_prediction(out_dir: str, image_path: str) -> dict:
    """The prediction tools/demo.py wrote for its one image (``preds/``).

    Args:
        out_dir (str): the demo's ``--out-dir``.
        image_path (str): the image it was asked about.

    Returns:
        dict: :meth:`~finers_mm.apis.FineRSInferencer.pred2dict` with ``mask_file``.
    """
    # FineRSInferencer names the outputs of its i-th input '{i:04d}_{image stem}'
    stem = osp.splitext(osp.basename(image_path))[0]
    return _load_json(osp.join(out_dir, 'preds', f'0000_{stem}.json'))


def _load_json(path: str) -> dict:
    """A JSON file a step wrote; a clear exit when it cannot be read."""
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        raise SystemExit(f'{path}: cannot read the step\'s output ({error}); rerun the quick '
                         'start with --force') from None
