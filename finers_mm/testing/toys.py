# Copyright (c) finers_mm contributors. All rights reserved.
"""A toy model, dataset and metric for tests of the tools' plumbing (no FineRS model).

Importing this module registers :class:`ToyModel`, :class:`ToyDataset` and :class:`ToyMetric` in
mmengine's root registries; a config run by a tool in a subprocess gets them with
``custom_imports=dict(imports=['finers_mm', 'finers_mm.testing.toys'])`` (:func:`toy_test_config`).
"""
import os.path as osp
import textwrap
from typing import Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, METRICS, MODELS
from torch.utils.data import Dataset

from .paths import CONFIGS

#: samples of :class:`ToyDataset`: the values 0, 1, 2, 3, 4 (mean 2.0)
NUM_TOY_SAMPLES = 5


@MODELS.register_module(force=True)
class ToyModel(BaseModel):
    """Predicts each input's value; ``blob_size`` bytes per prediction make ``--out`` files big.

    Args:
        blob_size (int): bytes of padding in each prediction (0: none).
    """

    def __init__(self, blob_size: int = 0) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))
        self.blob_size = int(blob_size)

    def forward(self, inputs, data_samples=None, mode='predict'):
        return [dict(value=float(x), **self._blob()) for x in inputs * self.scale]

    def _blob(self) -> dict:
        """A new padding array per prediction (one shared array would pickle once)."""
        return dict(blob=np.full(self.blob_size, 7, np.uint8)) if self.blob_size else {}


@DATASETS.register_module(force=True)
class ToyDataset(Dataset):
    """:data:`NUM_TOY_SAMPLES` scalar inputs."""
    metainfo = dict()

    def __len__(self) -> int:
        return NUM_TOY_SAMPLES

    def __getitem__(self, index: int) -> dict:
        return dict(inputs=torch.tensor(float(index)))


@METRICS.register_module(force=True)
class ToyMetric(BaseMetric):
    """``toy/num_samples`` (an int) and ``toy/mean`` of the predicted values."""
    default_prefix = 'toy'

    def process(self, data_batch, data_samples) -> None:
        self.results.extend(sample['value'] for sample in data_samples)

    def compute_metrics(self, results: list) -> dict:
        return dict(num_samples=len(results), mean=sum(results) / len(results))


def toy_test_config(folder: str, imports: Sequence[str] = (), batch_size: int = 2,
                    blob_size: int = 0) -> str:
    """Write a test config of the toys (the finers_mm default runtime) into ``folder``.

    Args:
        folder (str): where the config file goes.
        imports (Sequence[str]): more modules for ``custom_imports``.
        batch_size (int): test batch size.
        blob_size (int): :class:`ToyModel`'s padding per prediction.

    Returns:
        str: the config file's path.
    """
    path = osp.join(str(folder), 'toy_test_config.py')
    runtime = osp.join(CONFIGS, '_base_', 'default_runtime.py')
    with open(path, 'w', encoding='utf-8') as f:
        f.write(textwrap.dedent(f"""
            _base_ = [{runtime!r}]
            custom_imports = dict(
                imports={['finers_mm', 'finers_mm.testing.toys', *imports]!r},
                allow_failed_imports=False)
            model = dict(type='ToyModel', blob_size={int(blob_size)})
            test_dataloader = dict(
                batch_size={int(batch_size)}, num_workers=0, dataset=dict(type='ToyDataset'),
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='default_collate'))
            test_evaluator = dict(type='ToyMetric')
            test_cfg = dict(type='TestLoop')
            """))
    return path
