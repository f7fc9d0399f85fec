# Copyright (c) finers_mm contributors. All rights reserved.
"""A frozen mmdet detector run on native-resolution crops: the steps every wrapper shares.

``projects/mmdet_refiner`` (an mmdet detector as FineRS's refiner) and
``projects/reasoning_proposer`` (the detector behind FineRS's explorer) both read a detector's
config, build it, load its LOCAL checkpoint, build its test pipeline for in-memory crops and run
batched ``test_step`` calls, mmdet's ``inference_detector`` recipe. The errors name the config key
(``key``) and where the detector config came from (``source``) given by the caller.
"""
import copy
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmdet.models.detectors import BaseDetector
from mmengine.config import Config, ConfigDict
from mmengine.dataset import Compose, pseudo_collate
from mmengine.model import revert_sync_batchnorm
from mmengine.runner.checkpoint import load_checkpoint
from mmengine.structures import InstanceData

from finers_mm.registry import MODELS, TRANSFORMS

#: the metainfo a crop is packed with by the default pipeline
CROP_META_KEYS = ('img_id', 'ori_shape', 'img_shape', 'scale_factor')
#: annotation loaders dropped from a config's test pipeline (crops have no annotations)
ANNOTATION_LOADERS = ('LoadAnnotations', 'mmdet.LoadAnnotations', 'LoadPanopticAnnotations',
                      'mmdet.LoadPanopticAnnotations')


def read_detector_config(config, key: str) -> Tuple[Optional[Config], ConfigDict, str]:
    """The detector's model config from a config file, an ``'mmdet::...'`` name or a dict.

    Args:
        config (str | dict): an mmdet config FILE (``'mmdet::...'`` names one shipped with mmdet)
            or an inline ``model`` dict.
        key (str): the config key of ``config``, for error messages.

    Returns:
        tuple: ``(config file or None, model config (a copy), where it came from)``.
    """
    if isinstance(config, str):
        if '::' in config and not osp.isfile(config):
            from mmengine.hub import get_config
            try:
                file_cfg = get_config(config)
            except Exception as error:  # noqa: BLE001 -- re-raised with the key and path
                raise FileNotFoundError(
                    f"{key}: cannot read the mmdet config '{config}': {error}") from error
        elif not osp.isfile(config):
            raise FileNotFoundError(f"{key}: no mmdet detector config file at '{config}' "
                                    f"(resolved '{osp.abspath(config)}')")
        else:
            file_cfg = Config.fromfile(config)
        if 'model' not in file_cfg:
            raise KeyError(f"{key}: the config file '{config}' has no 'model'")
        return file_cfg, copy.deepcopy(file_cfg.model), f"config file '{config}'"
    if isinstance(config, dict):
        return None, ConfigDict(copy.deepcopy(dict(config))), f"inline dict '{key}'"
    raise TypeError(f'{key} must be an mmdet config file path or a model dict, got '
                    f'{type(config).__name__}')


def build_detector(model_cfg: ConfigDict, key: str, source: str) -> BaseDetector:
    """Check the config's type is a registered mmdet detector, then build it (SyncBN reverted).

    Args:
        model_cfg (ConfigDict): the detector's model config.
        key (str): the config key of its ``type``, for error messages.
        source (str): where the config came from (:func:`read_detector_config`).

    Returns:
        BaseDetector: the detector, freshly initialised.
    """
    type_name = model_cfg.get('type', None)
    if type_name is None:
        raise ValueError(f'{key} is missing in the detector config ({source})')
    detector_cls = MODELS.get(type_name) if isinstance(type_name, str) else type_name
    if detector_cls is None:
        raise ValueError(
            f"{key}: unknown detector type '{type_name}' in the detector config ({source}); it "
            f"is not registered in mmdet's or finers_mm's MODELS (a typo, or a missing "
            f"custom_imports?)")
    if not (isinstance(detector_cls, type) and issubclass(detector_cls, BaseDetector)):
        raise TypeError(f"{key}: '{type_name}' ({source}) is not an mmdet detector (a subclass "
                        f"of mmdet.models.detectors.BaseDetector)")
    return revert_sync_batchnorm(MODELS.build(model_cfg))


def load_detector_checkpoint(detector: BaseDetector, checkpoint: str, key: str,
                             source: str) -> dict:
    """Load a LOCAL checkpoint into ``detector``; return the checkpoint's ``meta``.

    Args:
        detector (BaseDetector): the built detector.
        checkpoint (str): the checkpoint file.
        key (str): the config key of ``checkpoint``, for error messages.
        source (str): where the detector config came from.

    Returns:
        dict: the checkpoint's ``meta`` (empty when it has none).
    """
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(
            f"{key}: no checkpoint file at '{checkpoint}' (resolved '{osp.abspath(checkpoint)}'; "
            f"detector {source}). Give the LOCAL path of the detector's checkpoint; nothing is "
            f"downloaded.")
    loaded = load_checkpoint(detector, checkpoint, map_location='cpu', logger='current')
    return dict(loaded.get('meta', None) or {}) if isinstance(loaded, dict) else {}


def crop_pipeline(pipeline: Optional[list], file_cfg: Optional[Config],
                  resize: Optional[dict] = None, extra_meta_keys: Sequence[str] = ()) -> Compose:
    """The test pipeline in-memory crops go through.

    Precedence: ``pipeline`` as given; else, without ``resize``, the config file's own test
    pipeline (annotation loaders dropped, the loader replaced by ``LoadImageFromNDArray``,
    ``extra_meta_keys`` added to its packer's ``meta_keys``); else ``LoadImageFromNDArray``,
    ``Resize(**resize)`` (default ``scale_factor=1.0``: full resolution, and the scale factor
    mmdet's rescale reads) and ``PackDetInputs``.

    Args:
        pipeline (list, optional): transforms (dicts or callables).
        file_cfg (Config, optional): the detector's config file.
        resize (dict, optional): ``mmdet.Resize`` arguments; given, the default pipeline is used.
        extra_meta_keys (Sequence[str]): metainfo packed on top (e.g. Grounding DINO's text).

    Returns:
        Compose: the pipeline.
    """
    extra = tuple(extra_meta_keys)
    if pipeline is not None:
        transforms = copy.deepcopy(list(pipeline))
    elif resize is None and file_cfg is not None and 'test_dataloader' in file_cfg:
        from mmdet.utils import get_test_pipeline_cfg
        transforms = [t for t in copy.deepcopy(list(get_test_pipeline_cfg(file_cfg)))
                      if t['type'] not in ANNOTATION_LOADERS]
        transforms[0]['type'] = 'mmdet.LoadImageFromNDArray'
        last = transforms[-1]
        if extra and 'meta_keys' in last:
            last['meta_keys'] = tuple(last['meta_keys']) + tuple(
                k for k in extra if k not in last['meta_keys'])
    else:
        transforms = [dict(type='mmdet.LoadImageFromNDArray'),
                      dict(type='mmdet.Resize', **(resize or dict(scale_factor=1.0))),
                      dict(type='mmdet.PackDetInputs', meta_keys=CROP_META_KEYS + extra)]
    return Compose([TRANSFORMS.build(t) if isinstance(t, dict) else t for t in transforms])


def detect_on_crops(detector: BaseDetector, pipeline: Compose, crops: Sequence[np.ndarray],
                    batch_size: Optional[int] = None,
                    extras: Optional[Sequence[dict]] = None) -> Tuple[List[InstanceData], int]:
    """The detector's ``pred_instances`` of each crop, boxes in CROP pixels (rescaled).

    Args:
        detector (BaseDetector): the detector (call under ``torch.no_grad()``).
        pipeline (Compose): :func:`crop_pipeline`.
        crops (Sequence[np.ndarray]): (h, w, 3) uint8 RGB crops; they enter the pipeline as BGR,
            as ``LoadImageFromFile`` gives them (each data preprocessor converts).
        batch_size (int, optional): most crops per ``test_step``; None: all at once.
        extras (Sequence[dict], optional): per crop, more fields of its pipeline input (e.g.
            ``text``).

    Returns:
        tuple: the ``pred_instances`` of each crop, and the number of ``test_step`` calls.
    """
    packed = [pipeline(dict(img=np.ascontiguousarray(crop[..., ::-1]), img_id=index,
                            **(extras[index] if extras else {})))
              for index, crop in enumerate(crops)]
    step = batch_size or max(len(packed), 1)
    results, calls = [], 0
    for start in range(0, len(packed), step):
        results.extend(detector.test_step(pseudo_collate(packed[start:start + step])))
        calls += 1
    return [result.pred_instances for result in results], calls
