# Copyright (c) finers_mm contributors. All rights reserved.
"""The two image operations behind the frames: resize a whole image, crop a window and resize it.

The data transforms (training views, cut in dataloader workers) and the models (inference crops, cut
from a predicted region) both call these, so a view seen in training is pixel-for-pixel the view
seen at test time. Coordinates follow :mod:`finers_mm.structures.frames`.

How an image is resized (``resize``, :data:`RESIZE_METHODS`), set by the protocol's ``'resize'``
(:mod:`finers_mm.structures.protocols`):

- ``'cv2_linear'`` (finers_mm): ``mmcv.imresize`` with the cv2 backend and ``interpolation``
  (bilinear by default). cv2's bilinear reads the 2 x 2 source pixels around each sample point, so
  a downscale by more than 2 skips source pixels (no antialiasing): a target of a few pixels keeps
  its full contrast or vanishes, depending on where it falls.
- ``'pil_bilinear'`` (the authors' evaluation: ``Image.resize(size, Image.BILINEAR)`` of the
  explorer view and the LPR crop): Pillow's triangle filter, stretched by the scale factor when
  shrinking, so every source pixel contributes (antialiased; tiny targets are blurred, never
  skipped).
- ``'pil_bicubic'``: Pillow's bicubic filter, likewise antialiased, the default filter of
  ``Image.resize`` and so what the authors' training-data converters
  (``data_process/data_converter_*.py``) resized the explorer's training images with.

``benchmarks/bench_resize_contrast.py`` measures what the choice does to a tiny bright target.
"""
from typing import Optional, Tuple

import mmcv
import numpy as np
from PIL import Image

from .protocols import protocol_setting

#: how an image is resized to a frame (module docstring)
RESIZE_METHODS = ('cv2_linear', 'pil_bilinear', 'pil_bicubic')
#: Pillow's filter of each Pillow method
_PIL_FILTERS = {'pil_bilinear': Image.Resampling.BILINEAR,
                'pil_bicubic': Image.Resampling.BICUBIC}


def check_resize(resize: str) -> str:
    """Return ``resize`` if it names a resize method.

    Args:
        resize (str): one of :data:`RESIZE_METHODS`.

    Returns:
        str: ``resize``.

    Raises:
        ValueError: any other value, naming the known ones.
    """
    if resize not in RESIZE_METHODS:
        raise ValueError(f'unknown resize {resize!r}; expected one of {RESIZE_METHODS}')
    return resize


def resolve_resize(resize: Optional[str], protocol: str, interpolation: str = 'bilinear') -> str:
    """The resize method of a view or crop (the pipeline's, the refiner's at inference): ``resize`` when given, else the protocol's ``'resize'``.

    Args:
        resize (str, optional): a method of :data:`RESIZE_METHODS`.
        protocol (str): ``'finers_mm'`` (``'cv2_linear'``) or ``'authors'`` (``'pil_bilinear'``).
        interpolation (str): the view's cv2 interpolation; only ``'cv2_linear'`` reads it.

    Returns:
        str: the method.

    Raises:
        ValueError: an unknown method or protocol, or a cv2 interpolation other than the default
            with a Pillow method (checked here, when the pipeline is built, not at the first
            sample).
    """
    resize = check_resize(protocol_setting(protocol, 'resize') if resize is None else resize)
    if resize != 'cv2_linear' and interpolation != 'bilinear':
        raise ValueError(f'resize={resize!r} (protocol {protocol!r}) uses its own filter; '
                         f"interpolation={interpolation!r} applies to resize='cv2_linear' only")
    return resize


def image_size(img: np.ndarray) -> Tuple[int, int]:
    """``(W, H)`` of an (H, W, ...) image array (a view's frame size, an original's size)."""
    return int(img.shape[1]), int(img.shape[0])


def resize_to_frame(img: np.ndarray, frame_size: Tuple[int, int],
                    interpolation: str = 'bilinear', resize: str = 'cv2_linear') -> np.ndarray:
    """Resize a whole image to a frame, aspect ratio NOT kept.

    Args:
        img (np.ndarray): (H, W, 3) uint8 RGB; with ``resize='cv2_linear'`` also an (H, W) mask
            (give ``interpolation='nearest'``).
        frame_size (tuple[int, int]): ``(fw, fh)``.
        interpolation (str): mmcv interpolation name of ``'cv2_linear'`` (cv2 backend). The
            Pillow methods have their own filter and accept only the default ``'bilinear'``.
        resize (str): ``'cv2_linear'``, ``'pil_bilinear'`` or ``'pil_bicubic'`` (module
            docstring). Defaults to ``'cv2_linear'``.

    Returns:
        np.ndarray: (fh, fw, 3) uint8 RGB (the input's dtype and channels).

    Raises:
        ValueError: an unknown ``resize``, an ``interpolation`` given to a Pillow method, or a
            Pillow method on an array that is not uint8.
    """
    size = tuple(int(v) for v in frame_size)
    if check_resize(resize) == 'cv2_linear':
        return mmcv.imresize(img, size, interpolation=interpolation, backend='cv2')
    if interpolation != 'bilinear':
        raise ValueError(f'resize={resize!r} uses its own filter; interpolation='
                         f"{interpolation!r} applies to resize='cv2_linear' only")
    if img.dtype != np.uint8:
        raise ValueError(f'resize={resize!r} takes uint8 images, got {img.dtype} (resize masks '
                         "with resize='cv2_linear', interpolation='nearest')")
    # Image.fromarray reads strided views (crops) through a copy; the result is a fresh array.
    return np.asarray(Image.fromarray(img).resize(size, _PIL_FILTERS[resize]))


def crop_to_frame(img: np.ndarray, window, frame_size: Tuple[int, int],
                  interpolation: str = 'bilinear', resize: str = 'cv2_linear') -> np.ndarray:
    """Cut ``window`` out of an image and resize it to a frame.

    Args:
        img (np.ndarray): (H, W, 3) uint8 RGB (or an (H, W) mask), ORIGINAL pixels.
        window: (4,) integer ``[x1, y1, x2, y2]`` inside the image, ORIGINAL pixels.
        frame_size (tuple[int, int]): ``(fw, fh)`` of the frame.
        interpolation (str): mmcv interpolation name of ``'cv2_linear'`` (:func:`resize_to_frame`).
        resize (str): the resize method (:func:`resize_to_frame`). Defaults to ``'cv2_linear'``.

    Returns:
        np.ndarray: (fh, fw, 3) uint8 RGB.
    """
    x1, y1, x2, y2 = (int(v) for v in window)
    return resize_to_frame(img[y1:y2, x1:x2], frame_size, interpolation, resize)
