# Copyright (c) finers_mm contributors. All rights reserved.
"""AdamW whose updates land on bf16 weights: fp32 moments and update, Kahan-compensated weights.

Why: the 7B configs keep the weights in bf16 (``model.vlm.dtype='bfloat16'``) and step at lr 1e-6.
bf16 keeps 8 significant bits, so a weight of 0.02 moves only in steps of 2**-13 (1.2e-4): a
plain AdamW step of 1e-6 rounds back to the old weight and is lost. Measured on the tiny model
(tests/test_configs/test_config_updates_land.py): after 5 steps plain AdamW on bf16 weights changes
2.3 % of the elements an fp32 run changes, with 0.16x its update norm; this optimiser 99.99 % and
1.00x.

The authors (EasyR1/veRL, ``worker.actor.optim.strategy=adamw_bf16``) keep bf16 weights and step
them with llama-cookbook's ``AnyPrecisionAdamW``: Kahan summation with a bf16 compensation buffer,
and bf16 moments. :class:`KahanAdamW` keeps the compensation and differs in three places, each
because bf16 loses the quantity:

* the moments are fp32: ``exp_avg_sq * 0.999`` rounds back to ``exp_avg_sq`` in bf16 (a change
  of 2**-10 relative is below bf16's 2**-9 half-step), so a bf16 second moment never decays;
* the whole update, decoupled weight decay included, is computed in fp32 on the compensated weight
  ``param + compensation`` and the rounding error of writing it back to bf16 becomes the next
  compensation (AnyPrecisionAdamW multiplies the bf16 weight by ``1 - lr * wd`` directly, which
  rounds away whenever ``lr * wd < 2**-9``; at the 7B configs' 1e-6 x 1e-2 the factor
  ``1 - 1e-8`` is 1.0 even in fp32, so there torch's AdamW, and this one, decay nothing either);
* on fp32 parameters (LoRA adapters, which peft keeps in fp32; the tiny configs) there is no
  compensation and the step is exactly ``torch.optim.AdamW``'s.

The step of one tensor is the pure function :func:`kahan_adamw_step`, tested on its own.
"""
from typing import Callable, Iterable, Optional, Tuple, Union

import torch

from finers_mm.registry import OPTIMIZERS

DTypeLike = Union[str, torch.dtype]


def _as_dtype(dtype: Optional[DTypeLike]) -> Optional[torch.dtype]:
    """``'float32'`` / ``'bfloat16'`` / ``torch.float32`` ... as a floating torch dtype."""
    if dtype is None or isinstance(dtype, torch.dtype):
        resolved = dtype
    else:
        resolved = getattr(torch, str(dtype).replace('torch.', ''), None)
    if resolved is not None and (not isinstance(resolved, torch.dtype)
                                 or not resolved.is_floating_point):
        raise ValueError(f'expected a floating-point dtype, got {dtype!r}')
    return resolved


def needs_compensation(param_dtype: torch.dtype, state_dtype: torch.dtype) -> bool:
    """Whether a parameter of ``param_dtype`` is coarser than the update computed in
    ``state_dtype`` (then the rounding error of each step must be carried in a buffer)."""
    return torch.finfo(param_dtype).eps > torch.finfo(state_dtype).eps


def kahan_adamw_step(param: torch.Tensor,
                     grad: torch.Tensor,
                     exp_avg: torch.Tensor,
                     exp_avg_sq: torch.Tensor,
                     compensation: Optional[torch.Tensor],
                     step: float,
                     *,
                     lr: float,
                     beta1: float,
                     beta2: float,
                     eps: float,
                     weight_decay: float) -> None:
    """One AdamW step (decoupled weight decay) of one tensor, in place.

    The moments and the update are computed in the moments' dtype. Without ``compensation``
    (``param`` as precise as the moments) the operations are ``torch.optim.AdamW``'s single-tensor
    step, in its order, so an fp32 parameter gets bit-identical results. With ``compensation``,
    the precise weight is ``param + compensation``; it is decayed and stepped in the moments' dtype,
    written back to ``param`` rounded to nearest, and what the rounding lost is kept in
    ``compensation`` for the next step (Kahan summation): updates far below ``param``'s resolution
    add up until they move it, instead of vanishing one by one.

    Elementwise throughout: the tensors may be matching slices (chunks) of larger ones.

    Args:
        param (Tensor): the weight, any floating dtype, shape (*).
        grad (Tensor): its gradient, shape (*), any floating dtype (cast to the moments' dtype).
        exp_avg (Tensor): first moment, shape (*), updated in place; its dtype is the dtype of the
            update (fp32 in :class:`KahanAdamW`).
        exp_avg_sq (Tensor): second moment, shape (*), same dtype as ``exp_avg``, in place.
        compensation (Tensor, optional): the rounding error of ``param`` carried from the last
            step, shape (*), in place; None for a parameter as precise as the moments.
        step (float): the number of this step, counted from 1 (for the bias corrections).
        lr (float): learning rate.
        beta1 (float): decay of the first moment.
        beta2 (float): decay of the second moment.
        eps (float): added to the bias-corrected root of the second moment.
        weight_decay (float): decoupled weight decay (the weight is scaled by ``1 - lr * wd``).

    Returns:
        None: ``param``, ``exp_avg``, ``exp_avg_sq`` and ``compensation`` are updated in place.
    """
    if grad.dtype != exp_avg.dtype:
        grad = grad.to(exp_avg.dtype)
    # the precise weight: the parameter itself, or bf16 weight + carried rounding error in fp32
    weight = param if compensation is None else param.to(exp_avg.dtype).add_(compensation)
    if weight_decay != 0:
        weight.mul_(1 - lr * weight_decay)
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    step_size = lr / bias_correction1
    denom = (exp_avg_sq.sqrt() / bias_correction2**0.5).add_(eps)
    weight.addcdiv_(exp_avg, denom, value=-step_size)
    if compensation is not None:
        param.copy_(weight)  # round to nearest
        # exact in fp32: ``param`` is ``weight`` rounded, their difference fits its mantissa
        compensation.copy_(weight.sub_(param))


@OPTIMIZERS.register_module()
class KahanAdamW(torch.optim.Optimizer):
    """AdamW that lands updates on bf16 weights (see the module docstring for why).

    fp32 moments and update for every parameter; a compensation buffer for each parameter coarser
    than the moments (bf16, fp16) carries the rounding error of every step to the next, so the
    weight follows an fp32 AdamW run to within its own rounding. On fp32 parameters it is
    ``torch.optim.AdamW`` exactly (amsgrad, maximize, foreach and fused are not offered).

    Use in a config (``default_scope='finers_mm'``)::

        optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16',
                             optimizer=dict(type='KahanAdamW', lr=1e-6, weight_decay=1e-2))

    Args:
        params (iterable): parameters or parameter-group dicts, as any torch optimiser.
        lr (float): learning rate. Defaults to 1e-3 (torch's AdamW).
        betas (tuple[float, float]): decays of the two moments. Defaults to (0.9, 0.999).
        eps (float): added to the root of the second moment. Defaults to 1e-8.
        weight_decay (float): decoupled weight decay. Defaults to 1e-2 (torch's AdamW).
        state_dtype (str | torch.dtype): dtype of the moments and of the update. Defaults to
            'float32' (a bf16 second moment does not decay, see the module docstring).
        compensation_dtype (str | torch.dtype, optional): dtype of the compensation buffer;
            None (default) takes each parameter's own dtype, as the authors' AnyPrecisionAdamW
            (bf16 for bf16 weights: weight + buffer then hold 16 significant bits, 2 bytes per
            element). 'float32' carries the error exactly, for 2 more bytes per element.
        chunk_size (int): a contiguous parameter with more elements is stepped in chunks of this
            many, so the fp32 temporaries of one step stay small (Qwen2.5-VL-7B's embedding has
            545 M elements: ~9 GB of fp32 temporaries in one piece). Chunks give the same result
            (every operation is elementwise). Defaults to 2**24.
    """

    def __init__(self,
                 params: Iterable,
                 lr: float = 1e-3,
                 betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8,
                 weight_decay: float = 1e-2,
                 state_dtype: DTypeLike = 'float32',
                 compensation_dtype: Optional[DTypeLike] = None,
                 chunk_size: int = 2**24):
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f'KahanAdamW: lr ({lr}), eps ({eps}) and weight_decay '
                             f'({weight_decay}) must be >= 0')
        if not all(0.0 <= beta < 1.0 for beta in betas):
            raise ValueError(f'KahanAdamW: betas must lie in [0, 1), got {betas}')
        if chunk_size < 1:
            raise ValueError(f'KahanAdamW: chunk_size must be >= 1, got {chunk_size}')
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        state_dtype=_as_dtype(state_dtype),
                        compensation_dtype=_as_dtype(compensation_dtype))
        self.chunk_size = int(chunk_size)
        super().__init__(params, defaults)

    @staticmethod
    def state_bytes_per_param(param_dtype: torch.dtype,
                              state_dtype: DTypeLike = 'float32',
                              compensation_dtype: Optional[DTypeLike] = None) -> int:
        """Bytes of optimiser state per parameter element (for memory plans).

        Two moments in ``state_dtype``, plus the compensation buffer where the parameter is
        coarser than ``state_dtype``; the per-tensor step counter is left out (one scalar).

        Args:
            param_dtype (torch.dtype): the parameter's dtype.
            state_dtype (str | torch.dtype): as the constructor's. Defaults to 'float32'.
            compensation_dtype (str | torch.dtype, optional): as the constructor's; None is the
                parameter's dtype.

        Returns:
            int: e.g. 10 for a bf16 parameter (8 + 2) and 8 for an fp32 one, with the defaults.
        """
        state = _as_dtype(state_dtype)
        nbytes = 2 * state.itemsize
        if needs_compensation(param_dtype, state):
            nbytes += (_as_dtype(compensation_dtype) or param_dtype).itemsize
        return nbytes

    def _init_state(self, param: torch.Tensor, group: dict) -> dict:
        state = self.state[param]
        # the step counter as torch's AdamW keeps it (a float32 CPU scalar)
        state['step'] = torch.tensor(0.0, dtype=torch.float32)
        state['exp_avg'] = torch.zeros_like(param, dtype=group['state_dtype'],
                                            memory_format=torch.preserve_format)
        state['exp_avg_sq'] = torch.zeros_like(state['exp_avg'])
        if needs_compensation(param.dtype, group['state_dtype']):
            state['compensation'] = torch.zeros_like(
                param, dtype=group['compensation_dtype'] or param.dtype,
                memory_format=torch.preserve_format)
        return state

    def _chunks(self, *tensors: Optional[torch.Tensor]):
        """Matching flat chunks of ``tensors`` (None stays None), or the tensors whole where one
        of them is not a plain contiguous tensor (a DTensor shard, a strided view)."""
        present = [t for t in tensors if t is not None]
        if (present[0].numel() <= self.chunk_size
                or not all(type(t) is torch.Tensor and t.is_contiguous() for t in present)):
            yield tensors
            return
        split = [None if t is None else t.view(-1).split(self.chunk_size) for t in tensors]
        for index in range(len(split[0])):
            yield tuple(None if parts is None else parts[index] for parts in split)

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], float]] = None) -> Optional[float]:
        """One optimiser step of every parameter that has a gradient.

        Args:
            closure (callable, optional): re-evaluates the model and returns the loss.

        Returns:
            float | None: the closure's loss.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group['betas']
            for param in group['params']:
                if param.grad is None:
                    continue
                if param.grad.is_sparse:
                    raise RuntimeError('KahanAdamW does not support sparse gradients')
                state = self.state[param] or self._init_state(param, group)
                state['step'] += 1
                step = state['step'].item()
                for chunk in self._chunks(param.data, param.grad, state['exp_avg'],
                                          state['exp_avg_sq'], state.get('compensation')):
                    kahan_adamw_step(*chunk, step, lr=group['lr'], beta1=beta1, beta2=beta2,
                                     eps=group['eps'], weight_decay=group['weight_decay'])
        return loss

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a state saved by :meth:`state_dict`, keeping each state tensor's saved dtype.

        ``torch.optim.Optimizer.load_state_dict`` casts floating state to the parameter's dtype,
        which would turn the fp32 moments of a bf16 parameter into bf16 on every resume; the
        saved tensors are copied back in their own dtypes afterwards.

        Args:
            state_dict (dict): as returned by :meth:`state_dict`.
        """
        super().load_state_dict(state_dict)
        saved_groups = state_dict['param_groups']
        for group, saved_group in zip(self.param_groups, saved_groups):
            for param, index in zip(group['params'], saved_group['params']):
                saved = state_dict['state'].get(index)
                if not saved:
                    continue
                for key, value in saved.items():
                    if key != 'step' and torch.is_tensor(value):
                        self.state[param][key] = value.to(device=param.device, copy=True)
