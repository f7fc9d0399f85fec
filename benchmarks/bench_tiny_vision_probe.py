# Copyright (c) finers_mm contributors. All rights reserved.
"""What does a tiny VLM learn from pixels? A probe of issue 16 (the tiny chain does not locate).

Trains a tiny VLM directly (the plain Hugging Face model and processor, AdamW, batch 8, linear
warm-up then cosine decay, one CPU thread) on ONE question about synthetic 112 x 112 images: a
black image with one saturated square of a random :data:`~finers_mm.testing.synthetic.vocab.COLORS`
colour, its side drawn from a range. Then it greedy-decodes a held-out set (another seed, the final
side range) and reports the exact-answer accuracy. Tasks:

* ``text_colour``: the colour's name; the question names it too (a text copy: the pipeline check);
* ``full_colour``: the colour's name; the whole image is that colour;
* ``colour``: the colour's name ("What color is the object?");
* ``cell``: the 28-px cell (of 4 x 4) that holds the square's centre, answered ``"col row"``.

A row may follow a size curriculum: the side range moves linearly from ``start_sides`` to ``sides``
over the first 60 % of its steps (:func:`curriculum_sides`). ``chance`` is the accuracy of the best
constant answer on the same held-out set (what a model blind to the image can score at most).
Models: ``locator`` (:func:`~finers_mm.testing.tiny_models.build_tiny_locator`, the quick start's
larger tiny Qwen2.5-VL, 14-px patches: 8 x 8 patches, 4 x 4 tokens), ``qwen3_sincos`` (the
tests' tiny Qwen3-VL, :func:`~finers_mm.testing.tiny_models.build_tiny_qwen3_vl`, its vision
tower's absolute position table set to 2-D sin/cos,
:func:`~finers_mm.testing.tiny_models.sincos_position_table`) and ``qwen3_locator``
(:func:`~finers_mm.testing.tiny_models.build_tiny_qwen3_locator`: the same at the locator's
width, a 16 x 16 table).

Usage::

    python benchmarks/bench_tiny_vision_probe.py                    # the default preset (< 3 min)
    python benchmarks/bench_tiny_vision_probe.py --preset issue16   # every row below (~9 min)
    python benchmarks/bench_tiny_vision_probe.py --task cell --sides 8 28 --start-sides 30 60 \\
        --steps 600 --lr 1e-3 --out work_dirs/probe.json           # one row of your own

Each row is printed as it finishes, then one table; the rows also go to ``--out`` (JSON, written
atomically), each with its settings, accuracy, chance, the number of distinct answers, the last
training loss, seconds and a few (answer, truth) pairs.

Measured here, 2026-12-07 (``locator`` unless said, lr 1e-3, 32 held-out images, one CPU thread
on a 2-core machine shared with other jobs, about 0.2 s a step). ``--preset default`` (93 s)::

    +-------------+---------+-------+-----------------+-------+-------+----------+--------+
    | task        | model   | sides | curriculum from | steps | lr    | accuracy | chance |
    +-------------+---------+-------+-----------------+-------+-------+----------+--------+
    | text_colour | locator | 8-28  | -               | 100   | 0.001 | 100.0    | 25.0   |
    | colour      | locator | 30-60 | -               | 150   | 0.001 | 100.0    | 25.0   |
    | colour      | locator | 8-28  | -               | 200   | 0.001 | 9.4      | 25.0   |
    +-------------+---------+-------+-----------------+-------+-------+----------+--------+

``--preset issue16`` (about 8 min; the ``cell`` 30-60 row was run alone, with ``--task cell
--sides 30 60 --steps 400``, before it joined the preset; the printed table has an ``lr``
column too, 0.001 in every row)::

    +-------------+--------------+-------------+-------+-------+----------+--------+
    | task        | model        | sides       | from  | steps | accuracy | chance |
    +-------------+--------------+-------------+-------+-------+----------+--------+
    | text_colour | locator      | 8-28        | -     | 200   | 100.0    | 25.0   |
    | full_colour | locator      | whole image | -     | 200   | 100.0    | 25.0   |
    | colour      | locator      | 30-60       | -     | 200   | 100.0    | 25.0   |
    | colour      | locator      | 8-28        | -     | 200   | 9.4      | 25.0   |
    | colour      | locator      | 8-28        | 30-60 | 400   | 100.0    | 25.0   |
    | cell        | locator      | 30-60       | -     | 400   | 25.0     | 25.0   |
    | cell        | locator      | 8-28        | 30-60 | 600   | 12.5     | 21.9   |
    | cell        | qwen3_sincos | 8-28        | 30-60 | 600   | 12.5     | 21.9   |
    +-------------+--------------+-------------+-------+-------+----------+--------+

(``chance`` is above 1/8 and 1/16 because the best constant answer is counted on the 32 held-out
images, where one colour drew 8 of them.) Every row at or under chance answers ONE constant
(``yellow``; ``2 2``; ``1 1``): the answer format is learnt, the image is not used. The ``cell``
loss stalls at the blind prior's from step 100 on: the entropy of the cell label over its 4
answer tokens (``1``, ``Ġ``, ``2``, ``<|im_end|>``) is 0.50 nats a token for 30-60 px squares
(measured 0.49) and 0.67 for 8-28 px (measured 0.66-0.68), even while the squares are 30-60 px,
when the same model learns their COLOUR in 150 steps.

Measured by the lead, 2026-12-07, with a throw-away script (the same scenes and schedule), not
rerun here: ``colour`` 8-28 at lr 1e-2 is at chance too; ``cell`` 30-60 px, 2000 steps (32
held-out images, chance 25 %):

=================================================== ============= ==============
model                                               1000 steps    2000 steps
=================================================== ============= ==============
``locator`` (Qwen2.5-VL, rotary positions only)      -             6 % (one cell)
Qwen3-VL at the locator's width, random table       59 %          97 %
(``qwen3_locator``)
the same, 2-D sin/cos table                         25 %          53 %
the same, sin/cos, q/k projections x 3 at init       44 %          91 %
=================================================== ============= ==============

and ``qwen3_locator`` on ``cell`` 8-28 px with the curriculum from 30-60 over 2500 steps: 16 %.
Then with this script (one thread, 0.11 s a step)::

    --task cell --model qwen3_locator --sides 16 32 --steps 4000                      100.0 (chance 18.8)
    --task cell --model qwen3_locator --sides 8 28 --start-sides 30 60 --steps 5000   100.0 (chance 21.9)

So a tiny VLM sees a SMALL object only through a size curriculum, and reads out WHERE an object is
only when its image tokens carry their place (Qwen3-VL's absolute position table): the tiny
Qwen2.5-VL's tokens know it through rotary embeddings alone, and a position, unlike a colour, does
not survive an average over the image tokens, the attention a random model starts from.
"""
import argparse
import dataclasses
import os.path as osp
import re
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from finers_mm.testing.synthetic.vocab import COLORS  # noqa: E402
from finers_mm.testing.tiny_models import (build_tiny_locator, build_tiny_qwen3_locator,  # noqa: E402
                                           build_tiny_qwen3_vl)
from finers_mm.utils.fileio import check_writable, write_json_atomic  # noqa: E402

#: side of the square synthetic image, and of a position cell (a merged Qwen2.5-VL token)
IMAGE_SIZE = 112
CELL = 28
#: the square keeps this margin to the image border
MARGIN = 4
#: the curriculum reaches the final side range at this fraction of the steps
RAMP = 0.6
TASKS = ('text_colour', 'full_colour', 'colour', 'cell')
MODELS = ('locator', 'qwen3_sincos', 'qwen3_locator')
BATCH_SIZE = 8
WARMUP_STEPS = 20


@dataclasses.dataclass(frozen=True)
class ProbeRow:
    """One training run of the probe.

    Args:
        task (str): one of :data:`TASKS`.
        sides (tuple[int, int]): the square's side range in pixels (both ends included), at the
            end of training and on the held-out set.
        start_sides (tuple[int, int], optional): the side range at step 0 of a curriculum; None
            trains on ``sides`` throughout.
        steps (int): optimiser steps (batches of :data:`BATCH_SIZE`).
        lr (float): peak learning rate.
        model (str): one of :data:`MODELS`.
        seed (int): seed of the weights and of the training images (held-out: ``seed + 10000``).
        eval_size (int): held-out images.
    """
    task: str
    sides: Tuple[int, int]
    start_sides: Optional[Tuple[int, int]] = None
    steps: int = 200
    lr: float = 1e-3
    model: str = 'locator'
    seed: int = 0
    eval_size: int = 32

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f'task {self.task!r}: choose one of {TASKS}')
        if self.model not in MODELS:
            raise ValueError(f'model {self.model!r}: choose one of {MODELS}')
        for name in ('sides', 'start_sides'):
            lo_hi = getattr(self, name)
            if lo_hi is not None and not 1 <= lo_hi[0] <= lo_hi[1] <= IMAGE_SIZE - 2 * MARGIN:
                raise ValueError(f'{name} {lo_hi}: need 1 <= low <= high <= '
                                 f'{IMAGE_SIZE - 2 * MARGIN} (a {IMAGE_SIZE}-px image with a '
                                 f'{MARGIN}-px margin)')
        if self.steps < 1 or self.eval_size < 1:
            raise ValueError(f'steps {self.steps}, eval_size {self.eval_size}: both must be >= 1')


#: named sets of rows; ``default`` runs in < 3 min on one core, ``issue16`` reruns the lead's rows
PRESETS: Dict[str, Tuple[ProbeRow, ...]] = {
    'default': (
        ProbeRow('text_colour', (8, 28), steps=100),
        ProbeRow('colour', (30, 60), steps=150),
        ProbeRow('colour', (8, 28), steps=200),
    ),
    'issue16': (
        ProbeRow('text_colour', (8, 28), steps=200),
        ProbeRow('full_colour', (8, 28), steps=200),
        ProbeRow('colour', (30, 60), steps=200),
        ProbeRow('colour', (8, 28), steps=200),
        ProbeRow('colour', (8, 28), start_sides=(30, 60), steps=400),
        ProbeRow('cell', (30, 60), steps=400),
        ProbeRow('cell', (8, 28), start_sides=(30, 60), steps=600),
        ProbeRow('cell', (8, 28), start_sides=(30, 60), steps=600, model='qwen3_sincos'),
    ),
}


# ------------------------------------------------------------------------------------------------
# pure parts: schedule, labels, questions, answers
# ------------------------------------------------------------------------------------------------

def curriculum_sides(progress: float, sides: Tuple[int, int],
                     start_sides: Optional[Tuple[int, int]] = None,
                     ramp: float = RAMP) -> Tuple[int, int]:
    """The side range at a point of training: linear from ``start_sides`` to ``sides`` over the
    first ``ramp`` of it, then ``sides``.

    Args:
        progress (float): fraction of training done, in [0, 1].
        sides (tuple[int, int]): the final range.
        start_sides (tuple[int, int], optional): the range at progress 0; None: no curriculum.
        ramp (float): the progress at which the final range is reached, in (0, 1].

    Returns:
        tuple[int, int]: (low, high), both rounded to whole pixels.
    """
    if start_sides is None:
        return tuple(sides)
    f = min(1.0, max(0.0, progress) / ramp)
    return tuple(int(round(a + (b - a) * f)) for a, b in zip(start_sides, sides))


def cell_of(box: Sequence[float], cell: int = CELL) -> Tuple[int, int]:
    """The (column, row) of the ``cell``-px cell holding a box's centre; a centre on a border
    belongs to the cell right of / below it.

    Args:
        box (Sequence[float]): (x1, y1, x2, y2), x2 and y2 exclusive (a side-s square at x has
            x2 = x + s).
        cell (int): the cell side in pixels.

    Returns:
        tuple[int, int]: (column, row), from 0 at the top-left.
    """
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return int(cx // cell), int(cy // cell)


def read_cell(text: str) -> Optional[Tuple[int, int]]:
    """Read a ``cell`` answer: exactly two non-negative integers, ``"col row"``.

    Args:
        text (str): the decoded answer.

    Returns:
        tuple[int, int] | None: (column, row), or None when malformed (then it is wrong).
    """
    match = re.fullmatch(r'\s*(\d+)\s+(\d+)\s*', text)
    return (int(match[1]), int(match[2])) if match else None


def read_colour(text: str) -> Optional[str]:
    """Read a colour answer: one name of :data:`COLORS`, nothing else.

    Args:
        text (str): the decoded answer.

    Returns:
        str | None: the colour, or None when malformed.
    """
    text = text.strip().lower()
    return text if text in COLORS else None


def question(task: str, colour: str) -> str:
    """The user's question of a task (the text copy names the colour, the cell task names it so
    that the question says which object)."""
    if task == 'text_colour':
        return f'The {colour} one. What color?'
    if task == 'cell':
        return f'Which {CELL}-px cell holds the {colour} object? Answer: column row.'
    return 'What color is the object?'


def truth(task: str, colour: str, box: Sequence[int]) -> str:
    """The answer text of a scene: the colour's name or the cell ``"col row"``."""
    return '{} {}'.format(*cell_of(box)) if task == 'cell' else colour


def is_correct(task: str, text: str, colour: str, box: Sequence[int]) -> bool:
    """Whether a decoded answer is right (read strictly: :func:`read_cell`, :func:`read_colour`)."""
    if task == 'cell':
        return read_cell(text) == cell_of(box)
    return read_colour(text) == colour


# ------------------------------------------------------------------------------------------------
# scenes, model, training, evaluation
# ------------------------------------------------------------------------------------------------

def sample_scene(rng: np.random.Generator, task: str,
                 sides: Tuple[int, int]) -> Tuple[np.ndarray, str, Tuple[int, int, int, int]]:
    """One synthetic scene: a black image with one square of a random colour.

    Args:
        rng (np.random.Generator): random source.
        task (str): ``full_colour`` fills the whole image with the colour.
        sides (tuple[int, int]): the side range (both ends included).

    Returns:
        tuple: the (H, W, 3) uint8 RGB image, the colour's name, the square (x1, y1, x2, y2).
    """
    colour = list(COLORS)[int(rng.integers(len(COLORS)))]
    side = int(rng.integers(sides[0], sides[1] + 1))
    x, y = (int(v) for v in rng.integers(MARGIN, IMAGE_SIZE - side - MARGIN + 1, size=2))
    image = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    if task == 'full_colour':
        image[:] = COLORS[colour]
    else:
        image[y:y + side, x:x + side] = COLORS[colour]
    return image, colour, (x, y, x + side, y + side)


def build_model(name: str, work_dir: str, seed: int):
    """The probe's model and processor, random weights (deterministic in ``seed``).

    Args:
        name (str): one of :data:`MODELS`.
        work_dir (str): where the builder writes the Hugging Face directory.
        seed (int): seed of the weights.

    Returns:
        tuple: (model in train mode, processor).
    """
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    out = osp.join(work_dir, name)
    if name == 'qwen3_sincos':
        path = build_tiny_qwen3_vl(out, seed=seed, position_table='sincos')
    else:
        builder = build_tiny_locator if name == 'locator' else build_tiny_qwen3_locator
        path = builder(out, seed=seed)
    model = transformers.AutoModelForImageTextToText.from_pretrained(path, local_files_only=True)
    processor = transformers.AutoProcessor.from_pretrained(path, local_files_only=True)
    model.generation_config.do_sample = False
    return model.float().train(), processor


def encode(processor, image: np.ndarray, text: str) -> Dict[str, torch.Tensor]:
    """The processor's inputs of one (image, question) prompt, generation prompt appended.

    Returns:
        dict: ``input_ids`` (1, P), ``attention_mask``, ``pixel_values``, ``image_grid_thw``
        (1, 3) and ``mm_token_type_ids`` (1, P).
    """
    messages = [dict(role='user', content=[dict(type='image'), dict(type='text', text=text)])]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    return dict(processor(text=[prompt], images=[image], return_tensors='pt',
                          return_mm_token_type_ids=True))


def answer_tokens(processor, image: np.ndarray, prompt: str,
                  answer: str) -> Dict[str, torch.Tensor]:
    """One training sequence: the prompt's inputs with ``answer`` + ``<|im_end|>`` appended.

    ``mm_token_type_ids`` is extended with zeros (text) over the answer: Qwen-VL in transformers 5
    reads it to place the M-RoPE positions.

    Returns:
        dict: ``input_ids``, ``labels`` (-100 over the prompt) and ``mm_token_type_ids``, each
        (L, ); ``pixel_values`` (patches, patch_dim) and ``image_grid_thw`` (1, 3).
    """
    tokenizer = processor.tokenizer
    inputs = encode(processor, image, prompt)
    target = torch.tensor(tokenizer(answer, add_special_tokens=False)['input_ids']
                          + [tokenizer.convert_tokens_to_ids('<|im_end|>')])
    prompt_ids = inputs['input_ids'][0]
    return dict(input_ids=torch.cat([prompt_ids, target]),
                labels=torch.cat([torch.full_like(prompt_ids, -100), target]),
                mm_token_type_ids=torch.cat([inputs['mm_token_type_ids'][0],
                                             target.new_zeros(target.shape)]),
                pixel_values=inputs['pixel_values'], image_grid_thw=inputs['image_grid_thw'])


def batch_loss(model, processor, sequences: List[Dict[str, torch.Tensor]]) -> torch.Tensor:
    """The mean cross-entropy over every answer token of a batch, in one forward.

    The sequences (:func:`answer_tokens`) are right-padded (masked, label -100), so each keeps
    its own positions; their images are concatenated along the patch axis, as the processor
    does for a batch.

    Returns:
        torch.Tensor: scalar loss.
    """
    pad = processor.tokenizer.convert_tokens_to_ids('<|endoftext|>')
    length = max(len(s['input_ids']) for s in sequences)

    def padded(key: str, value: int) -> torch.Tensor:
        return torch.stack([torch.nn.functional.pad(s[key], (0, length - len(s[key])), value=value)
                            for s in sequences])

    input_ids = padded('input_ids', pad)
    attention_mask = torch.stack([(torch.arange(length) < len(s['input_ids'])).long()
                                  for s in sequences])
    out = model(input_ids=input_ids, attention_mask=attention_mask,
                pixel_values=torch.cat([s['pixel_values'] for s in sequences]),
                image_grid_thw=torch.cat([s['image_grid_thw'] for s in sequences]),
                mm_token_type_ids=padded('mm_token_type_ids', 0), labels=padded('labels', -100))
    return out.loss


@torch.no_grad()
def evaluate(model, processor, row: ProbeRow) -> Dict[str, object]:
    """Greedy answers on the held-out set (seed ``row.seed + 10000``, the final side range).

    Returns:
        dict: ``accuracy`` and ``chance`` (percent), ``distinct_answers``, ``examples`` (up to 8
        (answer, truth) pairs).
    """
    rng = np.random.default_rng(row.seed + 10000)
    model.eval()
    answers, truths, correct = [], [], 0
    for _ in range(row.eval_size):
        image, colour, box = sample_scene(rng, row.task, row.sides)
        inputs = encode(processor, image, question(row.task, colour))
        out = model.generate(**inputs, max_new_tokens=8)
        text = processor.tokenizer.decode(out[0, inputs['input_ids'].shape[1]:],
                                          skip_special_tokens=True)
        answers.append(text)
        truths.append(truth(row.task, colour, box))
        correct += is_correct(row.task, text, colour, box)
    model.train()
    best_constant = max(truths.count(t) for t in set(truths))
    return dict(accuracy=100.0 * correct / row.eval_size,
                chance=100.0 * best_constant / row.eval_size,
                distinct_answers=len(set(answers)),
                examples=[list(pair) for pair in zip(answers, truths)][:8])


def run_row(row: ProbeRow, work_dir: str, log_every: int = 50) -> Dict[str, object]:
    """Train one row's model from scratch and evaluate it.

    Args:
        row (ProbeRow): the run.
        work_dir (str): scratch folder for the model build.
        log_every (int): print the loss every this many steps (0: never).

    Returns:
        dict: the row's settings, :func:`evaluate`'s figures, ``final_loss`` (mean of the last
        10 steps) and ``seconds``.
    """
    from transformers import get_cosine_schedule_with_warmup

    start = time.perf_counter()
    model, processor = build_model(row.model, work_dir, row.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=row.lr, weight_decay=0.0)
    scheduler = get_cosine_schedule_with_warmup(optimizer, min(WARMUP_STEPS, row.steps // 4),
                                                row.steps)
    rng = np.random.default_rng(row.seed)
    losses = []
    for step in range(row.steps):
        sides = curriculum_sides(step / row.steps, row.sides, row.start_sides)
        batch = [sample_scene(rng, row.task, sides) for _ in range(BATCH_SIZE)]
        loss = batch_loss(model, processor, [
            answer_tokens(processor, image, question(row.task, colour),
                          truth(row.task, colour, box)) for image, colour, box in batch])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if log_every and (step + 1) % log_every == 0:
            print(f'  {row.task} step {step + 1}/{row.steps} sides {sides} '
                  f'loss {np.mean(losses[-log_every:]):.3f}', flush=True)
    figures = evaluate(model, processor, row)
    return dict(dataclasses.asdict(row), **figures, final_loss=float(np.mean(losses[-10:])),
                seconds=time.perf_counter() - start)


def format_table(results: List[Dict[str, object]]) -> str:
    """mmdet's AsciiTable of the rows: task, model, sides, curriculum, steps, lr, accuracy, chance
    (percent)."""
    from terminaltables import AsciiTable

    rows = [['task', 'model', 'sides', 'curriculum from', 'steps', 'lr', 'accuracy', 'chance']]
    for r in results:
        start = r['start_sides']
        sides = 'whole image' if r['task'] == 'full_colour' else '{}-{}'.format(*r['sides'])
        rows.append([r['task'], r['model'], sides,
                     '{}-{}'.format(*start) if start else '-', r['steps'], f"{r['lr']:g}",
                     f"{r['accuracy']:.1f}", f"{r['chance']:.1f}"])
    table = AsciiTable(rows, title=' tiny vision probe (held-out accuracy, %) ')
    table.inner_footing_row_border = False
    return table.table


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='What a tiny VLM learns from pixels (issue 16)')
    parser.add_argument('--preset', default='default', choices=sorted(PRESETS),
                        help='named set of rows (ignored when --task is given)')
    parser.add_argument('--task', choices=TASKS, help='run one row of your own instead')
    parser.add_argument('--sides', type=int, nargs=2, default=(8, 28), metavar=('LOW', 'HIGH'))
    parser.add_argument('--start-sides', type=int, nargs=2, metavar=('LOW', 'HIGH'),
                        help='curriculum: the side range at step 0')
    parser.add_argument('--steps', type=int, default=200)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--model', choices=MODELS, default='locator')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--eval-size', type=int, default=32)
    parser.add_argument('--out', default='work_dirs/bench_tiny_vision_probe.json')
    parser.add_argument('--log-every', type=int, default=50)
    return parser.parse_args(argv)


def main(argv=None) -> List[Dict[str, object]]:
    args = parse_args(argv)
    torch.set_num_threads(1)
    check_writable(args.out, '--out')
    if args.task:
        rows = (ProbeRow(args.task, tuple(args.sides),
                         tuple(args.start_sides) if args.start_sides else None, args.steps,
                         args.lr, args.model, args.seed, args.eval_size), )
    else:
        rows = PRESETS[args.preset]
    results = []
    with tempfile.TemporaryDirectory(prefix='vision_probe_') as work_dir:
        for row in rows:
            result = run_row(row, work_dir, args.log_every)
            results.append(result)
            print(f"{row.task} ({row.model}, sides {row.sides}, from {row.start_sides}, "
                  f"{row.steps} steps): accuracy {result['accuracy']:.1f} % "
                  f"(chance {result['chance']:.1f} %), {result['distinct_answers']} distinct "
                  f"answers, loss {result['final_loss']:.3f}, {result['seconds']:.0f} s",
                  flush=True)
            write_json_atomic(args.out, results, indent=2)  # each row kept as soon as it is done
    print(format_table(results))
    return results


if __name__ == '__main__':
    main()
