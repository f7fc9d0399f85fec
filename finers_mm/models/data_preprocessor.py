# Copyright (c) finers_mm contributors. All rights reserved.
"""The data preprocessor of the FineRS models: packed views to the arrays the VLM processor and SAM take."""
from typing import Dict, List

import numpy as np
import torch
from mmengine.model import BaseDataPreprocessor

from finers_mm.registry import MODELS


@MODELS.register_module()
class FineRSDataPreprocessor(BaseDataPreprocessor):
    """Turn each packed view into a list of (H, W, 3) uint8 RGB numpy arrays, on the CPU.

    The Hugging Face processor (VLMs) and SAM's resize both work on CPU images, so the views are not
    moved to the device (the models move the processed tensors), and no pixel is copied: the
    arrays share the packed tensors' memory. Data samples, and any other key of the batch (the GRPO
    ``rollout`` put there by ``GRPOHook``), pass through unchanged.

    Input: ``data['inputs']`` is ``{view: [ (H, W, 3) uint8 tensor, ... ]}`` as collated by
    ``pseudo_collate`` from :class:`~finers_mm.datasets.transforms.PackFineRSInputs`.
    Output: ``{'inputs': {view: [ (H, W, 3) uint8 array, ... ]}, 'data_samples': [...]}``.
    """

    def forward(self, data: dict, training: bool = False) -> dict:
        """Convert the views.

        Args:
            data (dict): ``inputs`` (view -> list of CHW tensors) and ``data_samples``.
            training (bool): unused; the conversion is the same.

        Returns:
            dict: ``inputs`` (view -> list of HWC arrays) and ``data_samples``.
        """
        views: Dict[str, List[np.ndarray]] = {
            view: [_to_hwc_array(image) for image in images]
            for view, images in data['inputs'].items()
        }
        extra = {key: value for key, value in data.items() if key not in ('inputs', 'data_samples')}
        return dict(inputs=views, data_samples=data.get('data_samples'), **extra)


def _to_hwc_array(image) -> np.ndarray:
    """(H, W, 3) uint8 tensor or array -> (H, W, 3) uint8 numpy array (no copy on the CPU)."""
    if isinstance(image, torch.Tensor):
        return image.detach().cpu().numpy()
    return np.asarray(image)
