# Copyright (c) finers_mm contributors. All rights reserved.
"""VLLMRolloutEngine: vLLM colocated in the training process (one engine per rank, GPU only).

What it does, after trl's ``vllm_mode='colocate'`` (``trl/generation/vllm_generation.py``) and
veRL/EasyR1's sharding manager:

- :meth:`~VLLMRolloutEngine.setup`: ``vllm.LLM`` on the adapter's LOCAL checkpoint directory,
  tensor parallel size 1 per rank, the ``external_launcher`` executor (in the training process,
  which mmengine's launcher started), sleep mode on, one image per prompt, the adapter's image
  budget, the checkpoint's sampling defaults ignored (``generation_config='vllm'``, as the
  adapter ignores them), then asleep;
- :meth:`~VLLMRolloutEngine.before_rollout`: wake the weights, push the policy's current
  weights when they changed (LoRA merged first and unmerged after, named as the checkpoint
  names them: :mod:`.weight_names`), wake the KV cache;
- :meth:`~VLLMRolloutEngine.generate`: one request per prompt (the same chat-templated text and
  image our processor encodes, ``n`` samples, seeded per (rollout seed, prompt)); vLLM's prompt
  tokens are checked against our processor's and its completion tokens become the adapter's
  :class:`~finers_mm.models.vlm.GenerationResult` (:mod:`.vllm_requests`);
- :meth:`~VLLMRolloutEngine.after_rollout`: sleep (level 1 offloads the weights to CPU memory,
  level 2 drops them: they are pushed again at the next wake);
- :meth:`~VLLMRolloutEngine.after_optimizer_step`: the engine's weights are stale.

``vllm`` is imported when the engine is set up, never at import time: install it with
``pip install -e .[vllm]``.
"""
import os
import socket
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence

import numpy as np

from finers_mm.registry import TASK_UTILS
from .base import BaseRolloutEngine
from .vllm_requests import (build_requests, check_prompt_tokens, completions_to_result,
                            eos_ids, request_seed, sampling_kwargs)
from .weight_names import base_model, checkpoint_names, iter_engine_weights, merged_lora

if TYPE_CHECKING:
    from ..base import BaseVLMAdapter
    from ..generation import GenerationResult

#: the adapter's ``dtype`` -> vLLM's (vLLM's 'auto' turns a float32 checkpoint into float16)
VLLM_DTYPES = {'float32': 'float32', 'bfloat16': 'bfloat16', 'float16': 'float16',
               'auto': 'auto'}


def import_vllm() -> Any:
    """The ``vllm`` module, or an error that says how to install it."""
    try:
        import vllm
    except ImportError as error:
        raise ImportError(
            'VLLMRolloutEngine needs vLLM, which is an extra of finers_mm: install it with '
            "`pip install -e .[vllm]` (a CUDA GPU is required), or use "
            "rollout_engine=dict(type='HFRolloutEngine').") from error
    return vllm


@TASK_UTILS.register_module()
class VLLMRolloutEngine(BaseRolloutEngine):
    """Sample GRPO rollouts with vLLM colocated on each training GPU.

    Args:
        gpu_memory_utilization (float): the share of the GPU vLLM may hold (weights + KV
            cache) while awake; the rest is the training step's. Defaults to 0.3.
        max_model_len (int): prompt + completion tokens per sequence. Defaults to 4096.
        max_num_seqs (int, optional): sequences decoded at once (vLLM's default when None).
        sleep_level (int): 1 offloads the weights to CPU memory between rollouts, 2 drops them
            (pushed again before each rollout; less host memory); 0 keeps vLLM awake.
            Defaults to 1.
        dtype (str, optional): vLLM's dtype; None takes the adapter's ``dtype``.
        enforce_eager (bool): no CUDA graphs (less memory and start-up time). Defaults to False.
        mm_processor_kwargs (dict, optional): overrides of vLLM's processor call; None gives
            the adapter's image budget (``min_pixels`` / ``max_pixels``).
        check_prompts (bool): check every rollout's prompt tokens against our processor's
            (:func:`~.vllm_requests.check_prompt_tokens`). Defaults to True.
        llm_kwargs (dict, optional): further ``vllm.LLM`` arguments.
    """

    def __init__(self, gpu_memory_utilization: float = 0.3, max_model_len: int = 4096,
                 max_num_seqs: Optional[int] = None, sleep_level: int = 1,
                 dtype: Optional[str] = None, enforce_eager: bool = False,
                 mm_processor_kwargs: Optional[dict] = None, check_prompts: bool = True,
                 llm_kwargs: Optional[dict] = None) -> None:
        if sleep_level not in (0, 1, 2):
            raise ValueError(f'VLLMRolloutEngine: sleep_level must be 0, 1 or 2, got '
                             f'{sleep_level!r}')
        if not 0.0 < gpu_memory_utilization < 1.0:
            raise ValueError('VLLMRolloutEngine: gpu_memory_utilization must be in (0, 1), '
                             f'got {gpu_memory_utilization!r}')
        if dtype is not None and dtype not in VLLM_DTYPES:
            raise ValueError(f'VLLMRolloutEngine: unknown dtype {dtype!r}; expected one of '
                             f'{sorted(VLLM_DTYPES)}')
        self.gpu_memory_utilization = float(gpu_memory_utilization)
        self.max_model_len = int(max_model_len)
        self.max_num_seqs = max_num_seqs
        self.sleep_level = int(sleep_level)
        self.dtype = dtype
        self.enforce_eager = enforce_eager
        self.mm_processor_kwargs = mm_processor_kwargs
        self.check_prompts = check_prompts
        self.llm_kwargs = dict(llm_kwargs or {})
        self.llm = None
        self._names: Optional[Dict[str, str]] = None
        self._stale = True  # a resumed or load_from policy differs from the checkpoint on disk
        self._asleep = False

    # --------------------------------------------------------------------------------------------
    # What vLLM is given (pure: tested on CPU)
    # --------------------------------------------------------------------------------------------

    def llm_arguments(self, adapter: 'BaseVLMAdapter', seed: int = 0) -> dict:
        """The ``vllm.LLM`` arguments for the adapter's policy.

        Args:
            adapter (BaseVLMAdapter): the policy; its ``pretrained`` directory is loaded.
            seed (int): the engine's seed (requests carry their own).

        Returns:
            dict: keyword arguments of ``vllm.LLM``.
        """
        size = adapter.processor.image_processor.size
        mm_kwargs = (dict(min_pixels=int(size['shortest_edge']),
                          max_pixels=int(size['longest_edge']))
                     if self.mm_processor_kwargs is None else dict(self.mm_processor_kwargs))
        arguments = dict(
            model=adapter.pretrained, tokenizer=adapter.pretrained,
            dtype=VLLM_DTYPES[self.dtype or adapter_dtype(adapter)],
            gpu_memory_utilization=self.gpu_memory_utilization,
            max_model_len=self.max_model_len, enable_sleep_mode=self.sleep_level > 0,
            seed=int(seed), tensor_parallel_size=1,
            distributed_executor_backend='external_launcher',
            limit_mm_per_prompt={'image': 1}, mm_processor_kwargs=mm_kwargs,
            generation_config='vllm', enforce_eager=self.enforce_eager)
        if self.max_num_seqs is not None:
            arguments['max_num_seqs'] = int(self.max_num_seqs)
        arguments.update(self.llm_kwargs)
        return arguments

    def sampling_arguments(self, adapter: 'BaseVLMAdapter', num_prompts: int,
                           seed: Optional[int], **overrides) -> list:
        """The ``vllm.SamplingParams`` fields of each prompt of a rollout.

        Args:
            adapter (BaseVLMAdapter): its ``generation`` settings, eos and blocked ids.
            num_prompts (int): B.
            seed (int, optional): the rollout's seed; None: unseeded requests.
            **overrides: the call's generation settings.

        Returns:
            list[dict]: B dicts (:func:`~.vllm_requests.sampling_kwargs`).
        """
        settings = dict(adapter.generation, **overrides)
        blocked = adapter.model.generation_config.suppress_tokens or ()
        return [sampling_kwargs(settings, eos_ids(adapter), blocked,
                                None if seed is None else request_seed(seed, index))
                for index in range(num_prompts)]

    # --------------------------------------------------------------------------------------------
    # Lifecycle (GPU)
    # --------------------------------------------------------------------------------------------

    def setup(self, adapter: 'BaseVLMAdapter', seed: int = 0, rank: int = 0) -> None:
        """Start vLLM on this rank's GPU and put it to sleep."""
        vllm = import_vllm()
        set_launcher_environment(rank)
        self.attach(vllm.LLM(**self.llm_arguments(adapter, seed=seed + rank)), adapter)

    def attach(self, llm: Any, adapter: 'BaseVLMAdapter') -> None:
        """Use a started ``vllm.LLM`` (of the adapter's checkpoint) and put it to sleep; its
        weights are pushed before the first rollout (the policy may have been loaded from a
        checkpoint since)."""
        self._names = checkpoint_names(base_model(adapter.model))
        self.llm = llm
        self._asleep = False
        self._stale = True
        self._sleep()

    def before_rollout(self, adapter: 'BaseVLMAdapter') -> None:
        """Wake vLLM; push the policy's weights if they changed (or were dropped)."""
        self._require_setup()
        if self._asleep:
            self.llm.wake_up(tags=['weights'])
        if self._stale:
            self.sync_weights(adapter)
        if self._asleep:
            self.llm.wake_up(tags=['kv_cache'])
            self._asleep = False

    def after_rollout(self, adapter: 'BaseVLMAdapter') -> None:
        """Put vLLM to sleep until the next rollout."""
        self._sleep()

    def after_optimizer_step(self, adapter: 'BaseVLMAdapter') -> None:
        """The policy changed: push its weights before the next rollout."""
        self._stale = True

    def sync_weights(self, adapter: 'BaseVLMAdapter') -> None:
        """Load the policy's current weights into vLLM's model, LoRA merged, under the
        checkpoint's names; then drop vLLM's prefix cache (computed with the old weights)."""
        self._require_setup()
        model = self._vllm_model()
        with merged_lora(adapter.model):
            for name, tensor in iter_engine_weights(adapter.model, self._names):
                model.load_weights([(name, tensor)])
        self.llm.reset_prefix_cache()
        self._stale = False

    def generate(self, adapter: 'BaseVLMAdapter', images: Sequence[np.ndarray],
                 prompts: Sequence[str], seed: Optional[int] = None,
                 **sampling) -> 'GenerationResult':
        """See :meth:`BaseRolloutEngine.generate` (between :meth:`before_rollout` and
        :meth:`after_rollout`)."""
        self._require_setup()
        vllm = import_vllm()
        requests = build_requests(adapter, images, prompts)
        params = [vllm.SamplingParams(**kwargs)
                  for kwargs in self.sampling_arguments(adapter, len(prompts), seed, **sampling)]
        outputs = self.llm.generate(requests, sampling_params=params, use_tqdm=False)
        prompt_inputs = adapter.build_inputs(images, prompts)
        if self.check_prompts:
            check_prompt_tokens([output.prompt_token_ids for output in outputs], prompt_inputs)
        n = params[0].n
        token_ids = [list(sample.token_ids) for output in outputs for sample in output.outputs]
        result = completions_to_result(token_ids, eos_ids(adapter),
                                       adapter.model.generation_config.pad_token_id, adapter,
                                       prompt_inputs, n)
        result.prompt_inputs = prompt_inputs.to(adapter.device)
        return result

    # --------------------------------------------------------------------------------------------

    def _require_setup(self) -> None:
        if self.llm is None:
            raise RuntimeError('VLLMRolloutEngine: call setup(adapter) before sampling (GRPOHook '
                               'does it before training)')

    def _sleep(self) -> None:
        if self.sleep_level and not self._asleep:
            self.llm.sleep(level=self.sleep_level)
            self._asleep = True
            if self.sleep_level == 2:  # the weights are gone: push them again at the next wake
                self._stale = True

    def _vllm_model(self) -> Any:
        """vLLM's model in this process (the ``external_launcher`` executor runs in-process):
        trl's path to it."""
        executor = self.llm.llm_engine.model_executor
        return executor.driver_worker.model_runner.model


def set_launcher_environment(rank: int) -> None:
    """The variables vLLM's ``external_launcher`` executor reads to join the process group:
    those of mmengine's distributed launcher when it set them, a one-process group otherwise
    (what trl does before it builds a colocated engine)."""
    os.environ.setdefault('RANK', str(rank))
    os.environ.setdefault('LOCAL_RANK', str(rank))
    os.environ.setdefault('WORLD_SIZE', '1')
    os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
    if 'MASTER_PORT' not in os.environ:
        with socket.socket() as probe:  # a free local port for the one-process group
            probe.bind(('127.0.0.1', 0))
            os.environ['MASTER_PORT'] = str(probe.getsockname()[1])


def adapter_dtype(adapter: 'BaseVLMAdapter') -> str:
    """The adapter's weights' dtype as a config string ('bfloat16', ...)."""
    import torch
    dtype = next(adapter.model.parameters()).dtype
    return {torch.float32: 'float32', torch.bfloat16: 'bfloat16',
            torch.float16: 'float16'}.get(dtype, 'auto')
