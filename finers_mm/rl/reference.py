# Copyright (c) finers_mm contributors. All rights reserved.
"""The KL reference policy of a GRPO run: which model it is, where it came from, its log-probs."""
import logging
import os.path as osp
from typing import Optional

import torch
from mmengine.logging import print_log

from finers_mm.models.vlm import BaseVLMAdapter, GenerationResult
from finers_mm.models.vlm.sharding import is_sharded

#: the checkpoint meta key recording where a full fine-tune's KL reference came from
REFERENCE_META_KEY = 'grpo_reference'
#: "no record": a checkpoint saved before the record existed, or no checkpoint loaded
_UNKNOWN = object()


class ReferencePolicy:
    """The reference policy of the GRPO KL term, over the lifecycle of a run.

    - LoRA: the policy with its adapter disabled; nothing to build or record.
    - Full fine-tune: a frozen copy of the policy as training starts, i.e. after mmengine loaded
      ``load_from`` (so an SFT warm-up loaded with ``load_from`` is the reference, not the config's
      ``pretrained`` model). The copy's weights are not saved: each checkpoint's meta records the
      reference's ORIGIN (``meta['grpo_reference']``: the absolute ``load_from`` path the run
      started from, or None for ``pretrained``), and a resumed run rebuilds the reference from it
      rather than copying the resumed policy. A checkpoint saved before this record existed resumes
      with the ``pretrained`` model as the reference (the behaviour of those runs), with a warning.

    :class:`~finers_mm.rl.GRPOHook` owns one and forwards mmengine's hook calls to it: it reads
    only the runner's public API (``runner.cfg``'s ``load_from`` / ``resume``, ``runner.iter``) and
    the checkpoints mmengine hands to ``after_load_checkpoint`` / ``before_save_checkpoint``.
    It is not a hook of its own because the rollout needs it within the same iteration (for the
    reference log-probs) and a config should not have to list two hooks that only work together.

    Args:
        micro_batch (int): completions per forward when computing reference log-probs.
    """

    def __init__(self, micro_batch: int = 16) -> None:
        self.micro_batch = int(micro_batch)
        #: the frozen copy (full fine-tune with a KL term), else None
        self.frozen: Optional[BaseVLMAdapter] = None
        self._origin = _UNKNOWN  # of this run's reference; None: `pretrained`
        self._loaded = False  # mmengine loaded a checkpoint (load_from or resume)
        self._loaded_origin = _UNKNOWN  # what the loaded checkpoint recorded

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Remember that a checkpoint was loaded and the reference origin it records.

        mmengine calls this for ``load_from`` and for a resume, both before ``before_train``.
        """
        self._loaded = True
        self._loaded_origin = checkpoint.get('meta', {}).get(REFERENCE_META_KEY, _UNKNOWN)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Record this run's reference origin in ``checkpoint['meta']`` (full fine-tune only)."""
        if self._origin is not _UNKNOWN:
            checkpoint.setdefault('meta', {})[REFERENCE_META_KEY] = self._origin

    def setup(self, runner, model) -> None:
        """Build the frozen reference of a full fine-tune as training starts (``before_train``).

        Args:
            runner (mmengine.runner.Runner): the runner (public API only).
            model (VLMStageModel): the stage being trained (``vlm``, ``loss_grpo``,
                ``build_reference``).

        Raises:
            FileNotFoundError: a resumed run whose reference origin (a ``load_from`` checkpoint)
                no longer exists.
        """
        if not model.loss_grpo.uses_reference or model.vlm.use_lora:
            return
        if self._resumed(runner):
            origin = self._resumed_origin(model)
            source = 'pretrained' if origin is None else origin
            print_log(f'GRPOHook: resumed run: rebuilding the frozen reference policy from '
                      f'{model.vlm.pretrained if origin is None else origin!r}', logger='current')
        else:
            origin = self._start_origin(runner)
            source = 'policy'
            if is_sharded(model.vlm):
                # a sharded policy holds only this rank's slice: rebuild what it was loaded from
                # (the same weights), whole and in the adapter's dtype (bf16), once per GPU
                source = 'pretrained' if origin is None else origin
            print_log('GRPOHook: full fine-tune with a KL term: a frozen copy of the initial '
                      f'policy ({model.vlm.pretrained if origin is None else origin!r}) is the '
                      'reference', logger='current')
        self._origin = origin
        self.frozen = model.build_reference(source)

    def _resumed(self, runner) -> bool:
        """Whether this run resumed a checkpoint (rather than starting, maybe from load_from)."""
        return (self._loaded and bool(runner.cfg.get('resume', False))) or runner.iter > 0

    def _resumed_origin(self, model) -> Optional[str]:
        """The origin the resumed checkpoint records (None: ``pretrained``), checked to exist."""
        origin = self._loaded_origin
        if origin is _UNKNOWN:
            print_log('GRPOHook: the resumed checkpoint does not record the reference policy '
                      f'(meta[{REFERENCE_META_KEY!r}]); using the pretrained model '
                      f'{model.vlm.pretrained!r} as the reference', logger='current',
                      level=logging.WARNING)
            return None
        if origin is not None and not osp.exists(origin) and '://' not in origin:
            raise FileNotFoundError(
                f'GRPOHook: the resumed run started from load_from={origin!r}, its KL '
                'reference, which no longer exists; restore it to resume this run')
        return origin

    def _start_origin(self, runner) -> Optional[str]:
        """The ``load_from`` checkpoint a starting run loaded (None: it starts from
        ``pretrained``), as an absolute path when it is a local file."""
        if not self._loaded:
            return None
        load_from = runner.cfg.get('load_from', None)
        if load_from is None:
            print_log('GRPOHook: a checkpoint was loaded but the runner config names no '
                      '`load_from` (a Runner built without `cfg`), so the reference origin '
                      'cannot be recorded: a resumed run would use the pretrained model as the '
                      'reference. Build the runner with Runner.from_cfg.', logger='current',
                      level=logging.WARNING)
            return None
        load_from = str(load_from)
        return osp.abspath(load_from) if osp.exists(load_from) else load_from

    @torch.no_grad()
    def logprobs(self, model, generation: GenerationResult, temperature: float) -> torch.Tensor:
        """Reference log-probs of a rollout's completions, ``micro_batch`` completions' worth of
        prompts at a time (prompt-major rows, so a chunk of prompts is a block of rows).

        Args:
            model (VLMStageModel): the stage being trained (its ``vlm`` is the policy).
            generation (GenerationResult): B prompts, n completions each.
            temperature (float): the sampling temperature.

        Returns:
            torch.Tensor: (B*n, T) float32 log-probs, 0 off the completion mask.
        """
        n = generation.num_return_sequences
        prompts = generation.prompt_inputs['input_ids'].shape[0]
        per_chunk = max(1, self.micro_batch // n)
        chunks = []
        for first in range(0, prompts, per_chunk):
            last = min(prompts, first + per_chunk)
            rows = slice(first * n, last * n)
            args = (model.vlm.select_prompts(generation.prompt_inputs, first, last),
                    generation.completion_ids[rows], generation.completion_mask[rows],
                    temperature)
            if self.frozen is not None:
                chunks.append(self.frozen.completion_logprobs(*args))
            else:
                with model.vlm.reference_policy():
                    chunks.append(model.vlm.completion_logprobs(*args))
        return torch.cat(chunks)
