# Copyright (c) finers_mm contributors. All rights reserved.
"""Time per GRPO iteration of our stack (mmengine Runner + GRPOHook + LocalRefiner.grpo_loss)
against trl 1.16's ``GRPOTrainer``, on the same tiny Qwen2.5-VL, prompts, images and settings.

Everything runs in ONE process on CPU (one torch thread), offline, with the tiny models built into a
temp dir (:func:`finers_mm.testing.tiny_models.build_tiny_models`).

What is the same on both sides
------------------------------
* model: the same tiny Qwen2.5-VL checkpoint (random weights), float32, sdpa, full fine-tune, no
  gradient checkpointing (trl's GRPOConfig turns it on by default: turned off here, as in
  ``lpr_tiny.py``);
* prompts and images: the first ``--prompts`` records of the bundled synthetic data through the
  LocalRefiner training pipeline (``RefinerCrop``: 512x512 crops) and
  ``LocalRefiner.build_prompts``;
  trl gets the very same crops (PIL) and prompt texts as a conversational in-memory dataset
  (``datasets.Dataset.from_list``) and the checkpoint's processor loaded the way trl loads it
  (left padding) with our adapter's pixel budget; the prompt token counts are printed for both
  sides (they match); every iteration uses all ``--prompts`` prompts;
* sampling: ``n = --num-generations`` completions per prompt, temperature 1, top_p 1, top_k 0, the
  vision placeholder tokens suppressed, and EXACTLY ``--max-new-tokens`` tokens per completion
  (``min_new_tokens = max_new_tokens`` on both sides, so EOS never ends a completion early);
* reward: the same python callable cost, our ``CompositeReward`` of the two format terms
  (``ThinkFormatReward`` + ``JsonFormatReward``) on the decoded completions (trl: wrapped as a
  reward function, the ``RewardSample`` looked up by record index);
* loss: clip 0.2, k3 KL with coefficient ``--kl-coef`` (5e-3: both sides build a frozen reference
  model and run one no-grad forward of it over all completions per iteration), entropy bonus 1e-3,
  token-mean aggregation (``loss_type='dapo'``), advantages normalised by the group std, one
  optimiser step per rollout (on-policy: neither side computes old log-probs with an extra
  forward; trl skips it when ``gradient_accumulation_steps % (steps_per_generation *
  num_iterations) == 0``, ours sets ``old_logps = logps.detach()``);
* optimiser: AdamW lr 1e-4, weight decay 1e-2, grad-norm clip 1.0, constant lr.

What one iteration is on each side (the timed span)
---------------------------------------------------
* ours: from the first ``before_train_iter`` hook to the end of ``model.train_step``, i.e.
  GRPOHook.before_train_iter (data preprocessor, processor on the B images, one batched
  ``generate`` with ``num_return_sequences=n``, decode, reward samples + reward, group advantages,
  reference log-probs) and ``train_step`` (data preprocessor, policy forward with log-probs and
  entropies, GRPO loss, backward, grad clip, AdamW step, zero_grad). Data loading (the dataloader
  decoding the 1920x1080 JPEGs and cutting the crops) happens before the span and is reported
  apart (``data``); the logging/checkpoint ``after_train_iter`` hooks come after it.
* trl: ``on_step_begin`` to ``on_step_end`` of a Trainer callback, i.e. ``training_step``
  (``_prepare_inputs``: chat template + processor on the B*n images, ``generate`` on B*n rows,
  decode, processor again for the forward inputs, reference log-probs, reward, advantages; then
  ``compute_loss`` (policy forward with fused log-probs/entropy) and backward) plus grad clip,
  optimizer step, scheduler step and zero_grad. Fetching the in-memory rows comes before the span.

What differs by design of each stack (and is timed as such)
---------------------------------------------------------
* trl repeats every prompt n times in its dataloader and runs the chat template and the processor
  on all B*n images twice per step (once to tokenize for ``generate``, once for the forward
  inputs); ours runs the processor once on the B images and repeats the tensors;
* trl 1.16 always patches the model with its chunked "fused LM head" (``add_fused_lm_head``) to
  get log-probs and entropies without materialising the logits; ours computes the (B*n, T, V)
  logits and applies trl's ``selective_log_softmax(_and_entropy)``;
* small loss details (ours clamps k3 at 10, advantage eps 1e-6 vs trl's 1e-4): no cost.

How it is timed
---------------
The two sides run in lock-step in one process: ours in the main thread (``runner.train()``), trl's
``trainer.train()`` in a second thread, one iteration each in turn (ours, trl, ours, trl, ...),
the side not on turn blocked on a condition variable, so they never run at the same time and a
change of machine load hits both iterations of a pair alike (this box is shared). The first
``--warmup`` iterations of each side are dropped; the median and mean of the next ``--iters`` are
printed with a breakdown, the ratio ours / trl of the medians and of each adjacent pair (target:
<= 1.0). ``--profile`` adds a cProfile of the timed iterations of each side.

    python benchmarks/bench_grpo_vs_trl.py [--prompts 4] [--num-generations 4] \
        [--max-new-tokens 32] [--warmup 2] [--iters 8] [--kl-coef 5e-3] [--profile]
"""
import argparse
import cProfile
import io
import os
import os.path as osp
import pstats
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')
os.environ.setdefault('WANDB_DISABLED', 'true')

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from mmengine.config import Config  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from finers_mm.rl.rewards import CompositeReward  # noqa: E402
from finers_mm.testing.tiny_models import build_tiny_models  # noqa: E402

BUNDLED = osp.join(REPO_ROOT, 'finers_mm', 'data', 'synthetic') + '/'
#: the reward of both sides: the authors' two format terms (text only)
FORMAT_REWARD = dict(type='CompositeReward',
                     terms=[dict(type='ThinkFormatReward'), dict(type='JsonFormatReward')])
ENTROPY_COEF = 1e-3
LR, WEIGHT_DECAY, MAX_GRAD_NORM, CLIP_EPS = 1e-4, 1e-2, 1.0, 0.2


class Timer:
    """Wall time per name within one iteration; ``rows`` holds one dict per iteration."""

    def __init__(self):
        self.rows, self.current, self._start = [], defaultdict(float), None

    def begin(self):
        self.current = defaultdict(float)
        self._start = time.perf_counter()

    def end(self):
        self.current['total'] = time.perf_counter() - self._start
        self.rows.append(dict(self.current))

    def add(self, name, seconds):
        self.current[name] += seconds

    def wrap(self, obj, name, label=None):
        """Replace ``obj.name`` (an instance method) by a timed version."""
        fn = getattr(obj, name)
        label = label or name

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter() - start)

        setattr(obj, name, timed)
        return fn


class LockStep:
    """Runs the two sides strictly in turn, one iteration each (ours, trl, ours, trl, ...).

    Ours runs in the main thread, trl's ``train()`` in a second thread; whichever side is not on
    turn is blocked on a condition variable (holding no lock, using no CPU), so the two never run
    at once, and a change of machine load hits both sides of a pair alike. ``'done'`` lets both
    run (after trl's last step).
    """

    def __init__(self):
        self.turn = 'ours'
        self.cond = threading.Condition()

    def wait_for(self, side):
        with self.cond:
            self.cond.wait_for(lambda: self.turn in (side, 'done'))

    def hand_to(self, side):
        with self.cond:
            self.turn = side
            self.cond.notify_all()


class IterSpanHook(Hook):
    """Registered with priority HIGHEST: ``before_train_iter`` runs first (before GRPOHook's
    rollout) and ``after_train_iter`` right after ``model.train_step`` (before the log hooks).
    After its iteration it hands the turn to trl and waits for it to finish one step."""

    def __init__(self, timer, lockstep, profiler=None, profile_from=None):
        self.timer, self.lockstep = timer, lockstep
        self.profiler, self.profile_from = profiler, profile_from

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.lockstep.wait_for('ours')
        self.timer.begin()
        if self.profiler is not None and runner.iter >= self.profile_from:
            self.profiler.enable()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.end_iteration(runner)
        self.lockstep.hand_to('trl')
        self.lockstep.wait_for('ours')

    def end_iteration(self, runner):
        """Close the iteration's span and add the hook's logged times to its row."""
        if self.profiler is not None:
            self.profiler.disable()
        self.timer.end()
        hub = runner.message_hub
        row = self.timer.rows[-1]
        row['data'] = hub.get_scalar('train/data_time').current()
        row['generate'] = hub.get_scalar('train/rollout_time').current()
        row['reference'] = hub.get_scalar('train/reference_time').current()
        row['completion_length'] = hub.get_scalar('train/completion_length').current()
        return row


# ------------------------------------------------------------------------------------------------
# ours
# ------------------------------------------------------------------------------------------------

def build_runner(args, tiny, work_dir, config='lpr_tiny.py', vlm=None, max_iters=None):
    """An mmengine Runner of ``configs/finers/<config>`` with the benchmark's settings.

    Args:
        args (argparse.Namespace): ``prompts``, ``num_generations``, ``max_new_tokens``,
            ``kl_coef``, ``warmup``, ``iters``.
        tiny (dict): paths of the tiny models.
        work_dir (str): the runner's work dir.
        config (str): the stage's config under configs/finers/ (``lpr_tiny.py``, ``gse_tiny.py``).
        vlm (dict, optional): further ``model.vlm`` settings (e.g. ``min_pixels``/``max_pixels``).
        max_iters (int, optional): iterations to run. Defaults to ``warmup + iters``.
    """
    init_default_scope('finers_mm')
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'finers', config))
    max_new = args.max_new_tokens
    cfg.merge_from_dict({f'model.vlm.{key}': value for key, value in (vlm or {}).items()})
    cfg.merge_from_dict({
        'model.vlm.pretrained': tiny['qwen2_5_vl'],
        'model.vlm.generation': dict(max_new_tokens=max_new, min_new_tokens=max_new),
        'model.grpo_loss': dict(clip_eps=CLIP_EPS, kl_coef=args.kl_coef, kl_clamp=10.0,
                                entropy_coef=ENTROPY_COEF, loss_type='dapo'),
        'train_dataloader.batch_size': args.prompts,
        'train_dataloader.dataset.data_root': BUNDLED,
        'train_dataloader.dataset.indices': args.prompts,
        # every iteration is one epoch of the --prompts records: mmengine's DefaultSampler would
        # sleep 2 s at each epoch end (_InfiniteDataloaderIterator); InfiniteSampler does not
        'train_dataloader.sampler': dict(_delete_=True, type='InfiniteSampler', shuffle=True),
        'optim_wrapper.optimizer': dict(type='AdamW', lr=LR, weight_decay=WEIGHT_DECAY),
        'optim_wrapper.clip_grad': dict(max_norm=MAX_GRAD_NORM),
        'train_cfg.max_iters': max_iters or args.warmup + args.iters,
        'train_cfg.val_interval': 10**9,
        'default_hooks.logger.interval': 10**9,
        'default_hooks.checkpoint.interval': 10**9,
        'default_hooks.checkpoint.save_last': False,
        'work_dir': work_dir,
        'randomness': dict(seed=0),
        'log_level': 'WARNING',
    })
    cfg.custom_hooks = [dict(type='GRPOHook', reward=FORMAT_REWARD,
                             num_generations=args.num_generations, temperature=1.0, top_p=1.0,
                             max_new_tokens=max_new, reference_micro_batch=args.prompts
                             * args.num_generations)]
    cfg.auto_scale_lr = dict(enable=False, base_batch_size=args.prompts)
    return Runner.from_cfg(cfg)


def shared_inputs(runner, args):
    """The refiner crops, prompts and reward samples of the first ``--prompts`` records, the way
    LocalRefiner builds them in training (dataset pipeline, data preprocessor, ``views``)."""
    model = runner.model
    dataset = runner.train_dataloader.dataset
    batch = pseudo_collate([dataset[i] for i in range(args.prompts)])
    data = model.data_preprocessor(batch, True)
    samples = data['data_samples']
    views = model.views(data['inputs'], samples)
    return [dict(index=i, view=np.ascontiguousarray(view), prompt=prompt,
                 reward_sample=model.reward_sample(sample, view))
            for i, (sample, view, prompt) in enumerate(
                zip(samples, views, model.build_prompts(samples, views)))]


def prepare_ours(runner, args, lockstep, profile=False, span_hook=None):
    """Add the iteration span (``span_hook``: an :class:`IterSpanHook` class, this one by
    default) and the breakdown timers to the runner."""
    timer = Timer()
    profiler = cProfile.Profile() if profile else None
    runner.register_hook((span_hook or IterSpanHook)(timer, lockstep, profiler,
                                                     profile_from=args.warmup),
                         priority='HIGHEST')
    # breakdown (instance-level wrappers: a few microseconds each)
    [hook] = [h for h in runner.hooks if type(h).__name__ == 'GRPOHook']
    timer.wrap(hook, 'before_train_iter', 'rollout')
    timer.wrap(runner.model.vlm.model, 'generate', 'hf_generate')
    timer.wrap(runner.model, 'train_step', 'loss_update')
    timer.wrap(runner.model, 'grpo_loss', 'loss_forward')
    hook.reward = TimedReward(hook.reward, timer)
    return timer, profiler


class TimedReward:
    """The hook's reward with its calls timed (``requires`` passed through)."""

    def __init__(self, reward, timer):
        self.reward, self.timer = reward, timer
        self.requires = reward.requires

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.reward(*args, **kwargs)
        finally:
            self.timer.add('reward', time.perf_counter() - start)


# ------------------------------------------------------------------------------------------------
# trl
# ------------------------------------------------------------------------------------------------

def build_trl(args, tiny, records, ours_processor, work_dir, lockstep, profile=False):
    """trl's GRPOTrainer with the same model, data and settings, its steps in lock-step with ours.

    Returns:
        tuple: the trainer, its Timer, the profiler (or None) and a dict of the prompt and
        completion lengths it saw.
    """
    from datasets import Dataset
    from PIL import Image
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration, TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    from finers_mm.models.vlm.loading import VISION_TOKEN_ID_KEYS

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        tiny['qwen2_5_vl'], local_files_only=True, dtype=torch.float32,
        attn_implementation='sdpa')
    # the processor as trl loads it itself (left padding: trl pads its second, forward-pass
    # processor call with the tokenizer's side), with our adapter's pixel budget
    processor = AutoProcessor.from_pretrained(tiny['qwen2_5_vl'], local_files_only=True,
                                              truncation_side='left', padding_side='left')
    processor.image_processor.size = ours_processor.image_processor.size
    vision_tokens = [getattr(model.config, key) for key in VISION_TOKEN_ID_KEYS
                     if getattr(model.config, key, None) is not None]
    dataset = Dataset.from_list([
        dict(prompt=[dict(role='user', content=r['prompt'])], image=Image.fromarray(r['view']),
             index=r['index']) for r in records])
    reward_samples = {r['index']: r['reward_sample'] for r in records}
    composite = CompositeReward(FORMAT_REWARD['terms'])

    def format_reward(prompts, completions, index, **kwargs):
        texts = [c[0]['content'] for c in completions]
        return composite(texts, [reward_samples[i] for i in index]).total.tolist()

    n, max_new = args.num_generations, args.max_new_tokens
    max_steps = args.warmup + args.iters
    config = GRPOConfig(
        output_dir=work_dir, report_to='none', save_strategy='no', logging_strategy='no',
        use_cpu=True, bf16=False, fp16=False, gradient_checkpointing=False, seed=0,
        per_device_train_batch_size=args.prompts * n, gradient_accumulation_steps=1,
        num_generations=n, max_completion_length=max_new, temperature=1.0, top_p=1.0, top_k=0,
        generation_kwargs=dict(min_new_tokens=max_new, suppress_tokens=vision_tokens),
        beta=args.kl_coef, epsilon=CLIP_EPS, loss_type='dapo', entropy_coef=ENTROPY_COEF,
        scale_rewards='group', num_iterations=1, use_vllm=False,
        learning_rate=LR, weight_decay=WEIGHT_DECAY, max_grad_norm=MAX_GRAD_NORM,
        lr_scheduler_type='constant', warmup_steps=0, optim='adamw_torch',
        max_steps=max_steps, dataloader_num_workers=0,
        remove_unused_columns=False, log_completions=False, disable_tqdm=True)
    timer = Timer()
    profiler = cProfile.Profile() if profile else None

    class StepSpan(TrainerCallback):
        def on_step_begin(self, unused_args, state, control, **kwargs):
            lockstep.wait_for('trl')
            assert torch.get_num_threads() == 1, torch.get_num_threads()
            timer.begin()
            if profiler is not None and state.global_step >= args.warmup:
                profiler.enable()

        def on_step_end(self, unused_args, state, control, **kwargs):
            if profiler is not None:
                profiler.disable()
            timer.end()
            if state.global_step >= max_steps:  # trl's last step: let both sides finish
                lockstep.hand_to('done')
            else:
                lockstep.hand_to('ours')
                lockstep.wait_for('trl')

    trainer = GRPOTrainer(model=model, reward_funcs=[format_reward], args=config,
                          train_dataset=dataset, processing_class=processor,
                          callbacks=[StepSpan()])
    trainer.remove_callback(PrinterCallback)
    # breakdown (instance-level wrappers: a few microseconds each)
    timer.wrap(trainer, '_generate_and_score_completions', 'rollout')
    timer.wrap(trainer.model, 'generate', 'hf_generate')
    timer.wrap(trainer, '_calculate_rewards', 'reward')
    timer.wrap(trainer, 'compute_loss', 'loss_forward')
    seen = dict(prompt_lengths=set(), completion_lengths=set())
    tokenize, generate = trainer._tokenize_prompts, trainer._generate_single_turn

    def tokenize_and_record(prompts):
        out = tokenize(prompts)
        seen['prompt_lengths'].update(len(ids) for ids in out[0])
        return out

    def generate_and_record(*a, **kw):
        start = time.perf_counter()
        out = generate(*a, **kw)
        timer.add('generate', time.perf_counter() - start)
        seen['completion_lengths'].update(len(ids) for ids in out[0])
        return out

    trainer._tokenize_prompts = tokenize_and_record
    trainer._generate_single_turn = generate_and_record
    logps = trainer._get_per_token_logps_and_entropies

    def timed_logps(model, *a, **kw):  # the reference forward is the call on ref_model
        start = time.perf_counter()
        try:
            return logps(model, *a, **kw)
        finally:
            if model is trainer.ref_model:
                timer.add('reference', time.perf_counter() - start)

    trainer._get_per_token_logps_and_entropies = timed_logps
    return trainer, timer, profiler, seen


def train_trl_in_thread(trainer, lockstep):
    """trl's ``train()`` in a second thread, started on its first turn; returns the thread."""
    errors = []

    def target():
        torch.set_num_threads(1)
        try:
            lockstep.wait_for('trl')
            trainer.train()
        except BaseException as error:  # report it in the main thread, and never block ours
            errors.append(error)
            lockstep.hand_to('done')

    thread = threading.Thread(target=target, name='trl', daemon=True)
    thread.errors = errors
    thread.start()
    return thread


# ------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------

def summary(rows, key):
    values = [row.get(key, 0.0) * 1000 for row in rows]
    return statistics.median(values), statistics.fmean(values)


def print_side(name, rows, keys):
    median, mean = summary(rows, 'total')
    parts = ', '.join(f'{k} {summary(rows, k)[0]:.0f}' for k in keys)
    print(f'{name:5s} ms/iteration: median {median:8.1f}  mean {mean:8.1f}   '
          f'(medians, ms: {parts})')
    return median


def print_profile(name, profiler, top):
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats('cumulative').print_stats(top)
    print(f'\n--- cProfile of {name} (measured iterations, cumulative) ---')
    print('\n'.join(stream.getvalue().splitlines()[:top + 12]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--prompts', type=int, default=4)
    parser.add_argument('--num-generations', type=int, default=4)
    parser.add_argument('--max-new-tokens', type=int, default=32)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--iters', type=int, default=8)
    parser.add_argument('--kl-coef', type=float, default=5e-3)
    parser.add_argument('--profile', action='store_true', help='cProfile the timed iterations')
    parser.add_argument('--profile-top', type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import transformers
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()

    with tempfile.TemporaryDirectory() as tmp:
        tiny = build_tiny_models(osp.join(tmp, 'tiny_models'), seed=0)
        lockstep = LockStep()
        runner = build_runner(args, tiny, osp.join(tmp, 'ours'))
        records = shared_inputs(runner, args)
        vlm = runner.model.vlm
        ours_prompt_lengths = sorted(
            int(vlm.build_inputs([r['view']], [r['prompt']])['input_ids'].shape[1])
            for r in records)
        trainer, trl_timer, trl_profiler, trl_seen = build_trl(
            args, tiny, records, vlm.processor, osp.join(tmp, 'trl'), lockstep, args.profile)
        ours_timer, ours_profiler = prepare_ours(runner, args, lockstep, args.profile)

        thread = train_trl_in_thread(trainer, lockstep)
        runner.train()
        thread.join()
        if thread.errors:
            raise thread.errors[0]
        assert torch.get_num_threads() == 1, torch.get_num_threads()

    ours_rows, trl_rows = ours_timer.rows[args.warmup:], trl_timer.rows[args.warmup:]
    n, b, t = args.num_generations, args.prompts, args.max_new_tokens
    print(f'\nGRPO iteration, tiny Qwen2.5-VL on CPU (1 torch thread), one process: {b} prompts x '
          f'{n} generations x {t} completion tokens; KL coef {args.kl_coef} (frozen reference '
          f'model on both sides), entropy {ENTROPY_COEF}, loss_type dapo, full fine-tune, AdamW; '
          f'{args.warmup} warm-up + {args.iters} timed iterations per side, run alternately '
          '(ours, trl, ours, trl, ...)')
    ours_lengths = sorted({int(r['completion_length']) for r in ours_rows})
    print(f'completion lengths: ours {ours_lengths}, trl {sorted(trl_seen["completion_lengths"])}; '
          f'prompt lengths (tokens): ours {ours_prompt_lengths}, '
          f'trl {sorted(trl_seen["prompt_lengths"])}')
    ours = print_side('ours', ours_rows, ['rollout', 'generate', 'hf_generate', 'reference',
                                          'reward', 'loss_update', 'loss_forward', 'data'])
    theirs = print_side('trl', trl_rows, ['rollout', 'generate', 'hf_generate', 'reference',
                                          'reward', 'loss_forward'])
    print('  ours: total = GRPOHook.before_train_iter (rollout) + model.train_step (loss_update); '
          'rollout = processor + generate + decode (generate; hf_generate: model.generate '
          'alone) + reward + reference forward; loss_update = data preprocessor + policy forward '
          'and loss (loss_forward) + backward + clip + AdamW step; data = dataloader time before '
          'the span (not in total)')
    print('  trl:  total = training_step + clip + optimizer/scheduler step; rollout = '
          '_generate_and_score_completions: chat template and processor (twice) + generate '
          '(_generate_single_turn; hf_generate: model.generate alone) + decode + reference '
          'forward + reward; loss_forward = compute_loss (policy forward and loss); the rest is '
          'backward, clip and the optimizer step')
    ratios = [o['total'] / r['total'] for o, r in zip(ours_rows, trl_rows)]
    print(f'ratio ours/trl: {ours / theirs:.3f} (medians); per pair of adjacent iterations: '
          f'median {statistics.median(ratios):.3f}, min {min(ratios):.3f}, max {max(ratios):.3f} '
          '(target <= 1.0)')
    for name, profiler in (('ours', ours_profiler), ('trl', trl_profiler)):
        if profiler is not None:
            print_profile(name, profiler, args.profile_top)


if __name__ == '__main__':
    main()
