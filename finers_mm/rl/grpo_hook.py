# Copyright (c) finers_mm contributors. All rights reserved.
"""GRPOHook: turns an ordinary mmengine training run of a FineRS stage into GRPO."""
import time
from typing import Optional

import numpy as np
import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from finers_mm.models.data_preprocessor import FineRSDataPreprocessor
from finers_mm.models.losses import group_advantages
from finers_mm.models.vlm import BaseVLMAdapter
from finers_mm.models.vlm.sharding import gathered_for_generation
from finers_mm.registry import HOOKS, REWARDS, TASK_UTILS
from .data_checks import check_reward_data
from .reference import ReferencePolicy
from .rewards import RewardResult
from .rollout import Rollout

DATA_BATCH = Optional[dict]


def rollout_seed(seed: Optional[int], iteration: int, rank: int, world_size: int) -> int:
    """The sampling seed of one rollout: a function of the run's seed, the iteration and the
    rank only, so a resumed run samples what an uninterrupted one would.

    Args:
        seed (int, optional): the run's seed (None: 0).
        iteration (int): the training iteration.
        rank (int): this process's rank.
        world_size (int): the number of processes.

    Returns:
        int: a seed in ``[0, 2**31 - 1)``, distinct for every (iteration, rank) of a run.
    """
    base = seed if seed is not None else 0
    return (base + 1_000_003 * iteration * world_size + rank) % (2**31 - 1)


def _optimizer_stepped(optim_wrapper) -> bool:
    """Whether the iteration that just ended stepped the optimiser: mmengine's wrapper steps when
    ``should_update()`` holds after it counted the iteration; a wrapper without gradient
    accumulation of its own (DeepSpeed's, which accumulates inside the engine) is taken to step
    every iteration."""
    should_update = getattr(optim_wrapper, 'should_update', None)
    return should_update() if callable(should_update) else True


@HOOKS.register_module()
class GRPOHook(Hook):
    """Before each training iteration: sample, score, normalise, and hand the loss a rollout.

    For the batch of prompts the dataloader gives (one per sample of the stage's training view), the
    hook samples ``num_generations`` completions per prompt in one batched generate of its
    ``rollout_engine`` (:mod:`finers_mm.models.vlm.engines`: the policy's own Hugging Face
    generate by default, or vLLM colocated on the GPU, whose weights are pushed after every
    optimiser step; either returns the same result for the same rewards), scores them
    with the composite ``reward``, computes group advantages and, for the KL term, the reference
    policy's log-probs (:class:`~finers_mm.rl.reference.ReferencePolicy`: the LoRA adapter
    disabled, or a frozen copy of the initial weights for a full fine-tune, kept across resumes),
    and puts a :class:`~finers_mm.rl.Rollout` into the batch under ``'rollout'``. The batch is
    preprocessed once: the hook hands the preprocessed batch on to the model's ``train_step``
    (:meth:`~finers_mm.models.FineRSDataPreprocessor.hand_on`). The stage's ``loss``
    (``train_mode='grpo'``) turns the rollout into the GRPO loss; mmengine's optimiser wrapper,
    schedulers, checkpointing and DDP do the rest. The policy is updated once per rollout
    (on-policy), so the old policy is the current one (``old_logps`` None). Sampling is seeded
    from the run's seed, the iteration and the rank, so a resumed run repeats an uninterrupted one.

    Logged each iteration (``train/`` scalars): ``reward`` (mean) and ``reward_std``, the mean of
    every reward term (``reward/<name>``), ``invalid_rate``, ``completion_length``,
    ``rollout_time``, ``reference_time`` and ``update_time``; the loss adds ``kl``,
    ``clip_fraction`` and ``entropy``.

    Before training it refuses data that cannot feed the reward
    (:func:`~finers_mm.rl.data_checks.check_reward_data`).

    Args:
        reward (dict): config of the reward, e.g. ``dict(type='CompositeReward', terms=[...])``.
        num_generations (int): samples per prompt (8 in the paper).
        temperature (float): sampling temperature (1.0 in the paper).
        top_p (float): nucleus sampling (1.0 in the paper).
        max_new_tokens (int, optional): completion budget of the rollout; None keeps the VLM's.
        scale_rewards (bool): divide by the group std (GRPO) or only centre (Dr. GRPO).
        reference_micro_batch (int): completions per forward when computing reference log-probs.
        rollout_engine (dict, optional): config of the engine that samples, from ``TASK_UTILS``
            (``'HFRolloutEngine'``, ``'VLLMRolloutEngine'``); None: ``HFRolloutEngine``.
    """

    priority = 'NORMAL'

    def __init__(self, reward: dict, num_generations: int = 8, temperature: float = 1.0,
                 top_p: float = 1.0, max_new_tokens: Optional[int] = None,
                 scale_rewards: bool = True, reference_micro_batch: int = 16,
                 rollout_engine: Optional[dict] = None) -> None:
        if num_generations < 2:
            raise ValueError(f'GRPO needs at least 2 generations per prompt, got {num_generations}')
        self.reward = REWARDS.build(reward)
        self.num_generations = int(num_generations)
        self.sampling = dict(do_sample=True, temperature=float(temperature), top_p=float(top_p),
                             num_return_sequences=self.num_generations)
        if max_new_tokens is not None:
            self.sampling['max_new_tokens'] = int(max_new_tokens)
        self.scale_rewards = scale_rewards
        self.reference_policy = ReferencePolicy(micro_batch=reference_micro_batch)
        self.rollout_engine = TASK_UTILS.build(rollout_engine or dict(type='HFRolloutEngine'))
        self._update_start = 0.0

    @property
    def reference(self) -> Optional[BaseVLMAdapter]:
        """The frozen reference adapter of a full fine-tune; None when the LoRA-disabled policy
        is the reference, or without a KL term."""
        return self.reference_policy.frozen

    @staticmethod
    def _stage(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if getattr(model, 'train_mode', None) != 'grpo':
            raise RuntimeError(f'GRPOHook trains a FineRS stage with train_mode="grpo"; got '
                               f'{type(model).__name__} (train_mode '
                               f'{getattr(model, "train_mode", None)!r})')
        return model

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Let the reference policy read the loaded checkpoint's record of its origin."""
        self.reference_policy.after_load_checkpoint(runner, checkpoint)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Let the reference policy record its origin in the checkpoint's meta."""
        self.reference_policy.before_save_checkpoint(runner, checkpoint)

    def before_train(self, runner) -> None:
        """Check that the data can feed every reward term; set the reference policy and the
        rollout engine up."""
        model = self._stage(runner)
        check_reward_data(self.reward, runner.train_dataloader.dataset)
        self.reference_policy.setup(runner, model)
        self.rollout_engine.setup(model.vlm, seed=runner.seed or 0, rank=get_rank())

    def before_train_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        """Sample and score this iteration's completions; hand the preprocessed batch on with the
        rollout under ``'rollout'``."""
        model = self._stage(runner)
        data = model.data_preprocessor(data_batch, True)
        samples = data['data_samples']
        views = model.views(data['inputs'], samples)
        seed = self._rollout_seed(runner)
        torch.manual_seed(seed)  # the same generator state after the rollout, whatever engine
        start = time.perf_counter()
        engine = self.rollout_engine
        # under FSDP the weights stay gathered for the whole rollout (no-op when unsharded)
        with gathered_for_generation(model.vlm.model):
            engine.before_rollout(model.vlm)  # e.g. wake vLLM, push the current weights
            generation = engine.generate(model.vlm, views, model.build_prompts(samples, views),
                                         seed=seed, **self.sampling)
        engine.after_rollout(model.vlm)
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
            ref_logps = self.reference_policy.logprobs(model, generation,
                                                       self.sampling['temperature'])
        reference_time = time.perf_counter() - start

        rollout = Rollout(
            prompt_inputs=generation.prompt_inputs, completion_ids=generation.completion_ids,
            completion_mask=generation.completion_mask, advantages=advantages,
            ref_logps=ref_logps, old_logps=None, rewards=scored.total,
            reward_terms=scored.terms, invalid=scored.invalid,
            num_generations=self.num_generations, temperature=self.sampling['temperature'],
            max_completion_length=self.sampling.get('max_new_tokens',
                                                    model.vlm.generation['max_new_tokens']))
        if isinstance(model.data_preprocessor, FineRSDataPreprocessor):
            model.data_preprocessor.hand_on(data_batch, dict(data, rollout=rollout))
        else:  # a preprocessor that cannot pass a batch through converts it again in train_step
            data_batch['rollout'] = rollout
        self._log(runner, scored, generation.completion_mask, rollout_time, reference_time)
        self._update_start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        """Log the time of the policy update (the loss, backward and optimiser step); tell the
        rollout engine when the policy changed (not on an iteration that only accumulated
        gradients: a vLLM engine would push unchanged weights)."""
        if _optimizer_stepped(runner.optim_wrapper):
            self.rollout_engine.after_optimizer_step(self._stage(runner).vlm)
        runner.message_hub.update_scalar('train/update_time',
                                         time.perf_counter() - self._update_start)

    @staticmethod
    def _rollout_seed(runner) -> int:
        """The sampling seed of this iteration and rank (:func:`rollout_seed`)."""
        return rollout_seed(runner.seed, runner.iter, get_rank(), get_world_size())

    @staticmethod
    def _log(runner, scored: RewardResult, completion_mask: torch.Tensor, rollout_time: float,
             reference_time: float) -> None:
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
