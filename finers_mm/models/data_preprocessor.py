# Copyright (c) finers_mm contributors. All rights reserved.
"""The data preprocessor of the FineRS models: packed views to the arrays the VLM processor and
SAM take."""
from typing import Dict, List

import numpy as np
import torch
from mmengine.model import BaseDataPreprocessor

from finers_mm.registry import MODELS

#: the key of a batch already preprocessed by this preprocessor and handed on (GRPOHook
#: preprocesses the batch for its rollout; the model's ``train_step`` must not do it again)
PREPROCESSED_KEY = 'preprocessed'


@MODELS.register_module()
class FineRSDataPreprocessor(BaseDataPreprocessor):
    """Turn each packed view into a list of (H, W, 3) uint8 RGB numpy arrays, on the CPU.

    The Hugging Face processor (VLMs) and SAM's resize both work on CPU images, so the views are not
    moved to the device (the models move the processed tensors), and no pixel is copied: the
    arrays share the packed tensors' memory. Data samples, and any other key of the batch (the GRPO
    ``rollout`` put there by ``GRPOHook``), pass through unchanged.

    A batch is converted once: :meth:`hand_on` marks a converted batch (:data:`PREPROCESSED_KEY`),
    and a marked batch passes through :meth:`forward` as it is (the mark removed), so a hook that
    preprocessed the batch before the model's ``train_step`` (GRPOHook, for its rollout) hands it
    on instead of having it converted a second time.

    Input: ``data['inputs']`` is ``{view: [ (H, W, 3) uint8 tensor, ... ]}`` as collated by
    ``pseudo_collate`` from :class:`~finers_mm.datasets.transforms.PackFineRSInputs`.
    Output: ``{'inputs': {view: [ (H, W, 3) uint8 array, ... ]}, 'data_samples': [...]}``.
    """

    def forward(self, data: dict, training: bool = False) -> dict:
        """Convert the views, or pass a batch marked by :meth:`hand_on` through.

        Args:
            data (dict): ``inputs`` (view -> list of HWC tensors) and ``data_samples``.
            training (bool): unused; the conversion is the same.

        Returns:
            dict: ``inputs`` (view -> list of HWC arrays) and ``data_samples``.
        """
        if data.get(PREPROCESSED_KEY, False):
            return {key: value for key, value in data.items() if key != PREPROCESSED_KEY}
        return self.convert(data)

    def convert(self, data: dict) -> dict:
        """The conversion itself (see the class docstring).

        Args:
            data (dict): ``inputs`` (view -> list of (H, W, 3) uint8 tensors), ``data_samples``
                and any other keys.

        Returns:
            dict: ``inputs`` (view -> list of (H, W, 3) uint8 arrays), ``data_samples`` and the
            other keys unchanged.
        """
        views: Dict[str, List[np.ndarray]] = {
            view: [_to_hwc_array(image) for image in images]
            for view, images in data['inputs'].items()
        }
        extra = {key: value for key, value in data.items() if key not in ('inputs', 'data_samples')}
        return dict(inputs=views, data_samples=data.get('data_samples'), **extra)

    @staticmethod
    def hand_on(batch: dict, preprocessed: dict) -> None:
        """Replace ``batch`` (in place) by its ``preprocessed`` form, marked as converted, so that
        the model's ``train_step`` hands it to the model as it is.

        Args:
            batch (dict): the batch the dataloader gave (the object ``train_step`` receives).
            preprocessed (dict): what :meth:`forward` returned for it, plus any keys to add
                (e.g. the GRPO ``rollout``).
        """
        batch.clear()
        batch.update(preprocessed)
        batch[PREPROCESSED_KEY] = True


def _to_hwc_array(image) -> np.ndarray:
    """(H, W, 3) uint8 tensor or array -> (H, W, 3) uint8 numpy array (no copy on the CPU)."""
    if isinstance(image, torch.Tensor):
        return image.detach().cpu().numpy()
    return np.asarray(image)
