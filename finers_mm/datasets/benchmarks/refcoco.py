# Copyright (c) finers_mm contributors. All rights reserved.
"""RefCOCO / RefCOCO+ / RefCOCOg through mmdet's own ``RefCocoDataset``, as FineRS segmentation
questions.

mmdet's ``RefCocoDataset`` (``mmdet/datasets/refcoco.py``, files as mmdet's docs lay them out:
``<data_root>/refcoco/instances.json``, ``refs(unc).p``, images in ``train2014/``) yields one
sample per IMAGE holding all its referring expressions (``text``: one per referred object with
``text_mode='select_first'``, mmdet's test setting; every sentence with ``'original'``, LISA's)
and one mask instance per expression; ``RefSegMetric`` then scores the K predicted masks against
the K GT masks pairwise. FineRS answers ONE question per sample, so :class:`RefCocoQuestions`
wraps the unchanged mmdet dataset and serves each (image, expression) as its own sample: the
image's data info with ``text`` the one expression and ``instances`` its one mask, run through
the wrapped dataset's own pipeline. ``RefSegMetric``'s cIoU (summed intersections / unions) and
mIoU (mean of per-expression IoU) are the same over these samples as over mmdet's per-image ones.

In that pipeline, after mmdet's ``LoadAnnotations(with_mask=True)`` (pycocotools' raster, the
benchmark's), :class:`RefExpressionToQuestion` turns the expression into the question.
"""
import copy
from typing import List, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.dataset import BaseDataset

from finers_mm.registry import DATASETS, TRANSFORMS
from finers_mm.structures.masks import mask_bbox
from finers_mm.structures.vocabulary import SEGMENTATION


@DATASETS.register_module()
class RefCocoQuestions:
    """One sample per (image, referring expression) of a wrapped per-image dataset.

    Args:
        dataset (dict | BaseDataset): mmdet's ``RefCocoDataset`` (or any dataset whose data infos
            hold parallel ``text`` and ``instances`` lists), with the test pipeline; it is used
            unchanged.
        lazy_init (bool): defer reading the annotations to :meth:`full_init`.
    """

    def __init__(self, dataset: Union[dict, BaseDataset], lazy_init: bool = False) -> None:
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self._index: List[Tuple[int, int]] = []
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        """The wrapped dataset's metainfo."""
        return copy.deepcopy(self.dataset.metainfo)

    def full_init(self) -> None:
        """Index every (image, expression) of the wrapped dataset, in its order.

        Raises:
            ValueError: an image whose ``text`` and ``instances`` differ in length, or no
                expression at all.
        """
        if self._fully_initialized:
            return
        self.dataset.full_init()
        for image_index in range(len(self.dataset)):
            info = self.dataset.get_data_info(image_index)
            texts, instances = _texts(info), info.get('instances', [])
            if len(texts) != len(instances):
                raise ValueError(
                    f"{info.get('img_path')!r} (img_id {info.get('img_id')!r}): {len(texts)} "
                    f'expressions but {len(instances)} mask instances; RefCocoQuestions needs '
                    "one instance per expression (mmdet's RefCocoDataset gives that)")
            self._index += [(image_index, k) for k in range(len(texts))]
        if not self._index:
            name = f'{type(self.dataset).__name__} ({getattr(self.dataset, "ann_file", "")})'
            raise ValueError(f'{name}: no referring expression; check split and split_file')
        self._fully_initialized = True

    def __len__(self) -> int:
        self.full_init()
        return len(self._index)

    def get_data_info(self, idx: int) -> dict:
        """The image's data info narrowed to expression ``idx``.

        Args:
            idx (int): sample index.

        Returns:
            dict: ``text`` (the expression, str), ``instances`` (its one instance),
            ``expression_index`` (its index in the image's expressions), ``sample_idx``
            (``idx``) and the image's other keys.
        """
        self.full_init()
        image_index, k = self._index[idx]
        info = self.dataset.get_data_info(image_index)
        info.update(text=_texts(info)[k], instances=[info['instances'][k]], expression_index=k,
                    sample_idx=idx)
        return info

    def __getitem__(self, idx: int) -> dict:
        results = self.dataset.pipeline(self.get_data_info(idx))
        if results is None:
            raise ValueError(f'the pipeline dropped sample {idx}; a test pipeline must keep '
                             'every expression')
        return results


def _texts(info: dict) -> List[str]:
    texts = info.get('text', [])
    return [texts] if isinstance(texts, str) else list(texts)


@TRANSFORMS.register_module()
class RefExpressionToQuestion(BaseTransform):
    """A referring expression as FineRS's segmentation question, and its mask as the GT.

    Required Keys:

    - text (str, or a list of one str: the expression)
    - gt_masks (mmdet ``BitmapMasks`` (1, H, W), from ``LoadAnnotations(with_mask=True)``)

    Added Keys:

    - question (the expression, stripped), question_type (``'segmentation'``), options (``{}``),
      answer (``''``)
    - gt_mask (bool (H, W): the union of ``gt_masks``), gt_bbox (np.float32 (4,), its pixel
      extent; absent when the mask is empty)
    - height, width (the mask's size)

    ``gt_masks`` stays, so ``PackFineRSInputs(meta_keys=(..., 'gt_masks'))`` packs it where
    mmdet's ``RefSegMetric`` reads it.
    """

    def transform(self, results: dict) -> dict:
        """Set the question and the GT.

        Args:
            results (dict): the sample after ``LoadAnnotations``.

        Returns:
            dict: ``results`` with the added keys.

        Raises:
            ValueError: no single expression, or no ``gt_masks``.
        """
        texts = _texts(results)
        if len(texts) != 1 or not isinstance(texts[0], str) or not texts[0].strip():
            raise ValueError(f"{results.get('img_path')!r}: expected one referring expression "
                             f"in 'text', got {texts!r}; wrap the dataset in RefCocoQuestions")
        if 'gt_masks' not in results:
            raise ValueError(f"{results.get('img_path')!r}: no gt_masks; put mmdet's "
                             "LoadAnnotations(with_mask=True) before RefExpressionToQuestion")
        masks = results['gt_masks']
        mask = np.asarray(masks.masks if hasattr(masks, 'masks') else masks).astype(bool)
        mask = mask.any(axis=0)
        results.update(question=texts[0].strip(), question_type=SEGMENTATION, options={},
                       answer='', gt_mask=mask, height=mask.shape[0], width=mask.shape[1])
        if mask.any():
            results['gt_bbox'] = mask_bbox(mask)
        return results
