# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRSVisualizer: one readable drawing per FineRS prediction, step by step."""
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmdet.structures import DetDataSample
from mmdet.visualization import DetLocalVisualizer
from mmengine.dist import master_only

from finers_mm.registry import VISUALIZERS
from finers_mm.utils.fileio import write_image_atomic
from .caption import caption_entries, wrap_entries
from .layout import OVERVIEW, Box, DrawingLayout, TextLine, boxes_overlap, place_panels
from .marks import Mark, MarkPlanner, resize

#: RGB colours of the canvas and its text (the marks' are in :mod:`.marks`)
BACKGROUND = (24, 24, 24)
CAPTION_COLORS = dict(question=(235, 235, 235), answer=(140, 230, 140), gt=(150, 200, 255),
                      invalid=(255, 110, 110), note=(255, 180, 60))
TITLE_COLOR = (200, 200, 200)
#: text background of the labels inside panels (matplotlib bbox; pad in points)
LABEL_BOX = dict(facecolor='black', alpha=0.65, pad=1.5, edgecolor='none')


@VISUALIZERS.register_module()
class FineRSVisualizer(DetLocalVisualizer):
    """Draw a FineRS prediction step by step on one canvas of bounded size.

    - **image** panel: the whole image, scaled to fit, with the explorer's region (gold) and the
      crop window (cyan), each clipped to the image and labelled;
    - **crop** panel: the crop window of the original as the refiner saw it, resized to the
      panel, with the refiner's box (red), its two points (magenta) and the mask (blue,
      semi-transparent and outlined);
    - **caption** below: question and question type, options, answer, the invalid reason when
      the chain flagged one, the GT answer, and a note for every prediction drawn clipped or not
      drawn (e.g. ``explorer region 1332x1311 px ... extends beyond the image``).

    With ``draw_gt`` the GT box (both panels) and mask outline (crop panel) are drawn green and
    dashed. A prediction without a crop window (the explorer alone, another detector) gets its
    boxes and masks in the image panel. Nothing is drawn outside its panel and no text covers a
    panel except the labels inside it. Use it as ``visualizer`` in a config: ``tools/test.py
    --show-dir`` and :class:`~finers_mm.apis.FineRSInferencer` draw with it. Images are RGB.
    After each drawing, :attr:`layout` (:class:`~finers_mm.visualization.layout.DrawingLayout`)
    records what was drawn where.

    Args:
        name (str): instance name.
        max_width (int): the widest canvas, in pixels.
        panel_height (int): the tallest panel, in pixels (less when the panels would not fit in
            ``max_width``).
        min_width (int): the narrowest canvas (room for the caption beside a narrow image).
        font_size (int): caption text height in pixels; titles and labels are 0.8 of it.
        max_caption_lines (int): the caption's most lines; more end with an ellipsis.
        margin (int): pixels around and between panels.
        **kwargs: the arguments of :class:`mmdet.visualization.DetLocalVisualizer`;
            ``line_width`` (points, default 2) and ``alpha`` (the mask's opacity, default 0.45)
            are used here.
    """

    def __init__(self, name: str = 'visualizer', max_width: int = 1600, panel_height: int = 720,
                 min_width: int = 720, font_size: int = 18, max_caption_lines: int = 12,
                 margin: int = 12, **kwargs) -> None:
        kwargs.setdefault('alpha', 0.45)
        kwargs.setdefault('line_width', 2)
        super().__init__(name=name, **kwargs)
        sizes = dict(max_width=max_width, panel_height=panel_height, min_width=min_width,
                     font_size=font_size, max_caption_lines=max_caption_lines)
        for key, value in sizes.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'FineRSVisualizer: {key} must be an integer >= 1, got {value!r}')
        if not isinstance(margin, int) or margin < 0:
            raise ValueError(f'FineRSVisualizer: margin must be an integer >= 0, got {margin!r}')
        if min_width > max_width:
            raise ValueError(f'FineRSVisualizer: min_width {min_width} exceeds max_width '
                             f'{max_width}; lower min_width or raise max_width')
        self.max_width, self.panel_height, self.min_width = max_width, panel_height, min_width
        self.font_size, self.label_size = font_size, max(8, round(font_size * 0.8))
        self.max_caption_lines, self.margin = max_caption_lines, margin
        self.layout: Optional[DrawingLayout] = None

    # ---------------------------------------------------------------- public API (mmdet's)
    @master_only
    def add_datasample(self, name: str, image: np.ndarray,
                       data_sample: Optional[DetDataSample] = None, draw_gt: bool = True,
                       draw_pred: bool = True, show: bool = False, wait_time: float = 0,
                       out_file: Optional[str] = None, pred_score_thr: float = 0.0,
                       step: int = 0) -> None:
        """Draw a sample (:meth:`draw_sample`); show it, save it to ``out_file`` or the backends.

        Args:
            name (str): image identifier.
            image (np.ndarray): (H, W, 3) uint8 RGB ORIGINAL image.
            data_sample (DetDataSample, optional): GT and / or FineRS prediction.
            draw_gt (bool): draw the GT (box, mask outline, answer) when the sample has it.
            draw_pred (bool): draw the prediction.
            show (bool): show in a window instead of saving to the backends.
            wait_time (float): seconds a shown image stays.
            out_file (str, optional): save the drawing here (RGB written as a normal image file).
            pred_score_thr (float): unused; FineRS predicts at most one instance per sample.
            step (int): global step for the backends.
        """
        drawn = self.draw_sample(image, data_sample, draw_gt=draw_gt, draw_pred=draw_pred)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            write_image_atomic(out_file, drawn)  # never a truncated drawing on disk
        else:
            self.add_image(name, drawn, step)

    @master_only
    def draw_sample(self, image: np.ndarray, data_sample: Optional[DetDataSample] = None,
                    draw_gt: bool = True, draw_pred: bool = True) -> np.ndarray:
        """Lay out and draw one sample; :attr:`layout` records the result.

        Args:
            image (np.ndarray): (H, W, 3) or (H, W) ORIGINAL image, RGB.
            data_sample (DetDataSample, optional): a FineRSDetector prediction (metainfo
                ``pred_region``, ``pred_window``, ``pred_answer``, ``invalid_reason``,
                ``question``, ``question_type``, ``options``; ``pred_instances`` with ``bboxes``,
                ``points`` (K, 2, 2), ``masks`` (K, H, W), ``scores``) and / or GT
                (``gt_instances``, metainfo ``answer``), ORIGINAL pixels.
            draw_gt (bool): draw the GT when the sample has it.
            draw_pred (bool): draw the prediction when the sample has one.

        Returns:
            np.ndarray: (h, w, 3) uint8 RGB drawing, ``w <= max_width``.
        """
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
            raise ValueError(f'FineRSVisualizer: expected an (H, W, 3) RGB image, got shape '
                             f'{image.shape}')
        image = np.ascontiguousarray(image.clip(0, 255).astype(np.uint8))
        sample = None if data_sample is None else data_sample.cpu()
        draw_pred = draw_pred and sample is not None and 'pred_instances' in sample
        image_size = (image.shape[1], image.shape[0])

        planner = MarkPlanner(self.line_width * self.dpi / 72.0, max(3.0, self.font_size / 3))
        window = planner.crop_window(sample, image_size) if draw_pred else None
        top = self.margin + self._label_box_height()
        panels = place_panels(image_size, window, self.max_width, self.panel_height, self.margin,
                              top)
        if draw_gt and sample is not None and 'gt_instances' in sample:
            planner.gt(sample.gt_instances, panels)
        if draw_pred:
            planner.prediction(sample, panels)
        marks, notes = planner.marks, planner.notes

        width = max(self.min_width, max(p.box[2] for p in panels.values()) + self.margin)
        line_height = round(self._text_size('lp', self.font_size)[1] * 1.25)
        entries = caption_entries(sample, draw_gt, draw_pred, notes)
        lines = wrap_entries(entries, width - 2 * self.margin - 4,
                             lambda text: self._text_size(text, self.font_size)[0],
                             self.max_caption_lines)
        caption_top = max(p.box[3] for p in panels.values()) + self.margin
        height = caption_top + len(lines) * line_height + (self.margin if lines else 0)
        layout = DrawingLayout(canvas_size=(width, height), panels=panels, notes=notes,
                               caption_box=(self.margin, caption_top, width - self.margin,
                                            caption_top + len(lines) * line_height))

        canvas = np.empty((height, width, 3), np.uint8)
        canvas[...] = BACKGROUND
        for panel in panels.values():
            x1, y1, x2, y2 = panel.window
            canvas[panel.box[1]:panel.box[3], panel.box[0]:panel.box[2]] = resize(
                image[y1:y2, x1:x2], panel.size)
        self.set_image(canvas)
        self._draw_marks(marks, panels)
        layout.items = [mark.item for mark in marks]
        self._draw_labels(marks, panels, layout)
        self._draw_titles(panels, image_size, layout)
        self._draw_caption(lines, layout, line_height)
        self.layout = layout
        return self.get_image()

    # ---------------------------------------------------------------- drawing
    def _draw_marks(self, marks: List[Mark], panels) -> None:
        """Mask fills first (they re-render the canvas), then outlines, boxes and points, each
        clipped to its panel."""
        fills = [m for m in marks if m.item.kind == 'mask']
        if fills:
            canvas_masks = np.zeros((len(fills), self.height, self.width), bool)
            for layer, mark in zip(canvas_masks, fills):
                x1, y1, x2, y2 = panels[mark.item.panel].box
                layer[y1:y2, x1:x2] = mark.coords
            self.draw_binary_masks(canvas_masks, colors=[m.color for m in fills],
                                   alphas=[self.alpha] * len(fills))
        line = self.line_width
        for mark in marks:
            panel = panels[mark.item.panel]
            before = len(self.ax_save.collections)
            style = '--' if mark.dashed else '-'
            if mark.item.kind in ('mask', 'gt_mask'):
                polygons = _outlines(mark.coords, panel.box[:2])
                if polygons:  # thinner than boxes: a mask's outline can be long and ragged
                    self.draw_polygons(polygons, edge_colors=mark.color,
                                       line_widths=max(1.0, line * 0.6), line_styles=style,
                                       alpha=1.0)
            elif mark.item.kind == 'points':
                self.draw_circles(mark.coords, np.full(len(mark.coords), mark.radius),
                                  edge_colors='white', face_colors=mark.color, line_widths=1,
                                  alpha=1.0)
            else:
                self.draw_bboxes(mark.coords[None], edge_colors=mark.color, line_widths=line,
                                 line_styles=style, alpha=1.0)
            self._clip_to(self.ax_save.collections[before:], panel.box)

    def _draw_labels(self, marks: List[Mark], panels, layout: DrawingLayout) -> None:
        """Each labelled item's label next to it, inside its panel, not over another label."""
        taken: List[Box] = []
        for mark in marks:
            if mark.item.label is None:
                continue
            panel = panels[mark.item.panel]
            placed = self._place_label(mark.item.label, mark.item.box, panel.box, taken)
            if placed is None:
                continue
            taken.append(placed)
            pad = self._pad_px()
            before = len(self.ax_save.texts)
            self.draw_texts(_escape(mark.item.label), np.array([[placed[0] + pad,
                                                                 placed[1] + pad]]),
                            font_sizes=self._points(self.label_size), colors=[mark.color],
                            bboxes=[LABEL_BOX])
            self._clip_to(self.ax_save.texts[before:], panel.box)
            layout.texts.append(TextLine('label', mark.item.label, placed))

    def _place_label(self, text: str, anchor: Box, bounds: Box, taken: Sequence[Box]):
        """Above the item, below it or inside its top-left corner, moved into the panel; the
        first spot free of other labels (None when the panel is too small for the label)."""
        width, height = self._text_size(text, self.label_size)
        pad = self._pad_px()
        w, h = width + 2 * pad, height + 2 * pad
        if w > bounds[2] - bounds[0] or h > bounds[3] - bounds[1]:
            return None
        spots = [(anchor[0], anchor[1] - h - 2), (anchor[0], anchor[3] + 2),
                 (anchor[0] + 2, anchor[1] + 2)]
        boxes = []
        for x, y in spots:
            x = min(max(x, bounds[0]), bounds[2] - w)
            y = min(max(y, bounds[1]), bounds[3] - h)
            boxes.append((x, y, x + w, y + h))
        free = [box for box in boxes if not any(boxes_overlap(box, other) for other in taken)]
        return (free or boxes)[0]

    def _draw_titles(self, panels, image_size, layout: DrawingLayout) -> None:
        """A title above each panel, shortened to the panel's width."""
        for panel in panels.values():
            if panel.name == OVERVIEW:
                title = f'image {image_size[0]}x{image_size[1]} px'
            else:
                x1, y1, x2, y2 = panel.window
                title = (f'refiner crop [{x1}, {y1}, {x2}, {y2}] ({x2 - x1}x{y2 - y1} px, '
                         f'shown at {panel.scale[0]:.2g}x)')
            title = self._shorten(title, panel.size[0], self.label_size)
            if not title:
                continue
            width, height = self._text_size(title, self.label_size)
            y = panel.box[1] - self._label_box_height()
            self.draw_texts(_escape(title), np.array([[panel.box[0], y]]),
                            font_sizes=self._points(self.label_size), colors=[TITLE_COLOR])
            layout.texts.append(TextLine('title', title, (panel.box[0], y, panel.box[0] + width,
                                                          y + height)))

    def _draw_caption(self, lines, layout: DrawingLayout, line_height: int) -> None:
        """The caption lines, one under the other, in the band below the panels."""
        if not lines:
            return
        x, y = layout.caption_box[:2]
        positions = np.array([[x, y + i * line_height] for i in range(len(lines))], np.float64)
        self.draw_texts([_escape(text) for _, text in lines], positions,
                        font_sizes=self._points(self.font_size),
                        colors=[CAPTION_COLORS[kind] for kind, _ in lines])
        for (kind, text), (tx, ty) in zip(lines, positions):
            width, height = self._text_size(text, self.font_size)
            layout.texts.append(TextLine(kind, text, (tx, ty, tx + width, ty + height)))

    # ---------------------------------------------------------------- text and sizes
    def _text_size(self, text: str, size_px: float) -> Tuple[float, float]:
        """Drawn ``(width, height)`` in pixels of one line (height: at least that of "lp")."""
        from matplotlib.font_manager import FontProperties
        renderer = self.fig_save_canvas.get_renderer()
        prop = FontProperties(family='sans-serif', size=self._points(size_px))
        width, height, _ = renderer.get_text_width_height_descent(text or ' ', prop, ismath=False)
        _, line_height, _ = renderer.get_text_width_height_descent('lp', prop, ismath=False)
        return width, max(height, line_height)

    def _shorten(self, text: str, max_width: float, size_px: float) -> str:
        """The text, cut and ended with an ellipsis when wider than ``max_width``."""
        if self._text_size(text, size_px)[0] <= max_width:
            return text
        while text and self._text_size(text + '…', size_px)[0] > max_width:
            text = text[:-1]
        return text + '…' if text else ''

    def _points(self, pixels: float) -> float:
        """Matplotlib points for a size in canvas pixels."""
        return pixels * 72.0 / self.dpi

    def _pad_px(self) -> float:
        return LABEL_BOX['pad'] * self.dpi / 72.0

    def _label_box_height(self) -> int:
        return int(np.ceil(self._text_size('lp', self.label_size)[1] + 2 * self._pad_px())) + 2

    def _clip_to(self, artists, box: Sequence[float]) -> None:
        """Clip matplotlib artists to a canvas rectangle (a panel)."""
        from matplotlib.patches import Rectangle
        for artist in artists:
            artist.set_clip_path(Rectangle((box[0], box[1]), box[2] - box[0], box[3] - box[1],
                                           transform=self.ax_save.transData))


def _outlines(mask: np.ndarray, origin: Sequence[int]) -> List[np.ndarray]:
    """Outer contours of a bool mask as polygons (N, 2) in canvas pixels."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    offset = np.asarray(origin, np.float64) + 0.5  # pixel centres
    return [c.reshape(-1, 2) + offset for c in contours if len(c) >= 3]


def _escape(text: str) -> str:
    """Text drawn as written: a ``$`` would start matplotlib's math mode."""
    return text.replace('$', r'\$')
