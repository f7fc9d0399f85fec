# Copyright (c) finers_mm contributors. All rights reserved.
"""Property tests of the coordinate frames (finers_mm.structures.frames)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finers_mm.structures import (box_contains, clip_boxes, crop_window_from_region,
                                  explorer_to_original, frame_to_window, full_window,
                                  original_to_explorer, random_window_containing,
                                  region_around_box, window_to_frame)

sizes = st.tuples(st.integers(16, 4096), st.integers(16, 4096))
frame_sizes = st.tuples(st.integers(16, 2048), st.integers(16, 2048))
sides = st.integers(1, 1024)


@st.composite
def box_in(draw, size, max_side=None):
    """A continuous box inside ``[0, W] x [0, H]``, each side at most ``max_side``."""
    corners = []
    for extent in size:
        longest = extent if max_side is None else min(extent, max_side)
        length = draw(st.floats(0, longest))
        start = draw(st.floats(0, extent - length))
        corners.append((start, min(start + length, extent)))
    (x1, x2), (y1, y2) = corners
    return np.array([x1, y1, x2, y2])


@st.composite
def image_and_box(draw, max_side=None):
    size = draw(sizes)
    return size, draw(box_in(size, max_side))


@st.composite
def window_in_image(draw):
    size = draw(sizes)
    box = draw(box_in(size))
    x1, y1 = min(int(box[0]), size[0] - 1), min(int(box[1]), size[1] - 1)
    x2, y2 = max(int(np.ceil(box[2])), x1 + 1), max(int(np.ceil(box[3])), y1 + 1)
    return size, np.array([x1, y1, min(x2, size[0]), min(y2, size[1])])


def expected_side(box, min_side):
    """Side of a window around ``box``: ``max(min_side, integer extent of its longer side)``."""
    extent = max(np.ceil(box[2]) - np.floor(box[0]), np.ceil(box[3]) - np.floor(box[1]))
    return max(min_side, int(extent))


@given(image_and_box(), frame_sizes)
def test_explorer_round_trip(image_box, frame_size):
    size, box = image_box
    back = explorer_to_original(original_to_explorer(box, size, frame_size), size, frame_size)
    np.testing.assert_allclose(back, box, atol=1e-2)


@given(image_and_box(), frame_sizes)
def test_explorer_scale_is_per_axis(image_box, frame_size):
    size, box = image_box
    mapped = original_to_explorer(box, size, frame_size)
    expected = box * np.array([frame_size[0] / size[0], frame_size[1] / size[1]] * 2)
    np.testing.assert_allclose(mapped, expected, rtol=1e-5, atol=1e-3)


@given(window_in_image(), frame_sizes, st.data())
def test_window_round_trip_boxes_and_points(size_window, frame_size, data):
    size, window = size_window
    box = data.draw(box_in(size))
    points = box.reshape(2, 2)
    for coords in (box, points, box[None]):
        mapped = window_to_frame(coords, window, frame_size)
        assert mapped.shape == coords.shape
        np.testing.assert_allclose(frame_to_window(mapped, window, frame_size), coords, atol=1e-2)


@given(window_in_image(), frame_sizes)
def test_window_maps_onto_the_frame(size_window, frame_size):
    _, window = size_window
    np.testing.assert_allclose(window_to_frame(window, window, frame_size),
                               [0, 0, frame_size[0], frame_size[1]], atol=1e-3)


def test_points_and_boxes_share_the_map():
    window, frame = np.array([100, 200, 612, 712]), (256, 128)
    box = np.array([110.0, 210.0, 130.0, 250.0])
    np.testing.assert_allclose(window_to_frame(box, window, frame).reshape(2, 2),
                               window_to_frame(box.reshape(2, 2), window, frame))
    np.testing.assert_allclose(window_to_frame(box, window, frame), [5, 2.5, 15, 12.5])


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError):
        window_to_frame(np.zeros(3), [0, 0, 10, 10], (5, 5))
    with pytest.raises(ValueError):
        window_to_frame(np.zeros(4), [5, 0, 5, 10], (5, 5))


@given(image_and_box(), sides)
def test_crop_window_inside_image_with_right_sides(image_box, min_side):
    size, region = image_box
    window = crop_window_from_region(region, size, min_side)
    assert window.dtype == np.int64
    assert box_contains(full_window(size), window)
    side = expected_side(region, min_side)
    assert window[2] - window[0] == min(side, size[0])
    assert window[3] - window[1] == min(side, size[1])
    assert box_contains(window, region)


@given(image_and_box(), sides)
def test_crop_window_is_centred_when_room(image_box, min_side):
    size, region = image_box
    window = crop_window_from_region(region, size, min_side)
    side_x, side_y = window[2] - window[0], window[3] - window[1]
    for axis, side in ((0, side_x), (1, side_y)):
        centre = (np.floor(region[axis]) + np.ceil(region[axis + 2])) / 2
        if side / 2 + 1 <= centre <= size[axis] - side / 2 - 1:
            assert abs((window[axis] + window[axis + 2]) / 2 - centre) <= 0.5


@given(sizes, sides, st.floats(-100, 100), st.floats(-100, 100))
def test_crop_window_shifts_not_clamps(size, min_side, dx, dy):
    """A region at (or beyond) a corner keeps its full window, shifted into the image."""
    for corner_x in (0, size[0]):
        for corner_y in (0, size[1]):
            region = np.array([corner_x + dx - 5, corner_y + dy - 5, corner_x + dx + 5,
                               corner_y + dy + 5])
            window = crop_window_from_region(region, size, min_side)
            side = expected_side(region, min_side)
            assert window[2] - window[0] == min(side, size[0])
            assert window[3] - window[1] == min(side, size[1])
            assert box_contains(full_window(size), window)


def test_crop_window_examples():
    # the paper's numbers: a 256 region of a 1920x1080 frame = 512 original pixels of a 4K image
    size, frame = (3840, 2160), (1920, 1080)
    region = explorer_to_original(np.array([100, 50, 356, 306]), size, frame)
    np.testing.assert_allclose(region, [200, 100, 712, 612])
    np.testing.assert_array_equal(crop_window_from_region(region, size, 512), [200, 100, 712, 612])
    # near the top-left corner: shifted to (0, 0), side kept
    np.testing.assert_array_equal(crop_window_from_region([-20, 5, 10, 30], size, 512),
                                  [0, 0, 512, 512])
    # near the bottom-right corner
    np.testing.assert_array_equal(crop_window_from_region([3830, 2150, 3840, 2160], size, 512),
                                  [3328, 1648, 3840, 2160])
    # a region larger than min_side: the window grows to the region's longer side, square
    np.testing.assert_array_equal(crop_window_from_region([1000, 1000, 1700, 1100], size, 512),
                                  [1000, 700, 1700, 1400])
    # an image smaller than the side along y: the window spans the whole height
    np.testing.assert_array_equal(crop_window_from_region([100, 10, 110, 20], (1000, 300), 512),
                                  [0, 0, 512, 300])


@pytest.mark.parametrize('box', [[0, 0, np.inf, np.inf], [np.nan, 0, 10, 10]])
def test_window_around_a_non_finite_box_is_a_clear_error(box):
    """Not OverflowError from math.floor (issue 12): the message names the box and the check."""
    with pytest.raises(ValueError, match=r'finite numbers .*finers_mm\.structures\.parsing'):
        crop_window_from_region(box, (1920, 1080), 512)
    with pytest.raises(ValueError, match='must be 4 finite numbers'):
        random_window_containing(box, (1920, 1080), 512, np.random.default_rng(0))


@given(image_and_box(), sides, st.integers(0, 2**32 - 1))
def test_random_window_contains_box(image_box, min_side, seed):
    size, box = image_box
    window = random_window_containing(box, size, min_side, np.random.default_rng(seed))
    assert window.dtype == np.int64
    assert box_contains(full_window(size), window)
    assert box_contains(window, box)
    side = expected_side(box, min_side)
    assert (window[2] - window[0], window[3] - window[1]) == (min(side, size[0]),
                                                             min(side, size[1]))


def test_random_window_is_seeded_and_varies():
    size, box = (3840, 2160), np.array([1000.0, 900.0, 1010.0, 912.0])

    def draw(seed):
        return random_window_containing(box, size, 512, np.random.default_rng(seed))

    np.testing.assert_array_equal(draw(3), draw(3))
    windows = {tuple(draw(seed)) for seed in range(20)}
    assert len(windows) > 10


@given(st.data(), frame_sizes, sides)
def test_region_around_box(data, frame_size, region_size):
    box = data.draw(box_in(frame_size, max_side=region_size))
    region = region_around_box(box, frame_size, region_size)
    assert box_contains([0, 0, *frame_size], region, tol=1e-3)
    np.testing.assert_allclose(region[2:] - region[:2],
                               [min(region_size, frame_size[0]), min(region_size, frame_size[1])],
                               atol=1e-3)
    assert box_contains(region, box, tol=1e-3)


def test_region_around_box_example():
    # centred at (105, 110) would start at (-23, -18): shifted to the corner, side kept
    np.testing.assert_allclose(region_around_box([100, 100, 110, 120], (1920, 1080), 256),
                               [0, 0, 256, 256])
    np.testing.assert_allclose(region_around_box([900, 500, 910, 520], (1920, 1080), 256),
                               [777, 382, 1033, 638])


@settings(max_examples=50)
@given(st.lists(st.floats(-50, 150, width=32), min_size=4, max_size=4), frame_sizes)
def test_clip_boxes(box, frame_size):
    clipped = clip_boxes(np.array(box), frame_size)
    if clipped.any():
        assert box_contains([0, 0, *frame_size], clipped)
        assert clipped[2] > clipped[0] and clipped[3] > clipped[1]
    else:
        x1, y1, x2, y2 = box
        assert (min(x2, frame_size[0]) <= max(x1, 0)) or (min(y2, frame_size[1]) <= max(y1, 0))
