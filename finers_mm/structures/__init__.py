# Copyright (c) finers_mm contributors. All rights reserved.
"""The pure layer every other part of finers_mm builds on (numpy only, no models).

Coordinate frames and box / point / mask transforms; the vocabulary of stages, question types and
options (:mod:`.vocabulary`); the completion parser (:mod:`.parsing`); the answer rules
(:mod:`.answers`); what a reward term scores against (:mod:`.reward_sample`).
"""
from .frames import (Size, box_contains, clip_boxes, crop_window_from_region, explorer_to_original,
                     frame_to_model, frame_to_window, full_window, is_absent, model_to_frame,
                     original_to_explorer, random_window_containing, region_around_box,
                     window_to_frame)
from .images import crop_to_frame, image_size, resize_to_frame
from .masks import (area_percent, mask_bbox, paste_crop_mask, polygon_bbox, polygon_vertices,
                    rasterize_polygon)
from .points import box_center_jitter_points, inscribed_circle_points
from .tiling import slice_windows

__all__ = [
    'Size', 'full_window', 'window_to_frame', 'frame_to_window', 'original_to_explorer',
    'model_to_frame', 'frame_to_model', 'is_absent',
    'explorer_to_original', 'clip_boxes', 'crop_window_from_region', 'random_window_containing',
    'region_around_box', 'box_contains', 'polygon_vertices', 'rasterize_polygon', 'polygon_bbox',
    'mask_bbox', 'area_percent', 'paste_crop_mask', 'image_size', 'resize_to_frame',
    'crop_to_frame', 'inscribed_circle_points', 'box_center_jitter_points', 'slice_windows'
]
