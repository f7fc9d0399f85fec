# Copyright (c) finers_mm contributors. All rights reserved.
"""HFRolloutEngine: the adapter's own Hugging Face ``generate`` (the default engine)."""
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np
import torch

from finers_mm.registry import TASK_UTILS
from .base import BaseRolloutEngine

if TYPE_CHECKING:
    from ..base import BaseVLMAdapter
    from ..generation import GenerationResult


@TASK_UTILS.register_module()
class HFRolloutEngine(BaseRolloutEngine):
    """Samples with the policy itself, in the training process: the adapter's
    :meth:`~finers_mm.models.vlm.BaseVLMAdapter.generate` (Hugging Face ``generate``, or the
    adapter's shared-prompt decoding), seeded through torch's global generator.

    Nothing to set up, sync or put to sleep: the policy samples with its current weights. Runs
    anywhere (CPU tests included).
    """

    def generate(self, adapter: 'BaseVLMAdapter', images: Sequence[np.ndarray],
                 prompts: Sequence[str], seed: Optional[int] = None,
                 **sampling) -> 'GenerationResult':
        """See :meth:`BaseRolloutEngine.generate`; ``seed`` seeds torch's global generator."""
        if seed is not None:
            torch.manual_seed(seed)
        return adapter.generate(images, prompts, **sampling)
