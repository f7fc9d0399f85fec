# Copyright (c) finers_mm contributors. All rights reserved.
"""VLM adapters: Hugging Face image-text-to-text models loaded from local directories.

The interface (:mod:`.base`), by job: loading and LoRA (:mod:`.loading`), the coordinate
convention (:mod:`.coordinates`), generation (:mod:`.generation`), completion log-probs
(:mod:`.logprobs`); the Qwen-VL families (:mod:`.qwen_vl`); the rollout engines that sample
GRPO's completions (:mod:`.engines`).
"""
from .base import BaseVLMAdapter
from .engines import BaseRolloutEngine, HFRolloutEngine, VLLMRolloutEngine
from .generation import GenerationResult, completion_mask_after_eos
from .qwen_vl import Qwen2VLAdapter, Qwen3VLAdapter, Qwen25VLAdapter, QwenVLAdapter

__all__ = [
    'BaseVLMAdapter', 'GenerationResult', 'completion_mask_after_eos', 'QwenVLAdapter',
    'Qwen2VLAdapter', 'Qwen25VLAdapter', 'Qwen3VLAdapter', 'BaseRolloutEngine', 'HFRolloutEngine',
    'VLLMRolloutEngine'
]
