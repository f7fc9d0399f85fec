# Copyright (c) finers_mm contributors. All rights reserved.
"""The two model views of one original image: the explorer's resized whole image and the refiner's
resized crop, each with its GT mapped into its frame (:mod:`finers_mm.structures.frames`)."""
from typing import Optional, Tuple

import numpy as np
from mmcv.transforms import BaseTransform

from finers_mm.registry import TRANSFORMS
from finers_mm.structures import (clip_boxes, crop_to_frame, crop_window_from_region,
                                  image_size, original_to_explorer, resize_to_frame,
                                  random_window_containing, region_around_box, window_to_frame)
from finers_mm.structures.images import resolve_resize
from finers_mm.structures.protocols import DEFAULT_PROTOCOL
from .loading import record_name
from .randomness import sample_rng

REFINER_CROP_MODES = ('random', 'region', 'best_region')


@TRANSFORMS.register_module()
class ExplorerView(BaseTransform):
    """The explorer's (GSE) view: the whole original resized to ``frame_size``, aspect NOT kept.

    Required Keys:

    - img (np.uint8 (H, W, 3) RGB, ORIGINAL pixels)
    - gt_bbox (optional; (4,) ORIGINAL pixels)
    - best_region (optional; (4,) ORIGINAL pixels, or None)

    Added Keys:

    - explorer_img (np.uint8 (fh, fw, 3) RGB)
    - explorer_frame ((fw, fh))
    - region_size (int, the region side in EXPLORER pixels)
    - gt_bbox_explorer (np.float32 (4,), EXPLORER pixels; if gt_bbox)
    - gt_region_explorer (np.float32 (4,), EXPLORER pixels: the ``region_size`` region centred on
      the GT box, shifted into the frame, the region target when no best_region exists; if gt_bbox)
    - best_region_explorer (np.float32 (4,), EXPLORER pixels; if best_region is not None)

    Args:
        frame_size (tuple[int, int]): ``(fw, fh)`` of the explorer frame.
        region_size (int): side of the explorer's region in explorer pixels.
        interpolation (str): mmcv interpolation name of ``resize='cv2_linear'``.
        resize (str, optional): ``'cv2_linear'``, ``'pil_bilinear'`` or ``'pil_bicubic'``
            (:func:`finers_mm.structures.resize_to_frame`). Defaults to None: the protocol's
            (``'cv2_linear'`` under ``'finers_mm'``, ``'pil_bilinear'`` under ``'authors'``, the
            resize of their evaluation; their training images were resized with
            ``'pil_bicubic'``).
        protocol (str): ``'finers_mm'`` or ``'authors'``. Defaults to ``'finers_mm'``.
    """

    def __init__(self, frame_size: Tuple[int, int] = (1920, 1080), region_size: int = 256,
                 interpolation: str = 'bilinear', resize: Optional[str] = None,
                 protocol: str = DEFAULT_PROTOCOL) -> None:
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.region_size = int(region_size)
        self.interpolation = interpolation
        self.resize = resolve_resize(resize, protocol, interpolation)
        self.protocol = protocol

    def transform(self, results: dict) -> dict:
        """Add the explorer view and its GT.

        Args:
            results (dict): the sample, after :class:`LoadFineRSImage`.

        Returns:
            dict: ``results`` with the added keys.
        """
        img = results['img']
        size = image_size(img)
        results['explorer_img'] = resize_to_frame(img, self.frame_size, self.interpolation,
                                                  self.resize)
        results['explorer_frame'] = self.frame_size
        results['region_size'] = self.region_size
        if 'gt_bbox' in results:
            gt_bbox = original_to_explorer(results['gt_bbox'], size, self.frame_size)
            results['gt_bbox_explorer'] = gt_bbox
            results['gt_region_explorer'] = region_around_box(gt_bbox, self.frame_size,
                                                              self.region_size)
        if results.get('best_region') is not None:
            results['best_region_explorer'] = original_to_explorer(
                results['best_region'], size, self.frame_size)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(frame_size={self.frame_size}, '
                f'region_size={self.region_size}, interpolation={self.interpolation!r}, '
                f'resize={self.resize!r})')


@TRANSFORMS.register_module()
class RefinerCrop(BaseTransform):
    """The refiner's (LPR) view: a window of the ORIGINAL image resized to ``frame_size``.

    The window (integer original pixels) comes from ``mode``:

    - ``'random'`` (training): uniform among the windows of side ``max(min_side, GT box extent)``
      that contain the GT box (:func:`finers_mm.structures.random_window_containing`), drawn from
      ``np.random.default_rng((seed, sample_idx))``, so a sample gets the same window in every run;
    - ``'region'`` (inference): around ``results['region']``, a predicted region in ORIGINAL pixels
      set by the model (:func:`finers_mm.structures.crop_window_from_region`);
    - ``'best_region'``: around the record's searched ``best_region`` in the same way.

    Required Keys:

    - img (np.uint8 (H, W, 3) RGB, ORIGINAL pixels)
    - gt_bbox (``'random'``; otherwise optional) and sample_idx (``'random'``)
    - region (``'region'``) / best_region (``'best_region'``), ORIGINAL pixels
    - gt_points (optional; (2, 2) ORIGINAL pixels)

    Added Keys:

    - crop_window (np.int64 (4,) ``[x1, y1, x2, y2]``, ORIGINAL pixels)
    - refiner_img (np.uint8 (rh, rw, 3) RGB)
    - refiner_frame ((rw, rh))
    - gt_bbox_refiner (np.float32 (4,), REFINER pixels, clipped to the frame; all zeros when the
      target is outside the window; if gt_bbox)
    - gt_points_refiner (np.float32 (2, 2), REFINER pixels, not clipped; if gt_points)

    Args:
        frame_size (tuple[int, int]): ``(rw, rh)`` of the refiner frame.
        min_side (int): smallest window side in ORIGINAL pixels.
        mode (str): ``'random'``, ``'region'`` or ``'best_region'``.
        seed (int): seed combined with ``sample_idx`` (``'random'``).
        interpolation (str): mmcv interpolation name of ``resize='cv2_linear'``.
        resize (str, optional): ``'cv2_linear'``, ``'pil_bilinear'`` or ``'pil_bicubic'``
            (:func:`finers_mm.structures.crop_to_frame`). Defaults to None: the protocol's
            (``'cv2_linear'`` under ``'finers_mm'``, ``'pil_bilinear'`` under ``'authors'``). A
            window as large as the frame is copied unchanged by every method (the authors' LPR
            training crops: 512 x 512 original pixels, never resized).
        protocol (str): ``'finers_mm'`` or ``'authors'``. Defaults to ``'finers_mm'``.
    """

    def __init__(self, frame_size: Tuple[int, int] = (512, 512), min_side: int = 512,
                 mode: str = 'random', seed: int = 0, interpolation: str = 'bilinear',
                 resize: Optional[str] = None, protocol: str = DEFAULT_PROTOCOL) -> None:
        if mode not in REFINER_CROP_MODES:
            raise ValueError(f'mode must be one of {REFINER_CROP_MODES}, got {mode!r}')
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.min_side = int(min_side)
        self.mode = mode
        self.seed = seed
        self.interpolation = interpolation
        self.resize = resolve_resize(resize, protocol, interpolation)
        self.protocol = protocol

    def _window(self, results: dict, image_size: Tuple[int, int]) -> np.ndarray:
        """The crop window of this sample in ORIGINAL pixels, by ``mode``."""
        if self.mode == 'random':
            return random_window_containing(results['gt_bbox'], image_size, self.min_side,
                                            sample_rng(self.seed, results))
        region = results.get(self.mode)
        if region is None:
            raise KeyError(f"RefinerCrop(mode={self.mode!r}) needs results[{self.mode!r}] "
                           f'(ORIGINAL pixels) but record {record_name(results)} has none')
        return crop_window_from_region(region, image_size, self.min_side)

    def transform(self, results: dict) -> dict:
        """Add the refiner view and its GT.

        Args:
            results (dict): the sample, after :class:`LoadFineRSImage`.

        Returns:
            dict: ``results`` with the added keys.
        """
        img = results['img']
        window = self._window(results, image_size(img))
        results['crop_window'] = window
        results['refiner_img'] = crop_to_frame(img, window, self.frame_size, self.interpolation,
                                               self.resize)
        results['refiner_frame'] = self.frame_size
        if 'gt_bbox' in results:
            results['gt_bbox_refiner'] = clip_boxes(
                window_to_frame(results['gt_bbox'], window, self.frame_size), self.frame_size)
        if 'gt_points' in results:
            results['gt_points_refiner'] = window_to_frame(results['gt_points'], window,
                                                           self.frame_size)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(frame_size={self.frame_size}, '
                f'min_side={self.min_side}, mode={self.mode!r}, seed={self.seed}, '
                f'interpolation={self.interpolation!r}, resize={self.resize!r})')
