# Copyright (c) finers_mm contributors. All rights reserved.
"""A scripted refiner for the retrospective region search: which window it is shown decides how well
it localises the target, so some candidate windows are clearly better than others.

:class:`WindowAwareRefiner` is the real :class:`~finers_mm.models.LocalRefiner` (real crop, prompt,
parser and frame maps) that hands each view's crop window to :class:`WindowScriptedAdapter`, a
Qwen2.5-VL adapter whose ``generate`` answers ``script(view, prompt, window)``. Its default script
is an oracle on the bundled records whose box misses the GT by a shift that grows with the distance
between the window's centre and a point near the GT (:func:`oracle_box`).

Importing this module registers both (``custom_imports`` for runs in a subprocess).
"""
import json
import os.path as osp
from functools import lru_cache

import numpy as np

from finers_mm.datasets import FineRS4kDataset
from finers_mm.models import LocalRefiner
from finers_mm.models.vlm import Qwen25VLAdapter
from finers_mm.registry import MODELS
from finers_mm.structures import window_to_frame
from finers_mm.structures.answers import FOUND_RESPONSE
from .paths import BUNDLED_DATA
from .scripted import THINK, _generation, record_for

BUNDLED_ANN = osp.join(BUNDLED_DATA, 'annotations', 'train.json')
BUNDLED_IMAGES = osp.join(BUNDLED_DATA, 'images')
#: the configs' ``frames`` (the paper's): the explorer frame (W, H), the region side in EXPLORER
#: pixels, the smallest crop-window side in ORIGINAL pixels
EXPLORER_SIZE, REGION_SIZE, CROP_MIN_SIDE = (1920, 1080), 256, 512
#: the oracle is exact where the window's centre is this far (px) from the GT box's centre ...
SWEET_SPOT = np.array([60.0, -40.0])
#: ... and its box is shifted by this fraction of the window centre's distance from there
SHIFT_GAIN = 0.05


@lru_cache(maxsize=None)
def bundled_infos() -> tuple:
    """The data infos of the bundled records."""
    dataset = FineRS4kDataset(ann_file=BUNDLED_ANN, data_prefix=dict(img=BUNDLED_IMAGES),
                              test_mode=True, pipeline=[])
    return tuple(dataset.get_data_info(i) for i in range(len(dataset)))


def oracle_box(gt_bbox, window) -> np.ndarray:
    """The oracle's answer in ORIGINAL pixels for a window."""
    gt, window = np.asarray(gt_bbox, np.float64), np.asarray(window, np.float64)
    sweet = (gt[:2] + gt[2:]) / 2 + SWEET_SPOT
    shift = ((window[:2] + window[2:]) / 2 - sweet) * SHIFT_GAIN
    return gt + np.tile(shift, 2)


@MODELS.register_module(force=True)
class WindowScriptedAdapter(Qwen25VLAdapter):
    """The Qwen2.5-VL adapter, ``generate`` scripted: ``script(view, prompt, window)``.

    ``calls`` records the number of views of every call; ``windows`` is set by
    :class:`WindowAwareRefiner` before each call.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.windows = None
        self.calls = []
        self.script = self.oracle

    def generate(self, images, prompts, **overrides):
        self.calls.append(len(images))
        return _generation([self.script(view, prompt, window)
                            for view, prompt, window in zip(images, prompts, self.windows)])

    def answer(self, box, view, window) -> str:
        """A valid refiner completion naming ``box`` (ORIGINAL pixels) in model coordinates."""
        frame = (view.shape[1], view.shape[0])
        model_box = self.frame_to_model(window_to_frame(box, window, frame), frame)
        centre = [float(model_box[0] + model_box[2]) / 2, float(model_box[1] + model_box[3]) / 2]
        data = dict(bbox=model_box.tolist(), points_1=centre, points_2=centre,
                    response=FOUND_RESPONSE)
        return THINK + '<answer>' + json.dumps(data) + '</answer>'

    def oracle(self, view, prompt, window) -> str:
        """The default script: :func:`oracle_box` of the record the prompt asks about."""
        info = record_for(bundled_infos(), prompt)
        return self.answer(oracle_box(info['gt_bbox'], window), view, window)


@MODELS.register_module(force=True)
class WindowAwareRefiner(LocalRefiner):
    """LocalRefiner that tells its scripted adapter which window each view shows."""

    def refine(self, images, windows, queries):
        self.vlm.windows = [np.asarray(w) for w in windows]
        return super().refine(images, windows, queries)
