# Copyright (c) finers_mm contributors. All rights reserved.
"""GRPO math as pure tensor functions (group advantages, the k3 KL estimate, the loss) and
:class:`GRPOLoss`, the registered loss module a stage builds from its config.

Shapes: ``N`` completions (rows), prompt-major in groups of ``n`` (rows ``i * n .. i * n + n - 1``
are the samples of prompt ``i``, as :meth:`BaseVLMAdapter.generate` orders them), ``T`` completion
tokens (right-padded; ``mask`` is 1 on real tokens).

The loss is the PPO clipped surrogate with a group-relative, sequence-level advantage (the same for
every token of a completion), plus a KL term to a frozen reference policy and minus an entropy
bonus. For 'dapo', 'grpo' and 'dr_grpo', the loss types trl 1.16's ``GRPOTrainer`` has with the
same meaning, the value and gradients are trl's, with the differences below
(``tests/test_models/test_losses/test_grpo_loss.py`` drives trl's own loss code on the same
tensors). trl's 'dapo' divides by ``num_items_in_batch``, the token count of the whole generation
batch: ``normalizer`` here.
The authors' settings (EasyR1/veRL), the defaults of :class:`GRPOLoss` (the functions' own defaults
are neutral: no KL, no entropy bonus):

======================  =====================================================================
group size              8 samples per prompt (:func:`group_advantages`, ``group_size=8``)
advantage               ``(r - mean) / (std + 1e-6)`` per group (the defaults here)
clipping                ``clip_eps=0.2``
aggregation             ``'seq_mean_token_mean'`` under ``protocol='authors'`` (below);
                        finers_mm's default is ``'dapo'``, one token mean over the batch
KL                      k3 / "low_var_kl" clamped to [-10, 10]: ``kl_coef=5e-3``, ``kl_clamp=10``
entropy bonus           ``entropy_coef=1e-3``
policy updates          one optimiser step per rollout batch: ``old_logps = logps.detach()``
======================  =====================================================================

The authors' aggregation, ``'seq_mean_token_mean'``: their actor (``verl/workers/actor/
dp_actor.py::update_policy``, run with ``micro_batch_size_per_device_for_update=1`` by
``training_scripts/final_*_training.sh``) computes, for each micro-batch of ONE sequence, the
policy term (``core_algos.compute_policy_loss``), the entropy (``masked_mean(entropy)``) and the
low_var_kl term (``masked_mean(kld)``), each a mean over that sequence's tokens; sums
``pg - entropy_coeff * entropy + kl_loss_coef * kl``; divides by the gradient-accumulation count
(the sequences per device and step); and FSDP averages the devices' gradients. So each of the
three terms is a token mean per sequence, then a mean over all sequences of the step: every
sequence weighs the same, a token of a short completion more than one of a long one. In this
module that is the ``'grpo'`` aggregation (which, unlike trl's, also aggregates the entropy per
sequence); it has its own name so that the protocol names what the authors ran. Give ``normalizer``
= the sequences of the whole step when a step is split into micro-batches, as for ``'grpo'``.
One deliberate difference: veRL's ``masked_mean`` divides by 0 (NaN) for a completion without any
token; here such a completion contributes 0.

Differences from trl, all deliberate:

- trl's advantage uses ``eps=1e-4``; the authors' 1e-6 is the default here (``eps`` is an argument).
- trl does not clamp the k3 estimate; veRL/EasyR1 clamp it to [-10, 10] (``kl_clamp=None``: trl).
- trl's entropy bonus is always a token mean over the batch, whatever the loss type; here every
  term (policy, KL, entropy) is aggregated the same way, by ``loss_type``, as veRL does. The two
  agree for 'dapo' (token mean), and for the others when all completions have the same length T
  (and, for 'dr_grpo', ``max_completion_length == T``).
- trl computes the KL term only when its coefficient is non-zero; here it is computed (and
  reported) whenever ``ref_logps`` is given.
"""
from typing import NamedTuple, Optional, Union

import torch
from torch import nn

from finers_mm.registry import MODELS
from finers_mm.structures.protocols import DEFAULT_PROTOCOL, check_protocol, protocol_setting

#: loss aggregations: trl's three and the authors' veRL run's (see :func:`grpo_loss`)
LOSS_TYPES = ('dapo', 'grpo', 'dr_grpo', 'seq_mean_token_mean')
#: the aggregations that average each completion's tokens, then the completions
PER_SEQUENCE_LOSS_TYPES = ('grpo', 'seq_mean_token_mean')


class GRPOLossOutput(NamedTuple):
    """The GRPO loss and its parts (the parts are detached, for logging).

    Attributes:
        loss (torch.Tensor): () the loss to minimise: ``policy_loss + kl_coef * KL -
            entropy_coef * entropy``, each aggregated by the ``loss_type``; differentiable.
        policy_loss (torch.Tensor): () the clipped-surrogate term alone, aggregated by the
            ``loss_type``.
        kl (torch.Tensor | None): () mean k3 KL estimate over the active tokens of this call;
            None without ``ref_logps``.
        entropy (torch.Tensor | None): () mean entropy over the active tokens of this call; None
            without ``entropies``.
        clip_fraction (torch.Tensor): () fraction of this call's active tokens whose ratio is
            clipped in the direction of their advantage (their policy gradient is 0), trl's
            ``clip_ratio/region_mean``.
    """
    loss: torch.Tensor
    policy_loss: torch.Tensor
    kl: Optional[torch.Tensor]
    entropy: Optional[torch.Tensor]
    clip_fraction: torch.Tensor


def group_advantages(rewards: torch.Tensor,
                     group_size: int,
                     scale_by_std: bool = True,
                     eps: float = 1e-6) -> torch.Tensor:
    """Group-relative advantages: each reward against the other samples of its prompt.

    ``(r - mean_group) / (std_group + eps)``, with the unbiased (Bessel-corrected, ``n - 1``)
    standard deviation, as trl (``nanstd``) and EasyR1/veRL (``torch.std``) compute it. A group
    whose rewards are all equal gets advantage 0.

    Args:
        rewards (torch.Tensor): (N,) total reward of each completion, prompt-major: rows
            ``i * group_size .. (i + 1) * group_size - 1`` are the samples of prompt ``i``.
        group_size (int): Samples per prompt ``n`` (at least 2).
        scale_by_std (bool): Divide by the group's std. False: ``r - mean_group`` only (Dr. GRPO,
            trl's ``scale_rewards='none'``). Defaults to True.
        eps (float): Added to the std. Defaults to 1e-6 (the authors'; trl uses 1e-4).

    Returns:
        torch.Tensor: (N,) advantages, floating point (float32 for integer rewards).
    """
    if rewards.ndim != 1 or group_size < 2 or rewards.numel() % group_size:
        raise ValueError(f'need (N,) rewards in groups of group_size >= 2 samples, got rewards of '
                         f'shape {tuple(rewards.shape)} and group_size={group_size}')
    if not rewards.is_floating_point():
        rewards = rewards.float()
    grouped = rewards.view(-1, group_size)
    advantages = grouped - grouped.mean(dim=1, keepdim=True)
    if scale_by_std:
        advantages = advantages / (grouped.std(dim=1, keepdim=True) + eps)
    return advantages.view(-1)


def kl_k3(logps: torch.Tensor,
          ref_logps: torch.Tensor,
          clamp: Optional[float] = 10.0) -> torch.Tensor:
    """Per-token k3 estimate of KL(policy || reference) (Schulman's "k3", veRL's "low_var_kl").

    With ``x = ref_logps - logps``: ``k3 = exp(x) - x - 1``, computed as ``expm1(x) - x``, which
    keeps it exactly >= 0 in floating point (``exp(x) - x - 1`` rounds to small negative values
    near 0). veRL/EasyR1 clamp k3 to ``[-clamp, clamp]``; as k3 >= 0 only the upper bound acts.
    With a clamp, ``x`` is first limited to ``[-(clamp + 1), clamp + 1]``: k3 already exceeds
    ``clamp`` there, so no value changes, but ``exp`` stays finite and the gradient of a clamped
    token stays 0 instead of NaN (``0 * inf``). trl does not clamp (``clamp=None``).

    Args:
        logps (torch.Tensor): (N, T) log-probs of the sampled tokens under the policy.
        ref_logps (torch.Tensor): (N, T) log-probs of the same tokens under the reference policy.
        clamp (float, optional): Upper bound of the estimate. Defaults to 10.0 (veRL). None: no
            clamp.

    Returns:
        torch.Tensor: (N, T) non-negative estimates, 0 where ``logps == ref_logps``.
    """
    log_ratio = ref_logps - logps
    if clamp is None:
        return torch.expm1(log_ratio) - log_ratio
    log_ratio = log_ratio.clamp(-(clamp + 1), clamp + 1)
    return (torch.expm1(log_ratio) - log_ratio).clamp(max=clamp)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """() mean of (N, T) ``values`` over the (N, T) float ``mask``, 0 when the mask is empty."""
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def _aggregate(values: torch.Tensor, mask: torch.Tensor, loss_type: str,
               max_completion_length: Optional[int],
               normalizer: Optional[Union[float, torch.Tensor]]) -> torch.Tensor:
    """Reduce (N, T) per-token ``values`` over the (N, T) float ``mask`` to () by ``loss_type``.

    See :func:`grpo_loss` for the aggregations and ``normalizer``.
    """
    if loss_type == 'dapo':
        count = mask.sum() if normalizer is None else normalizer
        count = torch.as_tensor(count, dtype=values.dtype, device=values.device)
        return (values * mask).sum() / count.clamp(min=1.0)
    count = values.shape[0] if normalizer is None else normalizer
    if loss_type in PER_SEQUENCE_LOSS_TYPES:
        return ((values * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).sum() / count
    return (values * mask).sum() / (count * max_completion_length)


def grpo_loss(logps: torch.Tensor,
              old_logps: torch.Tensor,
              advantages: torch.Tensor,
              mask: torch.Tensor,
              *,
              clip_eps: float = 0.2,
              clip_eps_high: Optional[float] = None,
              ref_logps: Optional[torch.Tensor] = None,
              kl_coef: float = 0.0,
              kl_clamp: Optional[float] = 10.0,
              entropies: Optional[torch.Tensor] = None,
              entropy_coef: float = 0.0,
              loss_type: str = 'dapo',
              max_completion_length: Optional[int] = None,
              normalizer: Optional[Union[float, torch.Tensor]] = None) -> GRPOLossOutput:
    """The GRPO loss: PPO clipped surrogate + KL to a reference - entropy bonus.

    Per token, with ratio ``rho = exp(logps - old_logps)`` and the completion's advantage ``A``:
    ``-min(rho * A, clip(rho, 1 - clip_eps, 1 + clip_eps_high) * A)``, plus
    ``kl_coef * kl_k3(logps, ref_logps, kl_clamp)`` and minus ``entropy_coef * entropies``.
    Every term is aggregated over the active tokens by ``loss_type``:

    - ``'dapo'`` (default; veRL's "token-mean" over a whole batch): sum over all active tokens of
      the batch / their number, so every token weighs the same;
    - ``'grpo'``: mean over each completion's tokens, then mean over completions (a short
      completion's tokens weigh more);
    - ``'seq_mean_token_mean'`` (the authors' run: veRL with micro-batches of one sequence,
      module docstring): the same arithmetic as ``'grpo'``;
    - ``'dr_grpo'``: sum over all active tokens / (N * ``max_completion_length``) (Dr. GRPO).

    On-policy (one optimiser step per rollout batch), pass ``old_logps = logps.detach()``: the
    ratio is 1, clipping never acts, and the gradient is the plain policy gradient.

    Masked tokens get zero gradient as long as their entries are finite (the VLM adapter returns
    0 there).

    Args:
        logps (torch.Tensor): (N, T) log-probs of the sampled tokens under the current policy,
            with gradient (:meth:`BaseVLMAdapter.completion_logprobs`).
        old_logps (torch.Tensor): (N, T) the same under the policy that sampled them, without
            gradient.
        advantages (torch.Tensor): (N,) one advantage per completion (:func:`group_advantages`).
        mask (torch.Tensor): (N, T) 1 (or True) on the completions' tokens, 0 on padding.
        clip_eps (float): Lower clipping range ``1 - clip_eps``. Defaults to 0.2.
        clip_eps_high (float, optional): Upper clipping range ``1 + clip_eps_high`` (DAPO's
            "clip-higher"). Defaults to None (``clip_eps``).
        ref_logps (torch.Tensor, optional): (N, T) log-probs under the frozen reference policy,
            without gradient. Needed when ``kl_coef != 0``; reported as ``kl`` whenever given.
        kl_coef (float): Weight of the KL term. Defaults to 0.0.
        kl_clamp (float, optional): Clamp of the k3 estimate (:func:`kl_k3`). Defaults to 10.0.
        entropies (torch.Tensor, optional): (N, T) entropy of each step's next-token
            distribution, with gradient (``completion_logprobs(..., return_entropy=True)``).
            Needed when ``entropy_coef != 0``; reported as ``entropy`` whenever given.
        entropy_coef (float): Weight of the entropy bonus. Defaults to 0.0.
        loss_type (str): 'dapo', 'grpo', 'seq_mean_token_mean' or 'dr_grpo' (see above).
            Defaults to 'dapo'.
        max_completion_length (int, optional): The generation limit ``max_new_tokens``, required
            by 'dr_grpo' (and at least T). Defaults to None.
        normalizer (float | torch.Tensor, optional): The count the summed terms are divided by,
            in place of this call's own: active tokens for 'dapo', completions for 'grpo',
            'seq_mean_token_mean' and 'dr_grpo'. Give the count over all micro-batches of one optimiser step and the
            micro-batches' losses add up exactly to the loss of the whole batch (divide it by the
            number of micro-batches or ranks wherever the optimiser wrapper or DDP averages their
            gradients instead of summing them). The reported ``kl``, ``entropy`` and
            ``clip_fraction`` stay means over this call. Defaults to None (this call's count).

    Returns:
        GRPOLossOutput: The loss and its detached parts.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f'unknown loss_type {loss_type!r}; expected one of {LOSS_TYPES}')
    if loss_type == 'dr_grpo' and (max_completion_length is None
                                   or max_completion_length < logps.shape[1]):
        raise ValueError("loss_type='dr_grpo' needs max_completion_length >= T (the generation "
                         f'limit), got {max_completion_length} for T={logps.shape[1]}')
    if logps.ndim != 2 or advantages.shape != logps.shape[:1]:
        raise ValueError(f'need (N, T) logps and (N,) advantages, got {tuple(logps.shape)} and '
                         f'{tuple(advantages.shape)}')
    optional = dict(ref_logps=ref_logps, entropies=entropies)
    for name, tensor in dict(old_logps=old_logps, mask=mask, **optional).items():
        if tensor is not None and tensor.shape != logps.shape:
            raise ValueError(f'{name} has shape {tuple(tensor.shape)}, logps '
                             f'{tuple(logps.shape)}')
    for name, tensor in dict(old_logps=old_logps, ref_logps=ref_logps).items():
        if tensor is not None and tensor.requires_grad:
            raise ValueError(f'{name} must not require grad (compute it under torch.no_grad() or '
                             'pass logps.detach()): its gradient would cancel the policy\'s')
    if kl_coef and ref_logps is None:
        raise ValueError('kl_coef != 0 needs ref_logps')
    if entropy_coef and entropies is None:
        raise ValueError('entropy_coef != 0 needs entropies')

    mask = mask.to(logps.dtype)
    advantages = advantages.to(logps.dtype).unsqueeze(1)
    high = clip_eps if clip_eps_high is None else clip_eps_high

    def aggregate(values: torch.Tensor) -> torch.Tensor:
        return _aggregate(values, mask, loss_type, max_completion_length, normalizer)

    ratio = torch.exp(logps - old_logps)
    clipped_ratio = ratio.clamp(1 - clip_eps, 1 + high)
    policy_loss = aggregate(-torch.min(ratio * advantages, clipped_ratio * advantages))
    loss = policy_loss
    kl = entropy = None
    if ref_logps is not None:
        per_token_kl = kl_k3(logps, ref_logps, kl_clamp)
        if kl_coef:
            loss = loss + kl_coef * aggregate(per_token_kl)
        kl = _masked_mean(per_token_kl.detach(), mask)
    if entropies is not None:
        if entropy_coef:
            loss = loss - entropy_coef * aggregate(entropies)
        entropy = _masked_mean(entropies.detach(), mask)
    is_clipped = (((ratio < 1 - clip_eps) & (advantages < 0))
                  | ((ratio > 1 + high) & (advantages > 0)))
    return GRPOLossOutput(loss=loss, policy_loss=policy_loss.detach(), kl=kl, entropy=entropy,
                          clip_fraction=_masked_mean(is_clipped.to(mask.dtype), mask))


@MODELS.register_module()
class GRPOLoss(nn.Module):
    """The GRPO loss of a FineRS stage, built from the stage's ``grpo_loss`` config.

    The defaults are the authors' settings (module docstring) but for the aggregation, which
    follows ``protocol``; :func:`grpo_loss` does the math. The module has no parameters.

    Args:
        clip_eps (float): lower clipping range ``1 - clip_eps``. Defaults to 0.2.
        clip_eps_high (float, optional): upper clipping range (DAPO's clip-higher). Defaults to
            None (``clip_eps``).
        kl_coef (float): weight of the k3 KL to the reference policy; 0 turns the KL term (and
            the reference policy) off. Defaults to 5e-3.
        kl_clamp (float, optional): clamp of the k3 estimate. Defaults to 10.0.
        entropy_coef (float): weight of the entropy bonus. Defaults to 1e-3.
        loss_type (str, optional): ``'dapo'`` (token mean), ``'grpo'``,
            ``'seq_mean_token_mean'`` or ``'dr_grpo'``. Defaults to None: the protocol's
            ``'loss_type'`` (``'dapo'`` under ``'finers_mm'``, ``'seq_mean_token_mean'`` under
            ``'authors'``).
        protocol (str): ``'finers_mm'`` or ``'authors'``
            (:mod:`finers_mm.structures.protocols`); decides ``loss_type`` when that is None.
            Defaults to ``'finers_mm'``.

    Raises:
        ValueError: an unknown ``loss_type`` or protocol, or a negative coefficient.
    """

    def __init__(self,
                 clip_eps: float = 0.2,
                 clip_eps_high: Optional[float] = None,
                 kl_coef: float = 5e-3,
                 kl_clamp: Optional[float] = 10.0,
                 entropy_coef: float = 1e-3,
                 loss_type: Optional[str] = None,
                 protocol: str = DEFAULT_PROTOCOL) -> None:
        super().__init__()
        self.protocol = check_protocol(protocol)
        if loss_type is None:
            loss_type = protocol_setting(protocol, 'loss_type')
        if loss_type not in LOSS_TYPES:
            raise ValueError(f'GRPOLoss: unknown loss_type {loss_type!r}; expected one of '
                             f'{LOSS_TYPES}')
        for name, value in dict(clip_eps=clip_eps, kl_coef=kl_coef,
                                entropy_coef=entropy_coef).items():
            if not value >= 0:
                raise ValueError(f'GRPOLoss: {name} must be >= 0, got {value!r}')
        self.clip_eps = float(clip_eps)
        self.clip_eps_high = None if clip_eps_high is None else float(clip_eps_high)
        self.kl_coef = float(kl_coef)
        self.kl_clamp = None if kl_clamp is None else float(kl_clamp)
        self.entropy_coef = float(entropy_coef)
        self.loss_type = loss_type

    @property
    def uses_reference(self) -> bool:
        """Whether the loss needs the reference policy's log-probs (a KL term)."""
        return self.kl_coef > 0

    def forward(self,
                logps: torch.Tensor,
                old_logps: torch.Tensor,
                advantages: torch.Tensor,
                mask: torch.Tensor,
                ref_logps: Optional[torch.Tensor] = None,
                entropies: Optional[torch.Tensor] = None,
                max_completion_length: Optional[int] = None,
                normalizer: Optional[Union[float, torch.Tensor]] = None) -> GRPOLossOutput:
        """:func:`grpo_loss` with this module's settings (shapes as there).

        ``ref_logps`` is used only when :attr:`uses_reference`.
        """
        return grpo_loss(
            logps, old_logps, advantages, mask, clip_eps=self.clip_eps,
            clip_eps_high=self.clip_eps_high,
            ref_logps=ref_logps if self.uses_reference else None, kl_coef=self.kl_coef,
            kl_clamp=self.kl_clamp, entropies=entropies, entropy_coef=self.entropy_coef,
            loss_type=self.loss_type, max_completion_length=max_completion_length,
            normalizer=normalizer)

    def extra_repr(self) -> str:
        return (f'clip_eps={self.clip_eps}, clip_eps_high={self.clip_eps_high}, '
                f'kl_coef={self.kl_coef}, kl_clamp={self.kl_clamp}, '
                f'entropy_coef={self.entropy_coef}, loss_type={self.loss_type!r}, '
                f'protocol={self.protocol!r}')
