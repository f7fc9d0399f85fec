# Copyright (c) finers_mm contributors. All rights reserved.
"""The vLLM rollout rate of ``benchmarks/gpu_check.py``: the same checkpoint, prompt and group
sampled through :class:`~finers_mm.models.vlm.engines.VLLMRolloutEngine` (the engine GRPOHook
drives with ``rollout_engine=dict(type='VLLMRolloutEngine')``).

vLLM gives no prefill/decode split of its own, so two rollouts are timed after a warm-up: one of
1 new token (the prefill, and the processor our engine runs for the log-probs' inputs) and one of
``new_tokens``; the decode rate is the difference of their tokens over the difference of their
times. Runs only with a GPU and ``vllm`` importable; otherwise says why not.
"""
import time
from typing import Dict, Sequence

import numpy as np
import torch


def vllm_unavailable(cuda: bool) -> str:
    """Why vLLM cannot be measured here, or '' when it can."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        return 'not installed'
    return '' if cuda else 'needs a GPU'


def measure_vllm(vlm_cfg: dict, images: Sequence[np.ndarray], prompts: Sequence[str], n: int,
                 new_tokens: int, gpu_memory_utilization: float = 0.5,
                 enforce_eager: bool = False) -> Dict:
    """Decode tokens/s of vLLM on one rollout of the GRPO iteration's shapes.

    Args:
        vlm_cfg (dict): the policy adapter's config (``model.vlm`` of the run, its
            ``pretrained`` the check's checkpoint); built anew in bf16 on the GPU for the
            engine (its tokenizer, processor and the weights it pushes).
        images (Sequence[np.ndarray]): the rollout's B images.
        prompts (Sequence[str]): the rollout's B prompts.
        n (int): samples per prompt.
        new_tokens (int): tokens per completion (at most: vLLM has no ``min_new_tokens``; the
            tokens actually sampled are counted).
        gpu_memory_utilization (float): vLLM's share of the GPU.
        enforce_eager (bool): no CUDA graphs.

    Returns:
        dict: ``status`` ('measured'), ``version``, ``startup_seconds``, ``rows``,
        ``prompt_tokens``, ``max_completion_length``, ``prefill_seconds`` (the 1-token
        rollout), ``decode_seconds``, ``decode_steps`` and ``decode_tokens_per_s``.
    """
    import vllm

    from finers_mm.registry import MODELS, TASK_UTILS

    cfg = dict(vlm_cfg, gradient_checkpointing=False,
               generation=dict(max_new_tokens=int(new_tokens)))
    adapter = MODELS.build(cfg).to('cuda')
    prompt_tokens = int(adapter.build_inputs(list(images), list(prompts))['input_ids'].shape[1])
    engine = TASK_UTILS.build(dict(
        type='VLLMRolloutEngine', gpu_memory_utilization=gpu_memory_utilization,
        max_model_len=prompt_tokens + int(new_tokens) + 16, sleep_level=0,
        enforce_eager=enforce_eager))
    start = time.perf_counter()
    engine.setup(adapter, seed=0)
    engine.before_rollout(adapter)
    startup = time.perf_counter() - start
    sampling = dict(do_sample=True, temperature=1.0, top_p=1.0, num_return_sequences=int(n))
    engine.generate(adapter, images, prompts, seed=0, max_new_tokens=2, **sampling)  # warm-up
    timed = {}
    for tokens in (1, int(new_tokens)):
        torch.cuda.synchronize()
        start = time.perf_counter()
        result = engine.generate(adapter, images, prompts, seed=1, max_new_tokens=tokens,
                                 **sampling)
        torch.cuda.synchronize()
        lengths = result.completion_mask.sum(dim=1)
        timed[tokens] = (time.perf_counter() - start, int(lengths.sum()), int(lengths.max()))
    (prefill, first_tokens, _), (total, all_tokens, longest) = timed[1], timed[int(new_tokens)]
    rows = len(prompts) * int(n)
    decode = total - prefill
    return dict(status='measured', version=getattr(vllm, '__version__', '?'),
                startup_seconds=startup, rows=rows, sequences=rows, prompt_tokens=prompt_tokens,
                max_completion_length=longest, prefill_seconds=prefill, decode_seconds=decode,
                decode_steps=longest - 1,
                decode_tokens_per_s=(all_tokens - first_tokens) / decode if decode > 0 else None)
