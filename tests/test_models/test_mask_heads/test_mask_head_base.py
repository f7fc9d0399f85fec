# Copyright (c) finers_mm contributors. All rights reserved.
"""The mask-head contract shared by every head (BaseMaskHead): checks, empty answers, frozen."""
import numpy as np
import pytest

from finers_mm.models.mask_heads import BaseMaskHead, MaskPrediction


class BoxFillHead(BaseMaskHead):
    """Fills the (clipped) box; records which crops reached ``segment``."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def segment(self, crops, boxes, points, point_labels, indices):
        for i in indices:
            self.seen.append(i)
            mask = np.zeros(crops[i].shape[:2], bool)
            x1, y1, x2, y2 = (int(v) for v in boxes[i])
            mask[y1:y2, x1:x2] = True
            yield i, mask, 0.5 + i


def test_unusable_prompts_get_empty_masks_without_reaching_the_model():
    head = BoxFillHead()
    crops = [np.zeros((20, 30, 3), np.uint8) for _ in range(5)]
    boxes = np.array([[2, 3, 10, 12],         # usable
                      [0, 0, 0, 0],           # the refiner's "No object found"
                      [40, 40, 50, 50],       # no area inside the 30x20 crop
                      [-5, -5, 40, 5],        # clipped to the crop
                      [1, 1, 5, 5]], np.float32)
    points = np.full((5, 2, 2), 4.5)
    points[4, 0, 0] = np.nan                  # a non-finite point: unusable too
    prediction = head.predict(crops, boxes, points)

    assert isinstance(prediction, MaskPrediction)
    assert head.seen == [0, 3]
    assert [m.shape for m in prediction.masks] == [(20, 30)] * 5
    assert prediction.masks[0].sum() == 8 * 9 and prediction.masks[3].sum() == 30 * 5
    assert not any(prediction.masks[i].any() for i in (1, 2, 4))
    np.testing.assert_allclose(prediction.scores, [0.5, 0.0, 0.0, 3.5, 0.0])


def test_prompts_beyond_float32_are_unusable():
    """1e39 is finite in float64 and inf in float32, where the heads run (SAM's prompt encoder
    turned it into a NaN score)."""
    head = BoxFillHead()
    crops = [np.zeros((20, 30, 3), np.uint8) for _ in range(3)]
    boxes = np.array([[2, 3, 10, 12], [2, 3, 10, 12], [2, 3, 1e39, 12]])
    points = np.full((3, 2, 2), 4.5)
    points[1, 1, 1] = -1e39
    prediction = head.predict(crops, boxes, points)
    assert head.seen == [0]
    assert not prediction.masks[1].any() and not prediction.masks[2].any()
    np.testing.assert_array_equal(prediction.scores, [0.5, 0.0, 0.0])


def test_prompt_shapes_are_checked_and_the_head_stays_frozen():
    head = BoxFillHead()
    crops = [np.zeros((8, 8, 3), np.uint8)]
    with pytest.raises(ValueError, match='BoxFillHead.predict: boxes must be'):
        head.predict(crops, np.zeros((2, 4)))
    with pytest.raises(ValueError, match='BoxFillHead.predict: crop 0'):
        head.predict([np.zeros((8, 8), np.uint8)], np.zeros((1, 4)))
    head.train()
    assert not head.training


def test_a_head_without_segment_cannot_be_built():
    with pytest.raises(TypeError, match='segment'):
        BaseMaskHead()
