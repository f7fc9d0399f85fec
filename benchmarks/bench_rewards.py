# Copyright (c) finers_mm contributors. All rights reserved.
"""Throughput of the authors' LPR and GSE reward composites on CPU, against parsing alone.

Generates realistic completions (a few sentences of reasoning, then the answer JSON) for groups of
8 rollouts per prompt, mixing well-formed answers near and far from the ground truth, absent boxes,
Python-literal JSON, cut-off generations, missing keys and free text. Each composite parses every
completion once and runs its terms; the ratio is its time over ``parse_completion`` alone (the
floor: the terms' own cost is what the ratio adds on top of 1).

    python benchmarks/bench_rewards.py [--num 4000] [--repeats 5] [--seed 0]
"""
import argparse
import json
import os.path as osp
import sys

import numpy as np

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from mmengine.config import Config  # noqa: E402
from timing import median_time  # noqa: E402

from finers_mm.rl.rewards import CompositeReward  # noqa: E402
from finers_mm.structures.parsing import parse_completion  # noqa: E402
from finers_mm.structures.reward_sample import RewardSample  # noqa: E402

#: the authors' reward terms, from the training configs
AUTHORS_REFINER_TERMS = Config.fromfile(
    osp.join(REPO_ROOT, 'configs', 'finers', 'lpr_qwen7b.py')).lpr_reward.terms
AUTHORS_EXPLORER_TERMS = Config.fromfile(
    osp.join(REPO_ROOT, 'configs', 'finers', 'gse_qwen7b.py')).gse_reward.terms

#: rollouts per prompt (GRPO group size)
GROUP = 8
QUESTIONS = (('segmentation', 'The object is found.', {}),
             ('multiple_choice', 'B', {'A': 'red car', 'B': 'blue truck', 'C': 'bus', 'D': 'van'}),
             ('open', 'white', {}))
REASONING = ('The query asks about a small object. Scanning the image from the top left, there '
             'are several vehicles on the road and a few pedestrians near the crossing. The one '
             'matching the description is partly occluded by a tree; its colour and shape fit '
             'the question best, so I localise it and answer accordingly. ')


def make_sample(stage: str, rng: np.random.Generator) -> RewardSample:
    """A random prompt's ground truth: refiner 512x512 frame, explorer 1920x1080 frame."""
    question_type, answer, options = QUESTIONS[rng.integers(len(QUESTIONS))]
    if stage == 'refiner':
        frame, model = (512, 512), (504, 504)
        x, y = rng.uniform(20, 440, 2)
        box = np.array([x, y, x + rng.uniform(5, 60), y + rng.uniform(5, 60)])
        centre = (box[:2] + box[2:]) / 2
        return RewardSample(stage=stage, frame_size=frame, model_coord_size=model,
                            question_type=question_type, answer=answer, options=options,
                            gt_box=box, gt_points=np.stack([centre - 1, centre + 1]))
    frame, model, side = (1920, 1080), (1000, 1000), 256
    x, y = rng.uniform(0, frame[0] - side), rng.uniform(0, frame[1] - side)
    region = np.array([x, y, x + side, y + side])
    gt = np.array([x + 100, y + 100, x + 120, y + 115])
    return RewardSample(stage=stage, frame_size=frame, model_coord_size=model,
                        question_type=question_type, answer=answer, options=options, gt_box=gt,
                        target_region=region, region_size=side)


def make_completion(sample: RewardSample, rng: np.random.Generator) -> str:
    """One rollout: 70 % well-formed (near or far), the rest the usual kinds of broken output."""
    scale = np.tile(np.asarray(sample.model_coord_size) / np.asarray(sample.frame_size), 2)
    target = sample.gt_box if sample.stage == 'refiner' else sample.target_region
    box = (target + rng.normal(0, rng.choice([3.0, 30.0]), 4)) * scale
    data = {'bbox': [round(float(v), 1) for v in box]}
    if sample.stage == 'refiner':
        points = (sample.gt_points + rng.normal(0, 5, (2, 2))) * scale[:2]
        data['points_1'], data['points_2'] = points.round(1).tolist()
    data['response'] = str(rng.choice([sample.answer, 'A', 'The object is found.', 'red']))
    think = REASONING * int(rng.integers(1, 4))
    kind = rng.choice(['ok', 'absent', 'python', 'cut', 'missing', 'free'],
                      p=[0.6, 0.05, 0.1, 0.1, 0.1, 0.05])
    if kind == 'absent' and sample.stage == 'refiner':
        data.update(bbox=[0, 0, 0, 0], points_1=[0, 0], points_2=[0, 0])
    if kind == 'missing':
        data.pop('bbox')
    answer = repr(data) if kind == 'python' else json.dumps(data)
    text = f'<think>{think}</think>\n<answer>{answer}</answer>'
    if kind == 'cut':
        return text[:int(rng.integers(len(think), len(text)))]
    if kind == 'free':
        return think + 'The answer is B.'
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--num', type=int, default=4000, help='completions per stage')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    for stage, terms in (('refiner', AUTHORS_REFINER_TERMS), ('explorer', AUTHORS_EXPLORER_TERMS)):
        reward = CompositeReward(list(terms))
        samples, texts = [], []
        while len(texts) < args.num:
            sample = make_sample(stage, rng)
            samples += [sample] * GROUP
            texts += [make_completion(sample, rng) for _ in range(GROUP)]
        parse_s = median_time(lambda: [parse_completion(t, stage) for t in texts], args.repeats)
        reward_s = median_time(lambda: reward(texts, samples), args.repeats)
        result = reward(texts, samples)
        print(f'{stage:8s} {len(texts)} completions ({result.invalid.mean():.0%} invalid, mean '
              f'total {result.total.mean():.2f} / {reward.max_total:.0f}): parse alone '
              f'{len(texts) / parse_s:,.0f}/s, composite {len(texts) / reward_s:,.0f}/s, ratio '
              f'composite / parse {reward_s / parse_s:.2f}')


if __name__ == '__main__':
    main()
