# Copyright (c) finers_mm contributors. All rights reserved.
"""Where each part of a FineRS drawing goes: panels, boxes clipped to them, notes (pure numpy).

A drawing shows windows of the ORIGINAL image in panels of one canvas: the whole image (the
overview, with the explorer's region and the crop window) and the crop window (what the refiner
saw, with its box, points and mask). A :class:`Panel` maps ORIGINAL pixels to canvas pixels; a
prediction that reaches outside its panel's window is clipped to it and described by a note, so
nothing is drawn outside the picture it belongs to. :class:`DrawingLayout` records what was drawn
where, for tests and for callers that crop or annotate the drawing further.

Coordinates are continuous pixels, ``[x1, y1, x2, y2]`` boxes and ``(x, y)`` points, as in
:mod:`finers_mm.structures.frames`; canvas pixels have their origin at the canvas's top-left.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

#: ``[x1, y1, x2, y2]``
Box = Tuple[float, float, float, float]

#: what :func:`clip_box` says about a box and a window
INSIDE, PARTIAL, OUTSIDE, NOT_A_BOX = 'inside', 'partial', 'outside', 'not_a_box'

OVERVIEW, CROP = 'image', 'crop'


@dataclass
class Panel:
    """A window of the ORIGINAL image shown in a rectangle of the canvas.

    Args:
        name (str): :data:`OVERVIEW` (the whole image) or :data:`CROP` (the crop window).
        window (tuple): ``[x1, y1, x2, y2]`` integer ORIGINAL pixels shown.
        box (tuple): ``[x1, y1, x2, y2]`` integer canvas pixels where it is shown.
    """
    name: str
    window: Tuple[int, int, int, int]
    box: Tuple[int, int, int, int]

    @property
    def size(self) -> Tuple[int, int]:
        """``(width, height)`` of the panel in canvas pixels."""
        return self.box[2] - self.box[0], self.box[3] - self.box[1]

    @property
    def scale(self) -> np.ndarray:
        """(2,) canvas pixels per ORIGINAL pixel along x and y."""
        width, height = self.size
        return np.array([width / (self.window[2] - self.window[0]),
                         height / (self.window[3] - self.window[1])])

    def to_canvas(self, coords) -> np.ndarray:
        """ORIGINAL pixels -> canvas pixels.

        Args:
            coords: boxes (..., 4) or points (..., 2) in ORIGINAL pixels.

        Returns:
            np.ndarray: float64, same shape, in canvas pixels.
        """
        coords = np.asarray(coords, dtype=np.float64)
        repeat = coords.shape[-1] // 2
        offset = np.tile(np.asarray(self.window[:2], np.float64), repeat)
        origin = np.tile(np.asarray(self.box[:2], np.float64), repeat)
        return (coords - offset) * np.tile(self.scale, repeat) + origin


@dataclass
class DrawnItem:
    """One thing drawn in a panel.

    Args:
        kind (str): ``'region'``, ``'window'``, ``'box'``, ``'points'``, ``'mask'``, ``'gt_box'``
            or ``'gt_mask'``.
        panel (str): the panel's name.
        box (tuple): canvas pixels ``[x1, y1, x2, y2]`` it covers (for points: the box around
            their markers; for a mask: around its pixels), inside the panel.
        label (str, optional): the text written next to it.
    """
    kind: str
    panel: str
    box: Box
    label: Optional[str] = None


@dataclass
class TextLine:
    """A line of text on the canvas.

    Args:
        kind (str): ``'title'`` (above a panel), ``'label'`` (in a panel, next to an item), or a
            caption kind: ``'question'``, ``'answer'``, ``'gt'``, ``'invalid'``, ``'note'``.
        text (str): what is written.
        box (tuple): canvas pixels ``[x1, y1, x2, y2]`` of the text (its background included).
    """
    kind: str
    text: str
    box: Box


@dataclass
class DrawingLayout:
    """What a :class:`~finers_mm.visualization.FineRSVisualizer` drawing holds, and where.

    Args:
        canvas_size (tuple): ``(width, height)`` of the drawing.
        panels (dict): panel name -> :class:`Panel`.
        items (list[DrawnItem]): the boxes, points and masks drawn, inside their panels.
        texts (list[TextLine]): titles, labels and caption lines.
        notes (list[str]): what could not be drawn as predicted (a region reaching outside the
            image, a box outside the crop); they are also caption lines.
        caption_box (tuple): canvas pixels of the caption band, below every panel.
    """
    canvas_size: Tuple[int, int]
    panels: Dict[str, Panel] = field(default_factory=dict)
    items: List[DrawnItem] = field(default_factory=list)
    texts: List[TextLine] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    caption_box: Box = (0, 0, 0, 0)

    def items_of(self, kind: str) -> List[DrawnItem]:
        """The drawn items of one kind."""
        return [item for item in self.items if item.kind == kind]

    def texts_of(self, *kinds: str) -> List[TextLine]:
        """The text lines of the given kinds."""
        return [text for text in self.texts if text.kind in kinds]


def place_panels(image_size: Tuple[int, int], window: Optional[Sequence[int]], max_width: int,
                 panel_height: int, margin: int, top: int) -> Dict[str, Panel]:
    """Put the overview (and the crop window's panel) side by side, at one height.

    The height is ``panel_height``, or less so that both panels and the margins fit in
    ``max_width``; each panel keeps its window's aspect ratio.

    Args:
        image_size (tuple[int, int]): ``(W, H)`` of the original.
        window (Sequence[int], optional): the crop window ``[x1, y1, x2, y2]`` inside the image
            (integer ORIGINAL pixels); None: the overview only.
        max_width (int): the widest canvas allowed, margins included.
        panel_height (int): the tallest panel allowed.
        margin (int): canvas pixels around and between panels.
        top (int): canvas y of the panels' top edge.

    Returns:
        dict[str, Panel]: :data:`OVERVIEW` and, with a window, :data:`CROP`.
    """
    width, height = int(image_size[0]), int(image_size[1])
    windows = [(OVERVIEW, (0, 0, width, height))]
    if window is not None:
        windows.append((CROP, tuple(int(v) for v in window)))
    aspects = [(w[2] - w[0]) / (w[3] - w[1]) for _, w in windows]
    room = max_width - margin * (len(windows) + 1)
    side = max(1, int(min(panel_height, room / sum(aspects))))
    panels, x = {}, margin
    for (name, shown), aspect in zip(windows, aspects):
        panel_width = max(1, min(int(round(aspect * side)), max_width - margin - x))
        panels[name] = Panel(name, shown, (x, top, x + panel_width, top + side))
        x += panel_width + margin
    return panels


def clip_box(box, window: Sequence[float]) -> Tuple[Optional[np.ndarray], str]:
    """Clip a box to a window and say how much of it was inside.

    Args:
        box: (4,) ``[x1, y1, x2, y2]``.
        window (Sequence[float]): (4,) ``[x1, y1, x2, y2]`` in the same pixels.

    Returns:
        tuple: the clipped (4,) float64 box (None when nothing is left) and :data:`INSIDE`,
        :data:`PARTIAL`, :data:`OUTSIDE` or :data:`NOT_A_BOX` (not 4 finite numbers with
        ``x1 <= x2`` and ``y1 <= y2``).
    """
    box = np.asarray(box, dtype=np.float64).reshape(-1)
    if box.size != 4 or not np.isfinite(box).all() or box[2] < box[0] or box[3] < box[1]:
        return None, NOT_A_BOX
    low = np.asarray(window[:2], np.float64)
    high = np.asarray(window[2:], np.float64)
    if (box[:2] >= high).any() or (box[2:] <= low).any():
        return None, OUTSIDE
    clipped = np.concatenate((np.clip(box[:2], low, high), np.clip(box[2:], low, high)))
    if (box[:2] < low).any() or (box[2:] > high).any():
        return clipped, PARTIAL
    return clipped, INSIDE


def clipping_note(name: str, box, status: str, where: str) -> Optional[str]:
    """The caption note for a box that was not drawn as predicted; None when it was.

    Args:
        name (str): what the box is, e.g. ``'explorer region'``.
        box: (4,) the box as predicted.
        status (str): from :func:`clip_box`.
        where (str): what it was clipped to, e.g. ``'image'``.

    Returns:
        str | None: e.g. ``'explorer region 1332x1311 px extends beyond the image (drawn
        clipped)'``.
    """
    if status == INSIDE:
        return None
    coords = np.asarray(box, dtype=np.float64).reshape(-1)
    shown = '[' + ', '.join(f'{v:.0f}' if np.isfinite(v) else str(v) for v in coords) + ']'
    if status == NOT_A_BOX:
        return f'{name} {shown} is not a box (not drawn)'
    size = f'{coords[2] - coords[0]:.0f}x{coords[3] - coords[1]:.0f} px'
    if status == PARTIAL:
        return f'{name} {size} {shown} extends beyond the {where} (drawn clipped)'
    return f'{name} {size} {shown} lies outside the {where} (not drawn)'


def inset(box: Sequence[float], amount: float) -> np.ndarray:
    """A box shrunk by ``amount`` on each side (not past its centre)."""
    box = np.asarray(box, dtype=np.float64)
    amount = min(amount, (box[2] - box[0]) / 2, (box[3] - box[1]) / 2)
    return box + np.array([amount, amount, -amount, -amount])


def boxes_overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two boxes share some area."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def points_box(points: np.ndarray, radius: float) -> Box:
    """The box around circles of ``radius`` at ``points`` (N, 2)."""
    low = points.min(axis=0) - radius
    high = points.max(axis=0) + radius
    return float(low[0]), float(low[1]), float(high[0]), float(high[1])
