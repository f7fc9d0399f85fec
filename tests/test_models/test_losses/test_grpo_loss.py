# Copyright (c) finers_mm contributors. All rights reserved.
"""Tests of finers_mm.models.losses.grpo_loss against trl 1.16: the loss is checked by running trl's own
``GRPOTrainer._compute_loss`` on the same tensors; plus the entropy option of
``BaseVLMAdapter.completion_logprobs`` on a tiny Qwen2.5-VL (CPU)."""
import inspect
from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from finers_mm.models.losses import (LOSS_TYPES as ALL_LOSS_TYPES, GRPOLoss, GRPOLossOutput,
                                     group_advantages, grpo_loss, kl_k3)

#: the loss types trl has
LOSS_TYPES = ('dapo', 'grpo', 'dr_grpo')
ATOL = 1e-6


def _batch(seed: int = 0, num: int = 8, length: int = 9, full: bool = False) -> dict:
    """A rollout batch: 2 prompts x 4 samples; ratios and KL large enough for clipping to act.

    Padded entries hold 0, as :meth:`BaseVLMAdapter.completion_logprobs` returns them.
    """
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, length + 1, (num,), generator=gen)
    lengths[0] = length
    if full:
        lengths[:] = length
    mask = (torch.arange(length) < lengths[:, None]).float()
    logps = -3 * torch.rand(num, length, generator=gen)
    return dict(
        logps=logps * mask,
        old_logps=(logps + 0.3 * torch.randn(num, length, generator=gen)) * mask,
        ref_logps=(logps + 0.5 * torch.randn(num, length, generator=gen)) * mask,
        advantages=torch.randn(num, generator=gen),
        entropies=2 * torch.rand(num, length, generator=gen) * mask,
        mask=mask)


def _leaf(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.clone().requires_grad_(True)


def _trl_loss(loss_type: str, logps: torch.Tensor, mask: torch.Tensor, advantages: torch.Tensor,
              *, old_logps=None, ref_logps=None, beta=0.0, entropies=None, entropy_coef=0.0,
              epsilon=0.2, epsilon_high=None, max_completion_length=None):
    """Run trl's ``GRPOTrainer._compute_loss`` on these tensors.

    The trainer is created without ``__init__`` (no model, no accelerator); it gets exactly the
    attributes ``_compute_loss`` reads, for one process, no gradient accumulation, token-level
    importance sampling and no vLLM, and its per-token log-prob helper returns ``logps`` and
    ``entropies``. ``old_logps=None`` takes trl's on-policy path (``per_token_logps.detach()``).

    Returns:
        tuple[torch.Tensor, dict]: trl's loss and its logged metrics (last value of each).
    """
    from trl import GRPOTrainer

    num, length = logps.shape
    if entropies is None:
        entropies = torch.zeros_like(logps)
    trainer = object.__new__(GRPOTrainer)
    vars(trainer).update(
        loss_type=loss_type, beta=beta, epsilon_low=epsilon,
        epsilon_high=epsilon if epsilon_high is None else epsilon_high,
        importance_sampling_level='token', top_entropy_quantile=1.0,
        off_policy_mask_threshold=None, aux_loss_enabled=False, use_vllm=False,
        max_completion_length=max_completion_length, current_gradient_accumulation_steps=1,
        entropy_coef=entropy_coef, use_adaptive_entropy=False,
        _entropy_bonus_enabled=entropy_coef != 0.0, model=SimpleNamespace(training=True),
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1),
        accelerator=SimpleNamespace(num_processes=1, sync_gradients=True,
                                    reduce=lambda tensor, reduction: tensor,
                                    gather=lambda tensor: tensor),
        _metrics=dict(train=defaultdict(list)),
        _get_per_token_logps_and_entropies=lambda *args, **kwargs: (logps, entropies, None))
    inputs = dict(prompt_ids=torch.zeros(num, 1, dtype=torch.long),
                  prompt_mask=torch.ones(num, 1, dtype=torch.long),
                  completion_ids=torch.zeros(num, length, dtype=torch.long),
                  completion_mask=mask, advantages=advantages, num_items_in_batch=mask.sum())
    if old_logps is not None:
        inputs['old_per_token_logps'] = old_logps
    if ref_logps is not None:
        inputs['ref_per_token_logps'] = ref_logps
    loss = trainer._compute_loss(None, inputs)
    return loss, {key: values[-1] for key, values in trainer._metrics['train'].items()}


def _assert_same_loss_and_grads(ours, ours_leaves, theirs, their_leaves):
    torch.testing.assert_close(ours, theirs, atol=ATOL, rtol=0)
    ours_grads = torch.autograd.grad(ours, ours_leaves)
    their_grads = torch.autograd.grad(theirs, their_leaves)
    for mine, trl_grad in zip(ours_grads, their_grads):
        assert mine.abs().max() > 1e-4  # a real gradient is compared
        torch.testing.assert_close(mine, trl_grad, atol=ATOL, rtol=0)


# ------------------------------------------------------------------------------------------------
# The loss against trl's code
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('on_policy', [False, True])
@pytest.mark.parametrize('with_kl', [False, True])
@pytest.mark.parametrize('loss_type', LOSS_TYPES)
def test_loss_and_grads_match_trl(loss_type, with_kl, on_policy):
    batch = _batch()
    length = batch['mask'].shape[1]
    max_len = length + 3 if loss_type == 'dr_grpo' else None
    beta = 0.1 if with_kl else 0.0
    ref = batch['ref_logps'] if with_kl else None
    ours_logps, their_logps = _leaf(batch['logps']), _leaf(batch['logps'])
    old = ours_logps.detach() if on_policy else batch['old_logps']
    out = grpo_loss(ours_logps, old, batch['advantages'], batch['mask'], ref_logps=ref,
                    kl_coef=beta, loss_type=loss_type, max_completion_length=max_len)
    theirs, metrics = _trl_loss(loss_type, their_logps, batch['mask'], batch['advantages'],
                                old_logps=None if on_policy else batch['old_logps'],
                                ref_logps=ref, beta=beta, max_completion_length=max_len)
    _assert_same_loss_and_grads(out.loss, [ours_logps], theirs, [their_logps])
    assert isinstance(out, GRPOLossOutput) and not out.policy_loss.requires_grad
    torch.testing.assert_close(out.clip_fraction.item(), metrics['clip_ratio/region_mean'])
    if on_policy:
        assert out.clip_fraction == 0
    else:
        assert 0.1 < out.clip_fraction < 0.9  # clipping acts on part of the tokens
    if with_kl:
        assert kl_k3(batch['logps'], ref, clamp=None).max() < 5  # the clamp at 10 is inactive
        torch.testing.assert_close(out.kl.item(), metrics['kl'])
        assert out.loss - out.policy_loss > 1e-3  # the KL term is in the loss
    else:
        assert out.kl is None and out.loss == out.policy_loss


@pytest.mark.parametrize('loss_type', LOSS_TYPES)
def test_entropy_bonus_and_clip_higher_match_trl(loss_type):
    """trl's bonus is a token mean: equal to ours for 'dapo', and for equal-length completions
    (with ``max_completion_length = T`` for 'dr_grpo') for the other two."""
    batch = _batch(seed=7, full=loss_type != 'dapo')
    max_len = batch['mask'].shape[1] if loss_type == 'dr_grpo' else None
    ours_leaves = [_leaf(batch['logps']), _leaf(batch['entropies'])]
    their_leaves = [_leaf(batch['logps']), _leaf(batch['entropies'])]
    kwargs = dict(ref_logps=batch['ref_logps'], max_completion_length=max_len)
    out = grpo_loss(ours_leaves[0], batch['old_logps'], batch['advantages'], batch['mask'],
                    clip_eps=0.2, clip_eps_high=0.28, kl_coef=0.1, entropies=ours_leaves[1],
                    entropy_coef=0.05, loss_type=loss_type, **kwargs)
    theirs, metrics = _trl_loss(loss_type, their_leaves[0], batch['mask'], batch['advantages'],
                                old_logps=batch['old_logps'], beta=0.1,
                                entropies=their_leaves[1], entropy_coef=0.05, epsilon=0.2,
                                epsilon_high=0.28, **kwargs)
    _assert_same_loss_and_grads(out.loss, ours_leaves, theirs, their_leaves)
    torch.testing.assert_close(out.entropy.item(), metrics['entropy'])
    # trl's 'policy_loss' includes the KL term (token means here: all three aggregate alike).
    torch.testing.assert_close((out.policy_loss + 0.1 * out.kl).item(), metrics['policy_loss'])
    torch.testing.assert_close(out.clip_fraction.item(), metrics['clip_ratio/region_mean'])
    symmetric = grpo_loss(batch['logps'], batch['old_logps'], batch['advantages'],
                          batch['mask'], loss_type=loss_type, max_completion_length=max_len)
    assert symmetric.clip_fraction > out.clip_fraction  # clip-higher clips fewer tokens


def test_grpo_entropy_is_aggregated_per_sequence_unlike_trl():
    """The documented difference: with unequal lengths, 'grpo' weighs the entropy like the
    policy term (per-sequence mean), trl by a token mean."""
    batch = _batch(seed=2)
    kwargs = dict(entropies=batch['entropies'], loss_type='grpo')
    with_bonus = grpo_loss(batch['logps'], batch['old_logps'], batch['advantages'],
                           batch['mask'], entropy_coef=1.0, **kwargs)
    bonus = with_bonus.policy_loss - with_bonus.loss
    mask = batch['mask']
    per_sequence = ((batch['entropies'] * mask).sum(1) / mask.sum(1)).mean()
    torch.testing.assert_close(bonus, per_sequence)
    assert abs(per_sequence - with_bonus.entropy) > 1e-3  # differs from the token mean


def test_bool_mask_and_authors_defaults():
    batch = _batch(seed=3)
    leaf = _leaf(batch['logps'])
    common = (batch['old_logps'], batch['advantages'])
    kwargs = dict(ref_logps=batch['ref_logps'], kl_coef=5e-3, entropies=batch['entropies'],
                  entropy_coef=1e-3)
    as_float = grpo_loss(leaf, *common, batch['mask'], **kwargs)
    as_bool = grpo_loss(leaf, *common, batch['mask'].bool(), **kwargs)
    assert as_float == as_bool
    manual = (as_float.policy_loss + 5e-3 * as_float.kl - 1e-3 * as_float.entropy)
    torch.testing.assert_close(as_float.loss.detach(), manual)  # 'dapo': every term a token mean


def test_on_policy_gradient_is_the_policy_gradient():
    """Ratio 1: the 'dapo' gradient w.r.t. each token's log-prob is -A / (number of tokens)."""
    batch = _batch(seed=4)
    leaf = _leaf(batch['logps'])
    out = grpo_loss(leaf, leaf.detach(), batch['advantages'], batch['mask'])
    out.loss.backward()
    expected = -batch['advantages'][:, None] * batch['mask'] / batch['mask'].sum()
    torch.testing.assert_close(leaf.grad, expected, atol=1e-7, rtol=0)
    torch.testing.assert_close(out.loss.detach(), -(batch['advantages'][:, None]
                                                   * batch['mask']).sum() / batch['mask'].sum())


@pytest.mark.parametrize('loss_type', ALL_LOSS_TYPES)
def test_masked_tokens_get_no_gradient(loss_type):
    batch = _batch(seed=5)
    padded = batch['mask'] == 0
    assert padded.any()
    leaves = [_leaf(batch['logps']), _leaf(batch['entropies'])]
    kwargs = dict(ref_logps=batch['ref_logps'], kl_coef=0.1, entropy_coef=0.1,
                  loss_type=loss_type, max_completion_length=20)
    out = grpo_loss(leaves[0], batch['old_logps'], batch['advantages'], batch['mask'],
                    entropies=leaves[1], **kwargs)
    out.loss.backward()
    for leaf in leaves:
        assert bool((leaf.grad[padded] == 0).all()) and bool((leaf.grad[~padded] != 0).any())
    # Whatever (finite) values padding holds, the loss is the same.
    noise = torch.randn(batch['mask'].shape).masked_fill(~padded, 0)
    moved = grpo_loss(batch['logps'] + noise, batch['old_logps'] - noise, batch['advantages'],
                      batch['mask'], entropies=batch['entropies'] + noise.abs(),
                      **dict(kwargs, ref_logps=batch['ref_logps'] + noise))
    torch.testing.assert_close(moved.loss, out.loss.detach())
    assert moved.kl == out.kl and moved.entropy == out.entropy


@pytest.mark.parametrize('loss_type', ALL_LOSS_TYPES)
def test_normalizer_makes_micro_batches_add_up(loss_type):
    batch = _batch(seed=6)
    leaf = _leaf(batch['logps'])
    kwargs = dict(kl_coef=0.1, entropy_coef=0.1, loss_type=loss_type, max_completion_length=12)
    full = grpo_loss(leaf, batch['old_logps'], batch['advantages'], batch['mask'],
                     ref_logps=batch['ref_logps'], entropies=batch['entropies'], **kwargs)
    normalizer = batch['mask'].sum() if loss_type == 'dapo' else batch['mask'].shape[0]
    parts = [grpo_loss(leaf[rows], batch['old_logps'][rows], batch['advantages'][rows],
                       batch['mask'][rows], ref_logps=batch['ref_logps'][rows],
                       entropies=batch['entropies'][rows], normalizer=normalizer, **kwargs).loss
             for rows in (slice(0, 3), slice(3, None))]
    total = parts[0] + parts[1]
    torch.testing.assert_close(total, full.loss, atol=ATOL, rtol=0)
    torch.testing.assert_close(torch.autograd.grad(total, leaf)[0],
                               torch.autograd.grad(full.loss, leaf)[0], atol=ATOL, rtol=0)
    # Without the normalizer each call normalises within itself: the sum is not the batch loss.
    alone = sum(grpo_loss(leaf[rows], batch['old_logps'][rows], batch['advantages'][rows],
                          batch['mask'][rows], **dict(kwargs, kl_coef=0.0, entropy_coef=0.0)).loss
                for rows in (slice(0, 3), slice(3, None)))
    assert abs(alone - full.policy_loss) > 1e-3


# ------------------------------------------------------------------------------------------------
# The authors' aggregation: veRL with micro-batches of one sequence
# ------------------------------------------------------------------------------------------------


def _verl_micro_batch_loss(logps, old_logps, advantage, mask, ref_logps, entropies, *,
                           clip_ratio, kl_loss_coef, entropy_coeff):
    """One micro-batch of ONE sequence as veRL's ``DataParallelPPOActor.update_policy`` computes it
    (``core_algos.compute_policy_loss``, ``kl_penalty('low_var_kl')``, ``masked_mean``), written
    out here from their formulas: every term is a mean over this sequence's tokens."""
    def masked_mean(values):
        return (values * mask).sum() / mask.sum()

    ratio = torch.exp(logps - old_logps)
    pg_losses = -advantage * ratio
    pg_losses2 = -advantage * torch.clamp(ratio, 1.0 - clip_ratio, 1.0 + clip_ratio)
    pg_loss = masked_mean(torch.max(pg_losses, pg_losses2))
    kl = ref_logps - logps
    kld = torch.clamp(torch.exp(kl) - kl - 1, min=-10, max=10)
    return pg_loss - masked_mean(entropies) * entropy_coeff + masked_mean(kld) * kl_loss_coef


def test_seq_mean_token_mean_is_verl_with_one_sequence_per_micro_batch():
    """Loss and gradients equal veRL's loop: per sequence a token mean of each term, the loss
    divided by the gradient-accumulation count (the sequences of the step) and backpropagated
    one sequence at a time (gradients accumulate)."""
    batch = _batch(seed=11)
    lengths = batch['mask'].sum(1)
    assert len(set(lengths.tolist())) > 2  # unequal lengths: the aggregations differ
    coefs = dict(clip_ratio=0.2, kl_loss_coef=5e-3, entropy_coeff=1e-3)
    ours = [_leaf(batch['logps']), _leaf(batch['entropies'])]
    out = grpo_loss(ours[0], batch['old_logps'], batch['advantages'], batch['mask'],
                    clip_eps=0.2, ref_logps=batch['ref_logps'], kl_coef=5e-3,
                    entropies=ours[1], entropy_coef=1e-3, loss_type='seq_mean_token_mean')
    out.loss.backward()
    assert 0.1 < out.clip_fraction < 0.9  # clipping acts

    theirs = [_leaf(batch['logps']), _leaf(batch['entropies'])]
    num = batch['mask'].shape[0]
    gradient_accumulation = num  # global_batch_size_per_device // micro_batch_size (1)
    total = 0.0
    for row in range(num):
        length = int(lengths[row])  # a micro-batch holds one sequence, unpadded
        columns = slice(0, length)
        loss = _verl_micro_batch_loss(
            theirs[0][row, columns], batch['old_logps'][row, columns], batch['advantages'][row],
            batch['mask'][row, columns], batch['ref_logps'][row, columns],
            theirs[1][row, columns], **coefs) / gradient_accumulation
        loss.backward()
        total += loss.item()
    torch.testing.assert_close(out.loss.item(), total, atol=ATOL, rtol=0)
    for mine, verl in zip(ours, theirs):
        assert mine.grad.abs().max() > 1e-4
        torch.testing.assert_close(mine.grad, verl.grad, atol=ATOL, rtol=0)

    dapo = grpo_loss(batch['logps'], batch['old_logps'], batch['advantages'], batch['mask'],
                     clip_eps=0.2, ref_logps=batch['ref_logps'], kl_coef=5e-3,
                     entropies=batch['entropies'], entropy_coef=1e-3, loss_type='dapo')
    assert abs(dapo.loss - out.loss) > 1e-3  # a token mean over the batch weighs tokens alike


def test_seq_mean_token_mean_equals_dapo_for_equal_lengths():
    """With every completion T tokens long both are the mean over all N * T tokens."""
    batch = _batch(seed=12, full=True)
    kwargs = dict(ref_logps=batch['ref_logps'], kl_coef=0.1, entropies=batch['entropies'],
                  entropy_coef=0.1)
    args = (batch['logps'], batch['old_logps'], batch['advantages'], batch['mask'])
    torch.testing.assert_close(grpo_loss(*args, loss_type='seq_mean_token_mean', **kwargs).loss,
                               grpo_loss(*args, loss_type='dapo', **kwargs).loss)


def test_grpo_loss_module_takes_its_loss_type_from_the_protocol():
    assert GRPOLoss().loss_type == 'dapo'  # finers_mm's default, unchanged
    assert GRPOLoss(protocol='finers_mm').loss_type == 'dapo'
    authors = GRPOLoss(protocol='authors')
    assert authors.loss_type == 'seq_mean_token_mean' and 'authors' in repr(authors)
    assert GRPOLoss(loss_type='grpo', protocol='authors').loss_type == 'grpo'  # explicit wins
    assert GRPOLoss(loss_type='seq_mean_token_mean').loss_type == 'seq_mean_token_mean'
    with pytest.raises(ValueError, match='unknown protocol'):
        GRPOLoss(protocol='verl')
    with pytest.raises(ValueError, match='unknown loss_type'):
        GRPOLoss(loss_type='token_mean', protocol='authors')
    # The module runs the aggregation it names.
    batch = _batch(seed=13)
    args = (batch['logps'], batch['old_logps'], batch['advantages'], batch['mask'])
    kwargs = dict(ref_logps=batch['ref_logps'], entropies=batch['entropies'])
    expected = grpo_loss(*args, kl_coef=5e-3, entropy_coef=1e-3,
                         loss_type='seq_mean_token_mean', **kwargs).loss
    torch.testing.assert_close(authors(*args, **kwargs).loss, expected)
    assert abs(GRPOLoss()(*args, **kwargs).loss - expected) > 1e-3


def test_argument_checks():
    batch = _batch()
    args = (batch['logps'], batch['old_logps'], batch['advantages'], batch['mask'])
    with pytest.raises(ValueError, match='unknown loss_type'):
        grpo_loss(*args, loss_type='bnpo')
    with pytest.raises(ValueError, match='max_completion_length'):
        grpo_loss(*args, loss_type='dr_grpo')
    with pytest.raises(ValueError, match='max_completion_length'):
        grpo_loss(*args, loss_type='dr_grpo', max_completion_length=batch['mask'].shape[1] - 1)
    with pytest.raises(ValueError, match='needs ref_logps'):
        grpo_loss(*args, kl_coef=0.1)
    with pytest.raises(ValueError, match='needs entropies'):
        grpo_loss(*args, entropy_coef=0.1)
    with pytest.raises(ValueError, match='mask has shape'):
        grpo_loss(*args[:3], batch['mask'][:, :-1])
    with pytest.raises(ValueError, match=r'\(N,\) advantages'):
        grpo_loss(*args[:2], batch['advantages'][:-1], batch['mask'])
    leaf = _leaf(batch['logps'])
    with pytest.raises(ValueError, match='old_logps must not require grad'):
        grpo_loss(leaf, leaf, *args[2:])  # the ratio's gradient would cancel
    with pytest.raises(ValueError, match='ref_logps must not require grad'):
        grpo_loss(*args, ref_logps=leaf * 1, kl_coef=0.1)


# ------------------------------------------------------------------------------------------------
# Advantages and KL
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('scale_by_std', [True, False])
def test_group_advantages_match_trl(scale_by_std):
    """trl computes advantages inline in ``_generate_and_score_completions`` (not drivable
    alone); its lines are re-run here with its ``nanstd`` after checking they are still there."""
    from trl import GRPOTrainer
    from trl.trainer.utils import nanstd

    source = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    for line in ('mean_grouped_rewards = torch.nanmean(rewards.view(-1, num_generations), dim=1)',
                 'std_rewards = nanstd(rewards.view(-1, num_generations), dim=1)',
                 'advantages = rewards - mean_grouped_rewards',
                 'advantages = advantages / (std_rewards + 1e-4)'):
        assert line in source
    num_generations = 8
    rewards = torch.rand(4 * num_generations, generator=torch.Generator().manual_seed(0)) * 7
    rewards[:num_generations] = 3.0  # a group without signal
    mean_grouped_rewards = torch.nanmean(rewards.view(-1, num_generations), dim=1)
    mean_grouped_rewards = mean_grouped_rewards.repeat_interleave(num_generations, dim=0)
    std_rewards = nanstd(rewards.view(-1, num_generations), dim=1)
    std_rewards = std_rewards.repeat_interleave(num_generations, dim=0)
    expected = rewards - mean_grouped_rewards
    if scale_by_std:
        expected = expected / (std_rewards + 1e-4)
    ours = group_advantages(rewards, num_generations, scale_by_std=scale_by_std, eps=1e-4)
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)
    assert bool((ours[:num_generations] == 0).all()) and ours[num_generations:].abs().min() > 0


def test_group_advantages_values_and_checks():
    rewards = torch.tensor([0, 1, 0, 1, 2, 2, 2, 2, 6, 0, 0, 0])  # integer rewards
    advantages = group_advantages(rewards, 4)
    assert advantages.dtype == torch.float32
    unbiased = (0.5 - 0) / (np.sqrt(1 / 3) + 1e-6)  # std with n - 1: sqrt(4 * 0.25 / 3)
    np.testing.assert_allclose(advantages[:4], [-unbiased, unbiased] * 2, rtol=1e-6)
    assert bool((advantages[4:8] == 0).all())
    assert advantages[8] > 0 > advantages[9]
    torch.testing.assert_close(group_advantages(rewards, 4, scale_by_std=False)[8:],
                               torch.tensor([4.5, -1.5, -1.5, -1.5]))
    torch.testing.assert_close(group_advantages(rewards.double(), 2).view(-1, 2).sum(1),
                               torch.zeros(6, dtype=torch.float64))  # zero mean per group
    for bad_size in (1, 5):
        with pytest.raises(ValueError, match='group_size'):
            group_advantages(rewards, bad_size)
    with pytest.raises(ValueError, match=r'\(N,\) rewards'):
        group_advantages(rewards.view(3, 4), 4)


def test_kl_k3_non_negative_zero_when_equal_and_trl_formula():
    gen = torch.Generator().manual_seed(0)
    logps = -5 * torch.rand(64, 16, generator=gen)
    assert bool((kl_k3(logps, logps) == 0).all()) and bool((kl_k3(logps, logps, None) == 0).all())
    for scale in (1e-6, 1e-4, 1e-2, 1.0):  # tiny differences round below 0 with exp(x) - x - 1
        ref = logps + scale * torch.randn(64, 16, generator=gen)
        kl = kl_k3(logps, ref, clamp=None)
        assert bool((kl >= 0).all()) and bool((kl_k3(logps, ref) >= 0).all())
        log_ratio = ref - logps
        trl_formula = torch.exp(log_ratio) - log_ratio - 1  # trl's per_token_kl
        torch.testing.assert_close(kl, trl_formula, atol=1e-6, rtol=1e-5)
        assert bool((kl[log_ratio.abs() > 1e-3] > 0).all())


def test_kl_k3_clamp():
    logps = torch.zeros(1, 6)
    ref = torch.tensor([[0.5, -2.0, 2.0, -12.0, 200.0, -200.0]])
    leaf = _leaf(logps)
    clamped = kl_k3(leaf, ref, clamp=10.0)
    unclamped = kl_k3(logps[:, :4], ref[:, :4], clamp=None)
    torch.testing.assert_close(clamped[:, :3], unclamped[:, :3])  # below the clamp: unchanged
    assert unclamped[0, 3] > 10 and bool((clamped[0, 3:] == 10).all())
    clamped.sum().backward()
    assert bool(torch.isfinite(leaf.grad).all())  # no 0 * inf at exp(200)
    assert bool((leaf.grad[0, 3:] == 0).all()) and bool((leaf.grad[0, :3] != 0).all())
    torch.testing.assert_close(kl_k3(logps, ref, clamp=2.0).max(), torch.tensor(2.0))
    # In the loss: kl_clamp bounds every token's KL term.
    out = grpo_loss(logps, logps, torch.zeros(1), torch.ones(1, 6), ref_logps=ref, kl_coef=1.0,
                    kl_clamp=1.0)
    torch.testing.assert_close(out.loss, (kl_k3(logps, ref, None).clamp(max=1.0)).mean())
    assert out.loss < 1 and out.kl == out.loss


# ------------------------------------------------------------------------------------------------
# completion_logprobs(return_entropy=True)
# ------------------------------------------------------------------------------------------------


def test_completion_logprobs_entropy(tiny_models):
    from finers_mm.registry import MODELS

    adapter = MODELS.build(dict(type='Qwen25VLAdapter', pretrained=tiny_models['qwen2_5_vl'],
                                generation=dict(max_new_tokens=6)))
    images = [np.random.default_rng(seed).integers(0, 256, (64 + 32 * seed, 96, 3),
                                                   dtype=np.uint8) for seed in range(2)]
    prompts = ['Where is the boat?', 'Please find the tiny red car.']
    torch.manual_seed(0)
    result = adapter.generate(images, prompts, do_sample=True, num_return_sequences=2)
    completion_mask = result.completion_mask.clone()
    completion_mask[1, 3:] = 0  # shorter completions (as if they had stopped there)
    completion_mask[2, 1:] = 0
    temperature = 0.7
    logps, entropies = adapter.completion_logprobs(
        result.prompt_inputs, result.completion_ids, completion_mask, temperature=temperature,
        return_entropy=True)
    assert entropies.shape == logps.shape and entropies.dtype == torch.float32
    assert entropies.requires_grad  # for the entropy bonus
    with torch.no_grad():
        plain = adapter.completion_logprobs(result.prompt_inputs, result.completion_ids,
                                            completion_mask, temperature=temperature)
    torch.testing.assert_close(logps.detach(), plain)
    mask = completion_mask.bool()
    assert bool((entropies[~mask] == 0).all()) and bool((entropies[mask] > 0).all())
    for row in range(4):
        prompt = row // 2
        inputs = adapter.build_inputs(images[prompt:prompt + 1], prompts[prompt:prompt + 1])
        tokens = result.completion_ids[row][mask[row]]
        ids = torch.cat([inputs['input_ids'], tokens[None]], dim=1)
        types = torch.cat([inputs['mm_token_type_ids'], torch.zeros_like(tokens)[None]], dim=1)
        with torch.no_grad():
            logits = adapter.model(input_ids=ids, attention_mask=torch.ones_like(ids),
                                   mm_token_type_ids=types, pixel_values=inputs['pixel_values'],
                                   image_grid_thw=inputs['image_grid_thw']).logits
        steps = logits[0, inputs['input_ids'].shape[1] - 1:-1].float() / temperature
        probs = steps.softmax(-1)
        manual = -(probs * probs.log()).sum(-1)
        torch.testing.assert_close(entropies[row][mask[row]].detach(), manual, atol=1e-5, rtol=0)
