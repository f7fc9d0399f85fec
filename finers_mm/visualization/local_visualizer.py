# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRSVisualizer: mmdet's visualiser, plus the FineRS chain's region, crop, points and answer."""
from typing import Optional

import mmcv
import numpy as np
from mmdet.structures import DetDataSample
from mmdet.visualization import DetLocalVisualizer

from finers_mm.registry import VISUALIZERS
from finers_mm.structures import crop_to_frame

#: RGB colours of what is drawn on top of mmdet's boxes and masks
REGION_COLOR = (255, 215, 0)
WINDOW_COLOR = (0, 200, 255)
POINT_COLOR = (255, 0, 80)
TEXT_COLOR = (255, 255, 255)


@VISUALIZERS.register_module()
class FineRSVisualizer(DetLocalVisualizer):
    """Draw a FineRS prediction: the explorer's region (gold), the crop window (cyan), the refiner's
    box and SAM's mask (mmdet's drawing), the two points (magenta), the question and the answer.

    FineRS targets cover < 0.1 % of the image, so the prediction panel is followed by a zoom panel:
    the crop window of the drawn prediction, enlarged to the image height. With ``draw_gt`` the GT
    panel (mmdet's drawing of ``gt_instances``) comes first. Works as ``visualizer`` in a config, so
    ``tools/test.py --show-dir`` draws FineRS predictions. Images are RGB.

    Args:
        name (str): instance name.
        **kwargs: the arguments of :class:`mmdet.visualization.DetLocalVisualizer`.
    """

    def __init__(self, name: str = 'visualizer', **kwargs) -> None:
        kwargs.setdefault('alpha', 0.5)
        super().__init__(name=name, **kwargs)

    def draw_prediction(self, image: np.ndarray, data_sample: DetDataSample) -> np.ndarray:
        """The prediction panel followed by its zoom panel.

        Args:
            image (np.ndarray): (H, W, 3) uint8 RGB ORIGINAL image.
            data_sample (DetDataSample): a FineRSDetector prediction (CPU).

        Returns:
            np.ndarray: (H, W + H, 3) uint8 RGB (W only when there is no crop window to zoom into).
        """
        classes = self.dataset_meta.get('classes', None)
        palette = self.dataset_meta.get('palette', None)
        drawn = self._draw_instances(image, data_sample.pred_instances, classes, palette)
        self.set_image(drawn)
        width = max(2, image.shape[1] // 640)
        for key, color in (('pred_region', REGION_COLOR), ('pred_window', WINDOW_COLOR)):
            box = data_sample.get(key, None)
            if box is not None:
                self.draw_bboxes(np.asarray(box, np.float32).reshape(1, 4), edge_colors=[color],
                                 line_widths=width)
        if 'points' in data_sample.pred_instances and len(data_sample.pred_instances):
            points = data_sample.pred_instances.points.reshape(-1, 2).numpy()
            self.draw_circles(points, np.full(len(points), 2.0 * width), edge_colors=[POINT_COLOR],
                              face_colors=[POINT_COLOR], line_widths=width)
        self.draw_texts(_caption(data_sample), np.array([[width * 4, width * 4]]),
                        colors=[TEXT_COLOR], font_sizes=max(12, image.shape[0] // 60),
                        bboxes=[dict(facecolor='black', alpha=0.6, pad=2, edgecolor='none')])
        drawn = self.get_image()
        window = data_sample.get('pred_window', None)
        if window is None:
            return drawn
        height = image.shape[0]
        zoom = crop_to_frame(drawn, window, (height, height), interpolation='nearest')
        return np.concatenate((drawn, zoom), axis=1)

    def add_datasample(self, name: str, image: np.ndarray,
                       data_sample: Optional[DetDataSample] = None, draw_gt: bool = True,
                       draw_pred: bool = True, show: bool = False, wait_time: float = 0,
                       out_file: Optional[str] = None, pred_score_thr: float = 0.0,
                       step: int = 0) -> None:
        """Draw GT and prediction panels side by side; show, save to ``out_file`` or the backends.

        Args:
            name (str): image identifier.
            image (np.ndarray): (H, W, 3) uint8 RGB ORIGINAL image.
            data_sample (DetDataSample, optional): GT and / or FineRS prediction.
            draw_gt (bool): draw the GT panel when the sample has ``gt_instances``.
            draw_pred (bool): draw the prediction and zoom panels.
            show (bool): show in a window instead of saving to the backends.
            wait_time (float): seconds a shown image stays.
            out_file (str, optional): save the drawing here (RGB written as a normal image file).
            pred_score_thr (float): unused; FineRS predicts at most one instance per sample.
            step (int): global step for the backends.
        """
        image = image.clip(0, 255).astype(np.uint8)
        panels = []
        if data_sample is not None:
            data_sample = data_sample.cpu()
            if draw_gt and 'gt_instances' in data_sample:
                panels.append(self._draw_instances(
                    image, data_sample.gt_instances, self.dataset_meta.get('classes', None),
                    self.dataset_meta.get('palette', None)))
            if draw_pred and 'pred_instances' in data_sample:
                panels.append(self.draw_prediction(image, data_sample))
        drawn = np.concatenate(panels, axis=1) if panels else image
        self.set_image(drawn)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            mmcv.imwrite(drawn[..., ::-1], out_file)
        else:
            self.add_image(name, drawn, step)


def _caption(data_sample: DetDataSample) -> str:
    """Question, answer and, for an empty prediction, why."""
    lines = [f"Q: {data_sample.get('question', '')}",
             f"A: {data_sample.get('pred_answer', '') or '(none)'}"]
    if data_sample.get('invalid_reason', None):
        lines.append(f"invalid: {data_sample.invalid_reason}")
    return '\n'.join(lines)
