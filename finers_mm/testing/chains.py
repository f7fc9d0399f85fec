# Copyright (c) finers_mm contributors. All rights reserved.
"""The tiny FineRS test chains: the repository's tiny configs pointed at the tiny models."""
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from finers_mm.registry import DATASETS, MODELS
from finers_mm.utils.run_config import load_config
from .paths import BUNDLED_DATA, config_path
from .scripted import OracleScripts, halves_points

#: the tiny chain with SAM, and the same chain with the mmseg and SAM 2 mask heads
SAM_CONFIG = config_path('finers', 'finers_tiny_test.py')
MMSEG_CONFIG = config_path('finers', 'finers_tiny_test_mmseg.py')
SAM2_CONFIG = config_path('finers', 'finers_tiny_test_sam2.py')


def chain_config(config_file: str, tiny_models: dict,
                 cfg_options: Optional[dict] = None) -> Config:
    """A tiny FineRS test config pointed at ``tiny_models`` and the bundled data, read as the
    tools read it (:func:`~finers_mm.utils.run_config.load_config`).

    Args:
        config_file (str): e.g. :data:`SAM_CONFIG`.
        tiny_models (dict): paths from :func:`~finers_mm.testing.tiny_models.build_tiny_models`.
        cfg_options (dict, optional): further ``--cfg-options``, e.g. ``{'protocol': 'authors'}``.

    Returns:
        Config: the config.
    """
    cfg = load_config(config_file, {
        'model.explorer.vlm.pretrained': tiny_models['qwen2_5_vl'],
        'model.refiner.vlm.pretrained': tiny_models['qwen2_5_vl'],
        'test_dataloader.dataset.data_root': BUNDLED_DATA,
        **(cfg_options or {}),
    })
    if cfg.model.mask_head.type == 'SAMMaskHead':  # the session's tiny SAM
        cfg.merge_from_dict({'model.mask_head.config': tiny_models['sam_config'],
                             'model.mask_head.checkpoint': tiny_models['sam']})
    return cfg


def oracle_chain(config_file: str, tiny_models: dict, batch_size: int = 4):
    """The chain of ``config_file`` with scripted VLMs naming the GT (:class:`OracleScripts`,
    the refiner's points the centres of the GT box's halves) on every bundled sample.

    Args:
        config_file (str): a tiny FineRS test config.
        tiny_models (dict): paths of the tiny models.
        batch_size (int): samples per ``test_step``.

    Returns:
        tuple: the dataset and the predicted ``DetDataSample`` s, in dataset order.
    """
    init_default_scope('finers_mm')
    cfg = chain_config(config_file, tiny_models)
    cfg.model.explorer.vlm.type = 'ScriptedQwen25VLAdapter'
    cfg.model.refiner.vlm.type = 'ScriptedQwen25VLAdapter'
    torch.manual_seed(0)
    detector = MODELS.build(cfg.model).eval()
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    oracle = OracleScripts(detector, dataset)
    points = {info['ann_index']: halves_points(info['gt_bbox']) for info in oracle.infos}
    detector.explorer.vlm.script = oracle.explorer
    detector.refiner.vlm.script = lambda image, prompt: oracle.refiner(image, prompt, points)
    results = []
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            indices = range(start, min(start + batch_size, len(dataset)))
            results += detector.test_step(pseudo_collate([dataset[i] for i in indices]))
    return dataset, results
