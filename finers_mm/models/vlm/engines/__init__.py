# Copyright (c) finers_mm contributors. All rights reserved.
"""Rollout engines: what samples GRPO's completions, behind one interface (:mod:`.base`).

- :class:`HFRolloutEngine` (default): the adapter's own Hugging Face generate (:mod:`.hf`);
- :class:`VLLMRolloutEngine`: vLLM colocated on each training GPU, the policy's weights pushed
  after each optimiser step (:mod:`.vllm_engine`; requests and results in
  :mod:`.vllm_requests`, weight names in :mod:`.weight_names`; ``pip install -e .[vllm]``).

Both return the adapter's :class:`~finers_mm.models.vlm.GenerationResult`. Registered in
``TASK_UTILS``: ``GRPOHook(rollout_engine=dict(type='VLLMRolloutEngine', ...))``.
"""
from .base import BaseRolloutEngine
from .hf import HFRolloutEngine
from .vllm_engine import VLLMRolloutEngine

__all__ = ['BaseRolloutEngine', 'HFRolloutEngine', 'VLLMRolloutEngine']
