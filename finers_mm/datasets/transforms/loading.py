# Copyright (c) finers_mm contributors. All rights reserved.
"""Loading: decode the high-resolution original once, rasterise the GT polygon once.

Images are decoded by :func:`finers_mm.datasets.image_files.decode_image`, the one reader of every
tool: as displayed (EXIF orientation applied), RGB, 8 bits. The record's ``height`` / ``width`` and
its polygon are in that displayed frame too (see :mod:`finers_mm.datasets.image_files`).
"""
from typing import Optional

import mmengine.fileio as fileio
from mmcv.transforms import BaseTransform

from finers_mm.registry import TRANSFORMS
from finers_mm.structures import rasterize_polygon
from ..image_files import ImageFileError, decode_image


def record_name(results: dict) -> str:
    """``'<img_path> (img_id ..., ann_index ...)'``: names a record in error messages."""
    return (f"{results.get('img_path')!r} (img_id {results.get('img_id')!r}, "
            f"ann_index {results.get('ann_index')!r})")


@TRANSFORMS.register_module()
class LoadFineRSImage(BaseTransform):
    """Decode the original image once, as displayed (EXIF orientation applied), RGB, 8 bits.

    finers_mm keeps images RGB end to end: Qwen-VL's processor and SAM both expect RGB (the authors'
    release fed R/B-swapped crops to the refiner at test time). Every view is cut from ``img``.

    Required Keys:

    - img_path
    - height, width (optional: checked against the decoded image when present)

    Added Keys:

    - img (np.uint8 (H, W, 3), RGB, ORIGINAL pixels in the displayed frame; a 16-bit image is
      scaled to 8 bits, grayscale repeated to 3 channels, alpha dropped)
    - img_shape ((H, W))
    - ori_shape ((H, W))

    Args:
        backend_args (dict, optional): arguments of the file backend (``mmengine.fileio.get``).
    """

    def __init__(self, backend_args: Optional[dict] = None) -> None:
        self.backend_args = backend_args.copy() if backend_args else None

    def transform(self, results: dict) -> dict:
        """Decode ``results['img_path']``.

        Args:
            results (dict): the data info of one sample.

        Returns:
            dict: ``results`` with ``img``, ``img_shape`` and ``ori_shape``.

        Raises:
            FileNotFoundError: the file cannot be read.
            ImageFileError: (a ValueError) the bytes are not an image, or the file is truncated.
            ValueError: the image's displayed size differs from the record's.
        """
        path = results['img_path']
        try:
            content = fileio.get(path, backend_args=self.backend_args)
        except OSError as error:
            raise FileNotFoundError(
                f'cannot read the image of record {record_name(results)}: {error}. Check the '
                "dataset's data_root / data_prefix and that the file exists.") from error
        try:
            img = decode_image(content, path)
        except ImageFileError as error:
            raise ImageFileError(path, error.reason,
                                 f'{error.detail} (record {record_name(results)})',
                                 error.fix) from None
        shape = img.shape[:2]
        expected = (results.get('height'), results.get('width'))
        if None not in expected and tuple(expected) != shape:
            raise ValueError(
                f'image {path!r} is {shape[1]}x{shape[0]} (WxH) but its record '
                f'{record_name(results)} says {expected[1]}x{expected[0]} (both as displayed, '
                'EXIF orientation applied): the annotation does not belong to this file, or the '
                'file changed after the dataset was loaded.')
        results['img'] = img
        results['img_shape'] = shape
        results['ori_shape'] = shape
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(backend_args={self.backend_args})'


@TRANSFORMS.register_module()
class LoadFineRSMask(BaseTransform):
    """Rasterise the GT polygon with the FineRS raster convention (the pipeline's only raster).

    See :func:`finers_mm.structures.masks.rasterize_polygon`.

    Required Keys:

    - gt_polygon (np.float32 (N, 2), ORIGINAL pixels)
    - height, width (ORIGINAL size)

    Added Keys:

    - gt_mask (bool (H, W), ORIGINAL pixels)
    """

    def transform(self, results: dict) -> dict:
        """Add ``gt_mask``.

        Args:
            results (dict): the data info of one sample.

        Returns:
            dict: ``results`` with ``gt_mask``.
        """
        results['gt_mask'] = rasterize_polygon(results['gt_polygon'], results['height'],
                                               results['width'])
        return results
