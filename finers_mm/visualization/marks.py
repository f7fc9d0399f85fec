# Copyright (c) finers_mm contributors. All rights reserved.
"""What a FineRS drawing marks in its panels, planned before anything is drawn (no matplotlib).

:class:`MarkPlanner` turns a prediction (and its GT) in ORIGINAL pixels into :class:`Mark` s in
canvas pixels, each clipped to the panel it belongs to, and collects a note for everything that
had to be clipped or left out. The visualiser then draws the marks as planned.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import mmcv
import numpy as np
from mmdet.structures import DetDataSample

from .layout import (CROP, OVERVIEW, DrawnItem, Panel, clip_box, clipping_note, inset,
                     points_box)

#: RGB colours of the marks
REGION_COLOR = (255, 215, 0)
WINDOW_COLOR = (0, 200, 255)
BOX_COLOR = (255, 60, 60)
POINT_COLOR = (255, 0, 200)
MASK_COLOR = (30, 144, 255)
GT_COLOR = (0, 230, 0)


@dataclass
class Mark:
    """A planned mark: its layout record and what the drawing calls need (canvas pixels).

    Args:
        item (DrawnItem): kind, panel, covered box and label.
        coords (np.ndarray): a box (4,), points (N, 2) or a panel-size (h, w) bool mask.
        color (tuple): RGB.
        dashed (bool): dashed outline (GT).
        radius (float): radius of point markers.
    """
    item: DrawnItem
    coords: np.ndarray
    color: Tuple[int, int, int]
    dashed: bool = False
    radius: float = 0.0


class MarkPlanner:
    """Plan the marks of one sample; :attr:`marks` and :attr:`notes` collect the result.

    Args:
        line_px (float): outline width in canvas pixels (boxes are inset by half of it, so their
            outline stays inside the panel).
        marker_radius (float): radius of point markers in canvas pixels (less in a small panel).
    """

    def __init__(self, line_px: float, marker_radius: float) -> None:
        self.line_px = line_px
        self.marker_radius = marker_radius
        self.marks: List[Mark] = []
        self.notes: List[str] = []

    def crop_window(self, sample: DetDataSample,
                    image_size: Tuple[int, int]) -> Optional[Tuple[int, int, int, int]]:
        """The prediction's ``pred_window`` as integer ORIGINAL pixels inside the image.

        Args:
            sample (DetDataSample): a prediction.
            image_size (tuple[int, int]): ``(W, H)`` of the original.

        Returns:
            tuple | None: ``(x1, y1, x2, y2)``; None without a window or when none of it is in
            the image (then a note says so).
        """
        window = sample.get('pred_window', None)
        if window is None:
            return None
        clipped, status = clip_box(window, (0, 0) + tuple(image_size))
        self._note(clipping_note('crop window', window, status, 'image'))
        if clipped is None:
            return None
        x1, y1 = (int(v) for v in np.floor(clipped[:2]))
        x2, y2 = (int(v) for v in np.ceil(clipped[2:]))
        return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None

    def prediction(self, sample: DetDataSample, panels: dict) -> None:
        """Region and window in the image panel; box, points and mask in the crop panel (in the
        image panel when there is no crop window).

        Args:
            sample (DetDataSample): ``pred_instances`` and metainfo ``pred_region``, ORIGINAL
                pixels.
            panels (dict[str, Panel]): from :func:`~.layout.place_panels`.
        """
        overview, crop = panels[OVERVIEW], panels.get(CROP)
        region = sample.get('pred_region', None)
        if region is not None:
            self.box('region', 'explorer region', region, overview, REGION_COLOR)
        if crop is not None:
            self.box('window', 'crop window', crop.window, overview, WINDOW_COLOR)
        target = crop or overview
        instances = sample.pred_instances
        if 'masks' in instances and len(instances):
            self.mask('mask', instances.masks, target, MASK_COLOR)
        name = 'refiner box' if crop is not None else 'box'
        scores = instances.scores if 'scores' in instances else None
        for index, box in enumerate(instances.get('bboxes', [])):
            label = name if scores is None else f'{name} {float(scores[index]):.2f}'
            self.box('box', name, box, target, BOX_COLOR, label=label)
        if 'points' in instances and len(instances):
            self.points(np.asarray(instances.points, np.float64), target)

    def gt(self, instances, panels: dict) -> None:
        """GT box in every panel (a note when the crop misses it), GT mask outline in the crop
        panel (the image panel without one).

        Args:
            instances (InstanceData): ``gt_instances`` (``bboxes`` (1, 4), ``masks``).
            panels (dict[str, Panel]): from :func:`~.layout.place_panels`.
        """
        crop = panels.get(CROP)
        for box in instances.get('bboxes', []):
            for panel in panels.values():
                self.box('gt_box', 'GT box', box, panel, GT_COLOR, dashed=True, label='GT',
                         noted=panel is crop)
        if 'masks' in instances and len(instances):
            self.mask('gt_mask', instances.masks, crop or panels[OVERVIEW], GT_COLOR,
                      dashed=True)

    def box(self, kind: str, name: str, box, panel: Panel, color, dashed: bool = False,
            label: Optional[str] = None, noted: bool = True) -> None:
        """A box (ORIGINAL pixels) clipped to a panel's window; a note when it was cut.

        Args:
            kind (str): the :class:`~.layout.DrawnItem` kind.
            name (str): what the box is, for its note and (by default) its label.
            box: (4,) ``[x1, y1, x2, y2]``.
            panel (Panel): where it is drawn.
            color (tuple): RGB.
            dashed (bool): dashed outline.
            label (str, optional): its label; None: ``name``.
            noted (bool): add a note when the box was cut or left out.
        """
        box = np.asarray(box, np.float64).reshape(-1)
        clipped, status = clip_box(box, panel.window)
        if noted:
            self._note(clipping_note(name, box, status, _where(panel)))
        if clipped is None:
            return
        shown = inset(panel.to_canvas(clipped), self.line_px / 2)
        item = DrawnItem(kind, panel.name, tuple(shown.tolist()), name if label is None else label)
        self.marks.append(Mark(item, shown, color, dashed))

    def points(self, points: np.ndarray, panel: Panel) -> None:
        """The points inside the panel's window as markers; a note for each other one.

        Args:
            points (np.ndarray): (..., 2) ORIGINAL pixels.
            panel (Panel): where they are drawn.
        """
        kept = []
        for index, point in enumerate(points.reshape(-1, 2)):
            x1, y1, x2, y2 = panel.window
            if np.isfinite(point).all() and x1 <= point[0] <= x2 and y1 <= point[1] <= y2:
                kept.append(point)
            else:
                self._note(f'point {index + 1} ({point[0]:.0f}, {point[1]:.0f}) lies outside '
                           f'the {_where(panel)} (not drawn)')
        if not kept:
            return
        radius = min(self.marker_radius, min(panel.size) / 2)
        centres = panel.to_canvas(np.stack(kept))
        low = np.asarray(panel.box[:2]) + radius
        high = np.maximum(low, np.asarray(panel.box[2:]) - radius)
        centres = np.clip(centres, low, high)  # a marker on the window's edge stays in the panel
        self.marks.append(Mark(DrawnItem('points', panel.name, points_box(centres, radius)),
                               centres, POINT_COLOR, radius=radius))

    def mask(self, kind: str, masks, panel: Panel, color, dashed: bool = False) -> None:
        """The union of the masks, cut to the panel's window and resized to the panel.

        Args:
            kind (str): ``'mask'`` or ``'gt_mask'``.
            masks: (K, H, W) or (H, W) full-image masks (tensor, array or ``BitmapMasks``).
            panel (Panel): where it is drawn.
            color (tuple): RGB.
            dashed (bool): dashed outline.
        """
        mask = mask_array(masks)
        x1, y1, x2, y2 = panel.window
        if mask.ndim != 2 or mask.shape[0] < y2 or mask.shape[1] < x2:
            self._note(f'{kind} of shape {mask.shape} does not cover the {_where(panel)} '
                       '(not drawn)')
            return
        shown = resize(mask[y1:y2, x1:x2].astype(np.uint8), panel.size, 'nearest') > 0
        if not shown.any():
            return
        rows, cols = np.nonzero(shown)
        box = (panel.box[0] + cols.min(), panel.box[1] + rows.min(),
               panel.box[0] + cols.max() + 1, panel.box[1] + rows.max() + 1)
        self.marks.append(Mark(DrawnItem(kind, panel.name, tuple(float(v) for v in box)), shown,
                               color, dashed))

    def _note(self, note: Optional[str]) -> None:
        if note:
            self.notes.append(note)


def _where(panel: Panel) -> str:
    """What a panel shows, for notes."""
    return 'image' if panel.name == OVERVIEW else 'crop window'


def resize(image: np.ndarray, size: Sequence[int], interpolation: Optional[str] = None):
    """Resize to ``size`` (w, h): area averaging to shrink, bilinear to enlarge by default."""
    if interpolation is None:
        shrink = size[0] < image.shape[1] or size[1] < image.shape[0]
        interpolation = 'area' if shrink else 'bilinear'
    return mmcv.imresize(image, tuple(int(v) for v in size), interpolation=interpolation)


def mask_array(masks) -> np.ndarray:
    """The union of K masks (tensor, array or mmdet ``BitmapMasks``) as an (H, W) bool array."""
    if hasattr(masks, 'to_ndarray'):
        masks = masks.to_ndarray()
    elif hasattr(masks, 'numpy'):
        masks = masks.detach().cpu().numpy()
    masks = np.asarray(masks).astype(bool)
    return masks.any(axis=0) if masks.ndim == 3 else masks
