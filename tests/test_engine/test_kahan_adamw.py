# Copyright (c) finers_mm contributors. All rights reserved.
"""KahanAdamW: torch's AdamW on fp32 parameters, updates that land on bf16 ones.

The step of one tensor (:func:`kahan_adamw_step`) is tested on its own, then the optimiser built
from the registry, its state size, its chunking and its resume. Plain AdamW on bf16 weights is
run beside it where the contrast shows what the compensation buys (and that the checks can fail).
"""
import copy

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from finers_mm.engine.optimizers import KahanAdamW, kahan_adamw_step
from finers_mm.registry import OPTIMIZERS

LR, WD = 1e-6, 1e-2  # the 7B configs' schedule


def _weights(shape=(64, 48), seed=0):
    """Weights of a transformer's scale (std 0.02), representable in bf16."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=generator) * 0.02).to(torch.bfloat16).float()


def _grads(shape, steps, seed=1):
    """Gradients with a consistent sign per element on average (a drift) and noise."""
    generator = torch.Generator().manual_seed(seed)
    drift = torch.randn(shape, generator=generator) * 1e-3
    return [drift + torch.randn(shape, generator=generator) * 1e-3 for _ in range(steps)]


def _run(optimizer_cls, start, grads, dtype, lr=LR, **kwargs):
    """``start`` stepped with ``grads`` (rounded to ``dtype`` as a bf16 backward gives them).

    Returns:
        tuple[Tensor, Tensor]: the weight the optimiser holds (parameter + compensation, fp32)
        and the parameter itself (fp32 view of its values), both of ``start``'s shape.
    """
    param = torch.nn.Parameter(start.to(dtype, copy=True))
    optimizer = optimizer_cls([param], lr=lr, weight_decay=WD, **kwargs)
    for grad in grads:
        param.grad = grad.to(dtype)
        optimizer.step()
    compensation = optimizer.state[param].get('compensation')
    held = param.detach().float() + (0 if compensation is None else compensation.float())
    return held, param.detach().float()


def _landed(held, reference, start):
    """(fraction of the elements the reference changed that also changed, update-norm ratio)."""
    changed = reference != start
    fraction = ((held != start) & changed).sum().item() / changed.sum().item()
    return fraction, ((held - start).norm() / (reference - start).norm()).item()


# --------------------------------------------------------------------------- the pure step


def test_the_step_of_one_fp32_tensor_is_torch_adamw_bit_for_bit():
    start, grads = _weights(), _grads((64, 48), 6)
    param = start.clone()
    exp_avg, exp_avg_sq = torch.zeros_like(param), torch.zeros_like(param)
    reference = torch.nn.Parameter(start.clone())
    adamw = torch.optim.AdamW([reference], lr=1e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)
    for step, grad in enumerate(grads, start=1):
        kahan_adamw_step(param, grad, exp_avg, exp_avg_sq, None, step, lr=1e-3, beta1=0.8,
                         beta2=0.99, eps=1e-6, weight_decay=0.1)
        reference.grad = grad.clone()
        adamw.step()
        assert torch.equal(param, reference.detach())
        assert torch.equal(exp_avg, adamw.state[reference]['exp_avg'])
        assert torch.equal(exp_avg_sq, adamw.state[reference]['exp_avg_sq'])


def test_the_compensated_step_carries_what_rounding_to_bf16_loses():
    """bf16 weight + compensation holds the fp32 result of the step: the buffer is exactly the
    rounding error, the weight the fp32 result rounded to nearest."""
    start, (grad,) = _weights(), _grads((64, 48), 1)
    param = start.to(torch.bfloat16)
    compensation = torch.zeros_like(param, dtype=torch.float32)
    exp_avg, exp_avg_sq = torch.zeros_like(start), torch.zeros_like(start)
    kahan_adamw_step(param, grad.to(torch.bfloat16), exp_avg, exp_avg_sq, compensation, 1,
                     lr=1e-4, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=WD)
    expected = start.clone()
    kahan_adamw_step(expected, grad.to(torch.bfloat16).float(), torch.zeros_like(start),
                     torch.zeros_like(start), None, 1, lr=1e-4, beta1=0.9, beta2=0.999, eps=1e-8,
                     weight_decay=WD)
    assert torch.equal(param, expected.to(torch.bfloat16))
    assert torch.equal(param.float() + compensation, expected)
    assert compensation.abs().max() > 0  # something was carried


# --------------------------------------------------------------------------- the optimiser


def test_registered_and_built_by_mmengine_from_a_config():
    init_default_scope('finers_mm')
    assert OPTIMIZERS.get('KahanAdamW') is KahanAdamW
    model = torch.nn.Linear(4, 3)
    wrapper = build_optim_wrapper(model, dict(
        type='OptimWrapper', optimizer=dict(type='KahanAdamW', lr=LR, weight_decay=WD),
        clip_grad=dict(max_norm=1.0)))
    assert isinstance(wrapper.optimizer, KahanAdamW)
    assert wrapper.get_lr() == {'lr': [LR]} and wrapper.get_momentum() == {'momentum': [0.9]}
    model(torch.ones(2, 4)).sum().backward()
    before = model.weight.detach().clone()
    wrapper.step()
    assert not torch.equal(before, model.weight.detach())


def test_equals_torch_adamw_on_fp32_parameters_with_groups_chunks_and_strides():
    torch.manual_seed(0)
    shapes = [(33, 17), (5,), (7, 3, 4)]
    start = [torch.randn(shape) * 0.02 for shape in shapes]
    ours = [torch.nn.Parameter(t.clone()) for t in start]
    # a transposed (non-contiguous) parameter is stepped whole, the others in chunks of 100
    ours[0] = torch.nn.Parameter(start[0].t().contiguous().t())
    theirs = [torch.nn.Parameter(t.clone()) for t in start]
    groups = lambda params: [dict(params=params[:2]), dict(params=params[2:], lr=3e-3,  # noqa
                                                            weight_decay=0.0)]
    kahan = KahanAdamW(groups(ours), lr=1e-3, weight_decay=WD, chunk_size=100)
    adamw = torch.optim.AdamW(groups(theirs), lr=1e-3, weight_decay=WD)
    assert not ours[0].is_contiguous()
    for step in range(5):
        for mine, reference in zip(ours, theirs):
            grad = torch.randn(mine.shape)
            mine.grad, reference.grad = grad.clone(), grad.clone()
        kahan.step()
        adamw.step()
        for mine, reference in zip(ours, theirs):
            assert torch.equal(mine.detach(), reference.detach()), step
    assert all('compensation' not in kahan.state[p] for p in ours)


def test_bf16_weights_track_an_fp32_adamw_run_and_plain_adamw_does_not():
    """lr 1e-6 on weights of std 0.02 (bf16 resolves them to ~1e-4), 200 steps."""
    start, grads = _weights(), _grads((64, 48), 200)
    reference, _ = _run(torch.optim.AdamW, start, grads, torch.float32)
    held, visible = _run(KahanAdamW, start, grads, torch.bfloat16)
    plain, _ = _run(torch.optim.AdamW, start, grads, torch.bfloat16)
    fraction, ratio = _landed(held, reference, start)
    assert fraction == 1.0 and 0.98 < ratio < 1.02
    # the held weight follows the fp32 run to ~1 % of the update (bf16 compensation buffer) ...
    assert (held - reference).norm() < 0.02 * (reference - start).norm()
    # ... and the bf16 weight the forward uses is the fp32 run's rounded, but for a few ties
    assert (visible == reference.to(torch.bfloat16).float()).float().mean() > 0.98
    # plain AdamW loses almost every step: only tiny weights move
    fraction, ratio = _landed(plain, reference, start)
    assert fraction < 0.2 and ratio < 0.5
    # an fp32 compensation buffer carries the error exactly: ~0.02 % of the update
    exact, _ = _run(KahanAdamW, start, grads, torch.bfloat16, compensation_dtype='float32')
    assert (exact - reference).norm() < 1e-3 * (reference - start).norm()


def test_weight_decay_alone_lands_on_bf16_weights():
    """At lr 1e-3 the decay factor ``1 - lr * wd`` = 1 - 1e-5 is resolved by fp32 but rounds to 1
    in bf16: only the compensation keeps the decay. (At the 7B configs' lr 1e-6 the factor
    1 - 1e-8 is 1.0 even in fp32: torch's AdamW, and so this one, decays nothing there.)"""
    start = _weights()
    zeros = [torch.zeros_like(start)] * 5
    reference, _ = _run(torch.optim.AdamW, start, zeros, torch.float32, lr=1e-3)
    held, _ = _run(KahanAdamW, start, zeros, torch.bfloat16, lr=1e-3)
    plain, _ = _run(torch.optim.AdamW, start, zeros, torch.bfloat16, lr=1e-3)
    assert torch.equal(plain, start) and not torch.equal(reference, start)
    assert (held - reference).norm() < 0.02 * (reference - start).norm()


def test_chunked_and_whole_steps_agree_on_bf16_parameters():
    start, grads = _weights((40, 25)), _grads((40, 25), 4)
    whole = _run(KahanAdamW, start, grads, torch.bfloat16)
    chunked = _run(KahanAdamW, start, grads, torch.bfloat16, chunk_size=64)
    assert all(torch.equal(a, b) for a, b in zip(whole, chunked))


@pytest.mark.parametrize('param_dtype, kwargs, expected', [
    (torch.float32, {}, 8), (torch.bfloat16, {}, 10), (torch.float16, {}, 10),
    (torch.bfloat16, dict(compensation_dtype='float32'), 12),
])
def test_state_bytes_per_param_counts_what_is_allocated(param_dtype, kwargs, expected):
    assert KahanAdamW.state_bytes_per_param(param_dtype, **kwargs) == expected
    param = torch.nn.Parameter(torch.zeros(10, 3, dtype=param_dtype))
    optimizer = KahanAdamW([param], **kwargs)
    param.grad = torch.ones_like(param)
    optimizer.step()
    allocated = sum(value.nbytes for key, value in optimizer.state[param].items() if key != 'step')
    assert allocated == expected * param.numel()


def test_resume_keeps_fp32_moments_and_continues_identically():
    """torch's Optimizer.load_state_dict casts floating state to the parameter's dtype; the fp32
    moments of a bf16 parameter must survive a resume as fp32."""
    start, grads = _weights(), _grads((64, 48), 6)
    param = torch.nn.Parameter(start.to(torch.bfloat16))
    optimizer = KahanAdamW([param], lr=LR, weight_decay=WD)
    for grad in grads[:3]:
        param.grad = grad.to(torch.bfloat16)
        optimizer.step()
    saved_param, saved_state = param.detach().clone(), copy.deepcopy(optimizer.state_dict())
    resumed_param = torch.nn.Parameter(saved_param.clone())
    resumed = KahanAdamW([resumed_param], lr=LR, weight_decay=WD)
    resumed.load_state_dict(saved_state)
    state = resumed.state[resumed_param]
    assert state['exp_avg'].dtype == state['exp_avg_sq'].dtype == torch.float32
    assert state['compensation'].dtype == torch.bfloat16
    for grad in grads[3:]:
        for p, opt in ((param, optimizer), (resumed_param, resumed)):
            p.grad = grad.to(torch.bfloat16)
            opt.step()
    assert torch.equal(param, resumed_param)
    assert torch.equal(optimizer.state[param]['compensation'], state['compensation'])


def test_bad_arguments_are_refused():
    param = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match='floating-point dtype'):
        KahanAdamW([param], state_dtype='int32')
    with pytest.raises(ValueError, match='betas'):
        KahanAdamW([param], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match='lr'):
        KahanAdamW([param], lr=-1.0)
    optimizer = KahanAdamW([param])
    param.grad = torch.zeros(3).to_sparse()
    with pytest.raises(RuntimeError, match='sparse'):
        optimizer.step()
