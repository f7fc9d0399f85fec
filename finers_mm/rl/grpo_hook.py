# Copyright (c) finers_mm contributors. All rights reserved.
"""GRPOHook: turns an ordinary mmengine training run of a FineRS stage into GRPO."""
import logging
import os.path as osp
import time
from typing import Optional

import numpy as np
import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from finers_mm.models.losses import group_advantages
from finers_mm.registry import HOOKS, REWARDS
from .rollout import Rollout

DATA_BATCH = Optional[dict]
#: the checkpoint meta key recording where a full fine-tune's KL reference came from
REFERENCE_META_KEY = 'grpo_reference'
_UNKNOWN = object()


@HOOKS.register_module()
class GRPOHook(Hook):
    """Before each training iteration: sample, score, normalise, and hand the loss a rollout.

    For the batch of prompts the dataloader gives (one per sample of the stage's training view), the
    hook samples ``num_generations`` completions per prompt in one batched generate, scores them
    with the composite ``reward``, computes group advantages and, for the KL term, the reference
    policy's log-probs (the LoRA adapter disabled, or a frozen copy of the initial weights for a
    full fine-tune), and puts a :class:`~finers_mm.rl.Rollout` into the batch under ``'rollout'``.
    The stage's ``loss`` (``train_mode='grpo'``) turns it into the GRPO loss; mmengine's optimiser
    wrapper, schedulers, checkpointing and DDP do the rest. The policy is updated once per rollout
    (on-policy), so the old policy is the current one (``old_logps`` None). Sampling is seeded
    from the run's seed, the iteration and the rank, so a resumed run repeats an uninterrupted one.

    Logged each iteration (``train/`` scalars): ``reward`` (mean) and ``reward_std``, the mean of
    every reward term (``reward/<name>``), ``invalid_rate``, ``completion_length``,
    ``rollout_time``, ``reference_time`` and ``update_time``; the loss adds ``kl``, ``clip_fraction`` and
    ``entropy``.

    Before training it refuses data that cannot feed the reward: a term that ``requires``
    ``target_region`` (the retrospective terms) on records without ``best_region`` raises, naming
    the annotation file and the fix (the authors' release silently trained with those terms at 0).

    Args:
        reward (dict): config of the reward, e.g. ``dict(type='CompositeReward', terms=[...])``.
        num_generations (int): samples per prompt (8 in the paper).
        temperature (float): sampling temperature (1.0 in the paper).
        top_p (float): nucleus sampling (1.0 in the paper).
        max_new_tokens (int, optional): completion budget of the rollout; None keeps the VLM's.
        scale_rewards (bool): divide by the group std (GRPO) or only centre (Dr. GRPO).
        reference_micro_batch (int): completions per forward when computing reference log-probs.
    """

    priority = 'NORMAL'

    def __init__(self, reward: dict, num_generations: int = 8, temperature: float = 1.0,
                 top_p: float = 1.0, max_new_tokens: Optional[int] = None,
                 scale_rewards: bool = True, reference_micro_batch: int = 16) -> None:
        if num_generations < 2:
            raise ValueError(f'GRPO needs at least 2 generations per prompt, got {num_generations}')
        self.reward = REWARDS.build(reward)
        self.num_generations = int(num_generations)
        self.sampling = dict(do_sample=True, temperature=float(temperature), top_p=float(top_p),
                             num_return_sequences=self.num_generations)
        if max_new_tokens is not None:
            self.sampling['max_new_tokens'] = int(max_new_tokens)
        self.scale_rewards = scale_rewards
        self.reference_micro_batch = int(reference_micro_batch)
        self.reference = None
        self._reference_origin = _UNKNOWN  # the load_from checkpoint, None: `pretrained`
        self._loaded_origin = _UNKNOWN  # what the last loaded checkpoint recorded
        self._update_start = 0.0

    @staticmethod
    def _stage(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if getattr(model, 'train_mode', None) != 'grpo':
            raise RuntimeError(f'GRPOHook trains a FineRS stage with train_mode="grpo"; got '
                               f'{type(model).__name__} (train_mode '
                               f'{getattr(model, "train_mode", None)!r})')
        return model

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Remember where the reference of the run that saved ``checkpoint`` came from.

        mmengine calls this for ``load_from`` and for a resume, both before ``before_train``.
        """
        self._loaded_origin = checkpoint.get('meta', {}).get(REFERENCE_META_KEY, _UNKNOWN)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Record the reference's origin in the checkpoint's meta (not its weights: see
        :meth:`before_train`), so that a resumed run rebuilds the same reference."""
        if self._reference_origin is not _UNKNOWN:
            checkpoint.setdefault('meta', {})[REFERENCE_META_KEY] = self._reference_origin

    def before_train(self, runner) -> None:
        """Check that the data can feed every reward term; build the frozen reference if needed.

        The reference of a full fine-tune is the policy as training starts: a frozen copy of the
        stage's VLM after mmengine loaded ``load_from`` (which happens before this hook), so an SFT
        warm-up loaded with ``load_from`` is the reference, not the config's ``pretrained`` model.
        A resumed run must keep the reference of the run it resumes, not copy the resumed policy:
        the checkpoints record the reference's origin (``meta['grpo_reference']``: the ``load_from``
        checkpoint the run started from, or None for the ``pretrained`` model), and a resumed run
        rebuilds the reference from it. A checkpoint saved before this record existed resumes with
        the ``pretrained`` model as the reference (the behaviour of those runs).
        """
        model = self._stage(runner)
        self._check_data(runner.train_dataloader.dataset)
        if not model.loss_grpo.uses_reference or model.vlm.use_lora:
            return
        if self._resumed(runner):
            origin = self._loaded_origin
            if origin is _UNKNOWN:
                print_log('GRPOHook: the resumed checkpoint does not record the reference policy '
                          f'(meta[{REFERENCE_META_KEY!r}]); using the pretrained model '
                          f'{model.vlm.pretrained!r} as the reference', logger='current',
                          level=logging.WARNING)
                origin = None
            elif origin is not None and not osp.exists(origin) and '://' not in origin:
                raise FileNotFoundError(
                    f'GRPOHook: the resumed run started from load_from={origin!r}, its KL '
                    'reference, which no longer exists; restore it to resume this run')
            source = 'pretrained' if origin is None else origin
            print_log(f'GRPOHook: resumed run: rebuilding the frozen reference policy from '
                      f'{model.vlm.pretrained if origin is None else origin!r}', logger='current')
        else:
            load_from = (getattr(runner, '_load_from', None)
                         if getattr(runner, '_has_loaded', False) else None)
            origin = None if load_from is None else (
                osp.abspath(load_from) if osp.exists(load_from) else str(load_from))
            source = 'policy'
            print_log('GRPOHook: full fine-tune with a KL term: a frozen copy of the initial '
                      f'policy ({model.vlm.pretrained if origin is None else origin!r}) is the '
                      'reference',
                      logger='current')
        self._reference_origin = origin
        self.reference = model.build_reference(source)

    def _resumed(self, runner) -> bool:
        """Whether this run resumed a checkpoint (rather than starting, maybe from load_from)."""
        loaded = getattr(runner, '_has_loaded', False)
        return bool(loaded and getattr(runner, '_resume', False)) or runner.iter > 0

    def _check_data(self, dataset) -> None:
        """Refuse records without ``best_region`` when a term needs the retrospective target."""
        if 'target_region' not in self.reward.requires:
            return
        dataset = getattr(dataset, 'dataset', dataset)  # through mmengine's dataset wrappers
        dataset.full_init()
        missing = [i for i in range(len(dataset))
                   if dataset.get_data_info(i).get('best_region') is None]
        if missing:
            raise RuntimeError(
                f'{len(missing)} of {len(dataset)} training records in '
                f'{getattr(dataset, "ann_file", "the dataset")} have no best_region, but the reward '
                'terms need it (the locate-informed retrospective reward). Run '
                'tools/search_best_region.py with the trained refiner first, or remove the terms '
                'that require target_region from the reward.')

    def before_train_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        """Sample and score this iteration's completions; put the rollout into ``data_batch``."""
        model = self._stage(runner)
        data = model.data_preprocessor(data_batch, True)
        samples = data['data_samples']
        views = model.views(data['inputs'], samples)
        torch.manual_seed(self._rollout_seed(runner))
        start = time.perf_counter()
        generation = model.vlm.generate(views, model.build_prompts(samples, views), **self.sampling)
        rollout_time = time.perf_counter() - start

        with_mask = 'gt_mask' in self.reward.requires
        reward_samples = [model.reward_sample(sample, view, with_mask=with_mask)
                          for sample, view in zip(samples, views)
                          for _ in range(self.num_generations)]
        scored = self.reward(generation.texts, reward_samples)
        rewards = torch.as_tensor(scored.total, dtype=torch.float32)
        advantages = group_advantages(rewards, self.num_generations,
                                      scale_by_std=self.scale_rewards)

        start = time.perf_counter()
        ref_logps = None
        if model.loss_grpo.uses_reference:
            ref_logps = self._reference_logps(model, generation)
        reference_time = time.perf_counter() - start

        data_batch['rollout'] = Rollout(
            prompt_inputs=generation.prompt_inputs, completion_ids=generation.completion_ids,
            completion_mask=generation.completion_mask, advantages=advantages,
            ref_logps=ref_logps, old_logps=None, rewards=scored.total,
            reward_terms=scored.terms, invalid=scored.invalid,
            num_generations=self.num_generations, temperature=self.sampling['temperature'],
            max_completion_length=self.sampling.get('max_new_tokens',
                                                    model.vlm.generation['max_new_tokens']))
        self._log(runner, scored, generation.completion_mask, rollout_time, reference_time)
        self._update_start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        """Log the time of the policy update (the loss, backward and optimiser step)."""
        runner.message_hub.update_scalar('train/update_time',
                                         time.perf_counter() - self._update_start)

    @staticmethod
    def _rollout_seed(runner) -> int:
        """The sampling seed of this iteration and rank: a function of the run's seed, the
        iteration and the rank only, so a resumed run samples what an uninterrupted one would."""
        base = runner.seed if runner.seed is not None else 0
        return (base + 1_000_003 * runner.iter * get_world_size() + get_rank()) % (2**31 - 1)

    @torch.no_grad()
    def _reference_logps(self, model, generation) -> torch.Tensor:
        """Reference log-probs of the completions, ``reference_micro_batch`` prompts' worth at a
        time (prompt-major rows, so a chunk of prompts is a contiguous block of rows)."""
        n = self.num_generations
        prompts = generation.prompt_inputs['input_ids'].shape[0]
        per_chunk = max(1, self.reference_micro_batch // n)
        chunks = []
        for first in range(0, prompts, per_chunk):
            rows = slice(first * n, min(prompts, first + per_chunk) * n)
            prompt_inputs = model.vlm.select_prompts(generation.prompt_inputs, first,
                                                     min(prompts, first + per_chunk))
            args = (prompt_inputs, generation.completion_ids[rows],
                    generation.completion_mask[rows], self.sampling['temperature'])
            if self.reference is not None:
                chunks.append(self.reference.completion_logprobs(*args))
            else:
                with model.vlm.reference_policy():
                    chunks.append(model.vlm.completion_logprobs(*args))
        return torch.cat(chunks)

    def _log(self, runner, scored, completion_mask, rollout_time, reference_time) -> None:
        """Reward statistics and timings as ``train/`` scalars of the message hub."""
        hub = runner.message_hub
        hub.update_scalar('train/reward', float(np.mean(scored.total)))
        hub.update_scalar('train/reward_std', float(np.std(scored.total)))
        for name, values in scored.terms.items():
            hub.update_scalar(f'train/reward/{name}', float(np.mean(values)))
        hub.update_scalar('train/invalid_rate', float(np.mean(scored.invalid)))
        hub.update_scalar('train/completion_length',
                          float(completion_mask.sum(dim=1).float().mean()))
        hub.update_scalar('train/rollout_time', rollout_time)
        hub.update_scalar('train/reference_time', reference_time)

