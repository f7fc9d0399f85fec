# Copyright (c) finers_mm contributors. All rights reserved.
"""Pack a FineRS sample into model inputs and an mmdet ``DetDataSample``."""
import warnings
from typing import Dict, Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData

from finers_mm.registry import TRANSFORMS

#: view name in ``inputs`` -> key of its (H, W, 3) RGB image in ``results``
VIEW_KEYS: Dict[str, str] = {
    'original': 'img',
    'explorer': 'explorer_img',
    'refiner': 'refiner_img',
}

DEFAULT_META_KEYS = (
    'img_path', 'img_id', 'ann_index', 'sample_idx', 'ori_shape', 'img_shape', 'question',
    'question_type', 'options', 'options_raw', 'answer', 'attribute', 'area_percent',
    'size_bucket', 'best_region', 'region', 'explorer_frame', 'region_size', 'refiner_frame', 'crop_window', 'gt_bbox_explorer',
    'gt_region_explorer', 'best_region_explorer', 'gt_bbox_refiner', 'gt_points_refiner')

#: the meta key under which mmdet's RefCOCO pipelines (and ``RefSegMetric``) keep the GT mask
GT_MASKS_META_KEY = 'gt_masks'


def _tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor sharing ``array``'s memory, also when the array is read-only.

    torch cannot mark a tensor read-only, so ``torch.from_numpy`` of a non-writable array warns
    ("The given NumPy array is not writable"). A read-only view of writable memory (the usual case:
    an array whose owner locked it) is shared through a writable view of the same memory, without a
    copy; only memory that cannot be written at all (e.g. ``np.asarray`` of a PIL image, a bytes
    buffer) is copied. Nothing downstream writes into the packed tensors.
    """
    if not array.flags.writeable:
        view = array.view()
        with warnings.catch_warnings():
            warnings.simplefilter('error')  # numpy deprecates unlocking some arrays: copy those
            try:
                view.flags.writeable = True
                array = view
            except (ValueError, Warning):
                array = array.copy()
    return torch.from_numpy(array)


def _image_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 array -> (H, W, 3) uint8 tensor sharing its memory when contiguous.

    Channels stay last: the views feed a VLM processor and SAM, which take (H, W, 3) RGB, not a
    CNN; a (3, H, W) layout would be transposed here and back in the model (a 4K copy each way).
    """
    return _tensor(np.ascontiguousarray(img))


@TRANSFORMS.register_module()
class PackFineRSInputs(BaseTransform):
    """Pack the views into ``inputs`` and the GT and metainfo into a ``DetDataSample``.

    ``gt_instances`` holds the one target in ORIGINAL pixels: ``bboxes`` (1, 4) float32, ``labels``
    (1,) zeros, ``masks`` (``BitmapMasks`` (1, H, W), if gt_mask) and ``points`` (1, 2, 2) float32
    (if gt_points). The per-frame GT (explorer / refiner pixels) travels in the metainfo.

    Required Keys:

    - the image of each view in ``views`` that is present: img / explorer_img / refiner_img
    - gt_bbox, gt_mask, gt_points (each optional)
    - the ``meta_keys`` (each optional: absent keys are skipped, since the keys depend on which
      views the pipeline builds)

    ``'gt_masks'`` in ``meta_keys`` also puts the GT mask in the metainfo, as mmdet's RefCOCO test
    pipelines do (``PackDetInputs(meta_keys=(..., 'gt_masks', ...))``) for its ``RefSegMetric``,
    which reads ``data_sample['gt_masks']``: the SAME ``BitmapMasks`` object as
    ``gt_instances.masks`` (no second mask), and skipped without ``gt_mask``. It is not a default
    key: ``tools/test.py --out`` keeps the metainfo (mmdet's ``DumpDetResults`` drops only
    ``gt_instances``), so it would write one full-size bitmap per sample into the pickle.
    FineRS's own metrics (and :class:`~finers_mm.evaluation.FineRSRefSegMetric`) read
    ``gt_instances.masks`` and do not need it.

    Added Keys:

    - inputs (dict: view name -> torch.uint8 (h, w, 3) RGB tensor, channels LAST)
    - data_samples (DetDataSample)

    Args:
        views (Sequence[str]): views to pack, from ``'explorer'``, ``'refiner'`` and ``'original'``
            (the full-resolution image, needed by a two-stage model that crops at inference).
        meta_keys (Sequence[str]): keys copied into the data sample's metainfo when present;
            ``'gt_masks'``: the packed GT mask (above).
    """

    def __init__(self, views: Sequence[str] = ('explorer', 'refiner'),
                 meta_keys: Sequence[str] = DEFAULT_META_KEYS) -> None:
        unknown = set(views) - set(VIEW_KEYS)
        if unknown:
            raise ValueError(f'unknown views {sorted(unknown)}; choose from {list(VIEW_KEYS)}')
        self.views = tuple(views)
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        """Pack one sample.

        Args:
            results (dict): the sample at the end of the pipeline.

        Returns:
            dict: ``{'inputs': {view: tensor}, 'data_samples': DetDataSample}``.
        """
        inputs = {view: _image_tensor(results[VIEW_KEYS[view]])
                  for view in self.views if VIEW_KEYS[view] in results}

        instances = InstanceData()
        if 'gt_bbox' in results:
            instances.bboxes = _tensor(np.asarray(results['gt_bbox'], np.float32).reshape(1, 4))
            instances.labels = torch.zeros(1, dtype=torch.long)
        if 'gt_mask' in results:
            mask = results['gt_mask']
            instances.masks = BitmapMasks(mask[None].astype(np.uint8), *mask.shape)
        if 'gt_points' in results:
            instances.points = _tensor(
                np.asarray(results['gt_points'], np.float32).reshape(1, -1, 2))

        data_sample = DetDataSample()
        data_sample.gt_instances = instances
        data_sample.set_metainfo({key: results[key] for key in self.meta_keys if key in results})
        if GT_MASKS_META_KEY in self.meta_keys and 'masks' in instances:
            # set_field, not set_metainfo (which deep-copies): the same object, no second bitmap
            data_sample.set_field(instances.masks, GT_MASKS_META_KEY, field_type='metainfo')
        return dict(inputs=inputs, data_samples=data_sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(views={self.views}, meta_keys={self.meta_keys})'
