# Copyright (c) finers_mm contributors. All rights reserved.
"""The two image operations behind the frames: resize a whole image, crop a window and resize it.

The data transforms (training views, cut in dataloader workers) and the models (inference crops, cut
from a predicted region) both call these, so a view seen in training is pixel-for-pixel the view
seen at test time. Coordinates follow :mod:`finers_mm.structures.frames`.
"""
from typing import Tuple

import mmcv
import numpy as np


def image_size(img: np.ndarray) -> Tuple[int, int]:
    """``(W, H)`` of an (H, W, ...) image array (a view's frame size, an original's size)."""
    return int(img.shape[1]), int(img.shape[0])


def resize_to_frame(img: np.ndarray, frame_size: Tuple[int, int],
                    interpolation: str = 'bilinear') -> np.ndarray:
    """Resize a whole image to a frame, aspect ratio NOT kept.

    Args:
        img (np.ndarray): (H, W, 3) uint8 RGB.
        frame_size (tuple[int, int]): ``(fw, fh)``.
        interpolation (str): mmcv interpolation name (cv2 backend).

    Returns:
        np.ndarray: (fh, fw, 3) uint8 RGB.
    """
    return mmcv.imresize(img, tuple(int(v) for v in frame_size), interpolation=interpolation,
                         backend='cv2')


def crop_to_frame(img: np.ndarray, window, frame_size: Tuple[int, int],
                  interpolation: str = 'bilinear') -> np.ndarray:
    """Cut ``window`` out of an image and resize it to a frame.

    Args:
        img (np.ndarray): (H, W, 3) uint8 RGB (or an (H, W) mask), ORIGINAL pixels.
        window: (4,) integer ``[x1, y1, x2, y2]`` inside the image, ORIGINAL pixels.
        frame_size (tuple[int, int]): ``(fw, fh)`` of the frame.
        interpolation (str): mmcv interpolation name (cv2 backend).

    Returns:
        np.ndarray: (fh, fw, 3) uint8 RGB.
    """
    x1, y1, x2, y2 = (int(v) for v in window)
    return resize_to_frame(img[y1:y2, x1:x2], frame_size, interpolation)
