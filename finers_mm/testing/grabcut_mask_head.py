# Copyright (c) finers_mm contributors. All rights reserved.
"""The quick start's mask head: OpenCV's GrabCut prompted with the refiner's box.

The tiny SAM of :mod:`finers_mm.testing.tiny_models` has random weights: prompted with a perfect
box it still paints most of the crop, so a tiny chain that locates well would score gIoU near 0.
GrabCut (``cv2.grabCut``, a colour-model graph cut, no weights) segments the synthetic scenes'
saturated objects from their grey ground well, so the quick start's gIoU measures what the tiny
VLMs learnt: where the object is. A real chain uses SAM / SAM 2 (``SAMMaskHead``,
``SAM2MaskHead``).

Importing this module registers :class:`GrabCutMaskHead` in finers_mm's ``MODELS`` (a config
imports it with ``custom_imports``).
"""
from typing import Iterator, List, Optional, Tuple

import cv2
import numpy as np

from finers_mm.models.mask_heads.base import BaseMaskHead
from finers_mm.registry import MODELS


@MODELS.register_module(force=True)
class GrabCutMaskHead(BaseMaskHead):
    """GrabCut inside the box prompt, grown by a margin (a box a little short of the object still
    gives the whole object: GrabCut never labels a pixel outside its rectangle as foreground).

    Args:
        margin (float): the rectangle grows by this fraction of the box side on every side.
            Defaults to 0.25.
        min_margin (int): and by at least this many pixels. Defaults to 2.
        iterations (int): GrabCut iterations. Defaults to 3.
        seed (int): seed of OpenCV's RNG (GrabCut's k-means initialisation), set before every
            crop so a crop's mask does not depend on the crops before it. Defaults to 0.
    """

    def __init__(self, margin: float = 0.25, min_margin: int = 2, iterations: int = 3,
                 seed: int = 0) -> None:
        super().__init__()
        self.margin = float(margin)
        self.min_margin = int(min_margin)
        self.iterations = int(iterations)
        self.seed = int(seed)

    def rectangle(self, box: np.ndarray, width: int, height: int) -> Tuple[int, int, int, int]:
        """The GrabCut rectangle ``(x, y, w, h)`` of a box: grown by the margin, in the crop.

        Args:
            box (np.ndarray): (4,) continuous ``[x1, y1, x2, y2]`` in crop pixels.
            width (int): crop width.
            height (int): crop height.

        Returns:
            tuple[int, int, int, int]: integer pixels, at least 1 x 1, inside the crop.
        """
        x1, y1, x2, y2 = (float(v) for v in box)
        dx = max(self.min_margin, self.margin * (x2 - x1))
        dy = max(self.min_margin, self.margin * (y2 - y1))
        left, top = max(0, int(np.floor(x1 - dx))), max(0, int(np.floor(y1 - dy)))
        right = min(width, max(left + 1, int(np.ceil(x2 + dx))))
        bottom = min(height, max(top + 1, int(np.ceil(y2 + dy))))
        return left, top, right - left, bottom - top

    def segment(self, crops: List[np.ndarray], boxes: np.ndarray, points: Optional[np.ndarray],
                point_labels: Optional[np.ndarray],
                indices: List[int]) -> Iterator[Tuple[int, np.ndarray, float]]:
        """GrabCut of each crop in its grown box; the box itself filled when GrabCut cannot run
        (a rectangle under 3 pixels a side) or finds nothing."""
        for i in indices:
            height, width = crops[i].shape[:2]
            x, y, w, h = self.rectangle(boxes[i], width, height)
            mask = np.zeros((height, width), np.uint8)
            found = None
            if w >= 3 and h >= 3 and (w < width or h < height):
                cv2.setRNGSeed(self.seed)
                bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
                # GrabCut models colours in BGR or RGB alike: the crop is passed as it is
                cv2.grabCut(np.ascontiguousarray(crops[i]), mask, (x, y, w, h), bgd, fgd,
                            self.iterations, cv2.GC_INIT_WITH_RECT)
                found = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
            if found is None or not found.any():
                xs, ys = np.arange(width) + 0.5, np.arange(height) + 0.5
                x1, y1, x2, y2 = boxes[i]
                found = ((ys > y1) & (ys < y2))[:, None] & ((xs > x1) & (xs < x2))[None]
            yield i, found, 1.0
