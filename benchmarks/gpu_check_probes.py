# Copyright (c) finers_mm contributors. All rights reserved.
"""Measuring one GRPO iteration from the outside, for ``benchmarks/gpu_check.py``.

:class:`PhaseProbeHook` (priority HIGHEST) replaces, on the instances of the run, the calls a GRPO
iteration is made of with timed ones: the rollout (the policy adapter's ``generate_from_inputs``,
which ``generate`` calls), the reference log-probs (``GRPOHook.reference_policy.logprobs``), the
policy forward with the loss (the stage's ``grpo_loss``), the backward and the optimiser step (the
optimiser wrapper's ``backward`` and ``step``, which ``update_params`` calls). Each phase records
its wall time (with ``torch.cuda.synchronize`` on a GPU) and, on a GPU, the memory allocated when
it starts and ends and its peak (``torch.cuda.max_memory_allocated``, reset as it starts). Nothing
in the run's code changes; a phase that never ran is absent from the record.

:class:`DecodeClock` splits the rollout into prefill and decode: a forward hook on the lm_head
notes the time of each of its calls (the prefill's, then one per decode step), whichever loop
drives the model (``generate`` or the shared-prefill loop).
"""
import time
from contextlib import contextmanager
from typing import Dict, List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

#: the phases of one GRPO iteration, in the order they run
PHASES = ('rollout', 'reference', 'policy_forward', 'policy_backward', 'optimizer_step')
#: the phases of the policy update (after the rollout and the reference log-probs)
UPDATE_PHASES = ('policy_forward', 'policy_backward', 'optimizer_step')


def _sync(cuda: bool) -> None:
    if cuda:
        torch.cuda.synchronize()


class DecodeClock:
    """The times of the lm_head's calls during a rollout (one per forward of the model).

    Args:
        lm_head (torch.nn.Module): the policy's output projection.
        cuda (bool): synchronise before reading the clock.
    """

    def __init__(self, lm_head: torch.nn.Module, cuda: bool) -> None:
        self.lm_head, self.cuda = lm_head, cuda
        self.start = 0.0
        self.calls: List[float] = []
        self.rows = 0

    def _note(self, module, inputs, output) -> None:
        _sync(self.cuda)
        self.calls.append(time.perf_counter())
        self.rows = int(output.shape[0])

    @contextmanager
    def running(self):
        """Clock the lm_head inside the context."""
        self.calls, self.rows = [], 0
        handle = self.lm_head.register_forward_hook(self._note)
        _sync(self.cuda)
        self.start = time.perf_counter()
        try:
            yield self
        finally:
            handle.remove()

    def summary(self) -> Dict[str, Optional[float]]:
        """Prefill and decode of the last rollout.

        Returns:
            dict: ``prefill_seconds`` (start to the first lm_head call), ``decode_steps``
            (calls after the first), ``decode_seconds`` (first to last call), ``rows``
            (sequences in a decode step) and ``decode_tokens_per_s`` (``rows x steps /
            seconds``; None without a decode step).
        """
        if not self.calls:
            return dict(prefill_seconds=None, decode_steps=0, decode_seconds=None, rows=0,
                        decode_tokens_per_s=None)
        steps = len(self.calls) - 1
        seconds = self.calls[-1] - self.calls[0]
        return dict(prefill_seconds=self.calls[0] - self.start, decode_steps=steps,
                    decode_seconds=seconds, rows=self.rows,
                    decode_tokens_per_s=self.rows * steps / seconds if steps and seconds > 0
                    else None)


class PhaseMeter:
    """Wall time and GPU memory of named phases, per training iteration.

    Args:
        cuda (bool): measure memory and synchronise (a GPU run).
    """

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.iterations: List[Dict[str, dict]] = []
        self.rollouts: List[dict] = []
        self.clock: Optional[DecodeClock] = None
        self.last_request: Optional[tuple] = None

    def _bytes(self, fn) -> Optional[int]:
        return int(fn()) if self.cuda else None

    def begin_iteration(self) -> None:
        """Start the record of a new iteration."""
        self.iterations.append({})

    @contextmanager
    def measure(self, phase: str):
        """Time the work inside the context as ``phase`` of the current iteration; a phase
        entered twice in an iteration adds its seconds and keeps its largest peak."""
        if not self.iterations:
            self.begin_iteration()
        _sync(self.cuda)
        start_bytes = self._bytes(torch.cuda.memory_allocated)
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        try:
            yield
        finally:
            _sync(self.cuda)
            seconds = time.perf_counter() - start
            record = dict(seconds=seconds, start_bytes=start_bytes,
                          end_bytes=self._bytes(torch.cuda.memory_allocated),
                          peak_bytes=self._bytes(torch.cuda.max_memory_allocated), calls=1)
            previous = self.iterations[-1].get(phase)
            if previous is not None:
                record.update(seconds=previous['seconds'] + seconds,
                              start_bytes=previous['start_bytes'],
                              calls=previous['calls'] + 1,
                              peak_bytes=max(previous['peak_bytes'], record['peak_bytes'])
                              if self.cuda else None)
            self.iterations[-1][phase] = record

    def wrap(self, owner, name: str, phase: str) -> None:
        """Replace the bound method ``owner.name`` (on this instance only) by one measured as
        ``phase``."""
        method = getattr(owner, name)

        def measured(*args, **kwargs):
            with self.measure(phase):
                return method(*args, **kwargs)

        setattr(owner, name, measured)

    def wrap_rollout(self, adapter, lm_head: torch.nn.Module) -> None:
        """Measure ``adapter.generate_from_inputs`` as the rollout, clocking its lm_head, and note
        the prompt it decoded (tokens, image tokens, samples); keep the images and prompts of
        the last ``adapter.generate`` call in ``last_request`` (another engine's input)."""
        method, generate = adapter.generate_from_inputs, adapter.generate

        def noted(images, prompts, *args, **kwargs):
            self.last_request = (list(images), list(prompts))
            return generate(images, prompts, *args, **kwargs)

        adapter.generate = noted
        self.clock = DecodeClock(lm_head, self.cuda)
        image_token = getattr(adapter.model.config, 'image_token_id', None)

        def measured(prompt_inputs, *args, **kwargs):
            with self.measure('rollout'), self.clock.running():
                result = method(prompt_inputs, *args, **kwargs)
            ids = prompt_inputs['input_ids']
            lengths = result.completion_mask.sum(dim=1)
            self.rollouts.append(dict(
                self.clock.summary(), prompts=int(ids.shape[0]), prompt_tokens=int(ids.shape[1]),
                image_tokens=int((ids[0] == image_token).sum()) if image_token is not None
                else 0, sequences=int(result.completion_ids.shape[0]),
                completion_tokens=int(lengths.sum()), max_completion_length=int(lengths.max())))
            return result

        adapter.generate_from_inputs = measured


class PhaseProbeHook(Hook):
    """Puts a :class:`PhaseMeter` on the phases of each GRPO iteration of a run (register it with
    priority ``'HIGHEST'``, so its ``before_train`` sees the built optimiser wrapper before any
    other hook and its ``before_train_iter`` opens the iteration before ``GRPOHook``'s rollout).

    Args:
        meter (PhaseMeter): where the measurements go.
    """

    def __init__(self, meter: PhaseMeter) -> None:
        self.meter = meter
        self.setup_bytes: Optional[int] = None
        self.hub: Dict[str, List[float]] = {}

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        [grpo] = [hook for hook in runner.hooks if type(hook).__name__ == 'GRPOHook']
        self.meter.wrap_rollout(model.vlm, model.vlm.model.get_output_embeddings())
        self.meter.wrap(grpo.reference_policy, 'logprobs', 'reference')
        self.meter.wrap(model, 'grpo_loss', 'policy_forward')
        self.meter.wrap(runner.optim_wrapper, 'backward', 'policy_backward')
        self.meter.wrap(runner.optim_wrapper, 'step', 'optimizer_step')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self.setup_bytes is None and self.meter.cuda:
            # the policy and the frozen reference, before any gradient or optimiser state
            self.setup_bytes = int(torch.cuda.memory_allocated())
        self.meter.begin_iteration()

    def after_train(self, runner) -> None:
        """Keep GRPOHook's logged scalars of every iteration (its timings, lengths, rewards)."""
        hub = runner.message_hub
        for key in ('train/rollout_time', 'train/reference_time', 'train/update_time',
                    'train/completion_length', 'train/reward', 'train/loss', 'train/kl'):
            if key in hub.log_scalars:
                values, _ = hub.get_scalar(key).data
                self.hub[key.split('/', 1)[1]] = [float(v) for v in values]


def measure_copy_bandwidth(device: str, megabytes: int = 1024, repeats: int = 5) -> float:
    """The memory bandwidth of a device-to-itself copy (bytes read + written per second).

    Args:
        device (str): ``'cuda'`` or ``'cpu'``.
        megabytes (int): size of the copied buffer.
        repeats (int): timed copies after one warm-up; the fastest counts.

    Returns:
        float: bytes per second.
    """
    cuda = torch.device(device).type == 'cuda'
    source = torch.empty(megabytes * 2**20, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    best = float('inf')
    for _ in range(repeats):
        _sync(cuda)
        start = time.perf_counter()
        target.copy_(source)
        _sync(cuda)
        best = min(best, time.perf_counter() - start)
    return 2 * source.numel() / best
