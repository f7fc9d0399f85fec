# Copyright (c) finers_mm contributors. All rights reserved.
"""GT points of the refiner (finers_mm.structures.points)."""
import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finers_mm.structures import (box_center_jitter_points, inscribed_circle_points,
                                  rasterize_polygon)
from finers_mm.structures.points import authors_jitter_points


def _disk(mask, centre, radius):
    rows, cols = np.ogrid[:mask.shape[0], :mask.shape[1]]
    mask[(cols - centre[0]) ** 2 + (rows - centre[1]) ** 2 <= radius ** 2] = True


def _inside(mask, points):
    return all(mask[int(np.floor(y)), int(np.floor(x))] for x, y in points)


def test_two_disjoint_disks_give_their_centres():
    mask = np.zeros((200, 300), dtype=bool)
    _disk(mask, (60, 80), 30)
    _disk(mask, (220, 120), 20)
    points = inscribed_circle_points(mask)
    assert points.shape == (2, 2) and points.dtype == np.float32
    # pixel (i, j)'s centre is (i + 0.5, j + 0.5); larger disk first
    np.testing.assert_allclose(points, [[60.5, 80.5], [220.5, 120.5]])


def test_second_circle_of_one_elongated_object():
    mask = np.zeros((100, 200), dtype=bool)
    mask[40:60, 20:180] = True  # a 160x20 bar: two circles side by side
    first, second = inscribed_circle_points(mask)
    assert _inside(mask, [first, second])
    assert np.hypot(*(first - second)) >= 10  # the second centre lies outside the first disk


@pytest.mark.parametrize('pixels', [[(5, 7)], [(5, 7), (6, 7)], [(0, 0)], [(9, 9), (8, 9)]])
def test_tiny_masks_still_give_two_points_inside(pixels):
    mask = np.zeros((10, 10), dtype=bool)
    for x, y in pixels:
        mask[y, x] = True
    points = inscribed_circle_points(mask)
    assert points.shape == (2, 2)
    assert _inside(mask, points)


def test_mask_touching_the_image_border():
    mask = np.zeros((50, 50), dtype=bool)
    mask[:, :10] = True  # a strip along the left edge: the edge counts as background
    points = inscribed_circle_points(mask)
    assert _inside(mask, points)
    assert 4 <= points[0, 0] <= 6


def test_empty_mask_is_an_error():
    with pytest.raises(ValueError, match='non-empty'):
        inscribed_circle_points(np.zeros((5, 5), dtype=bool))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 63), st.floats(0, 47)), min_size=3, max_size=8))
def test_points_inside_random_polygon_masks(vertices):
    mask = rasterize_polygon(vertices, 48, 64)
    points = inscribed_circle_points(mask)
    assert _inside(mask, points)


def test_inscribed_circles_on_a_large_mask_is_fast_and_local():
    mask = np.zeros((2160, 3840), dtype=bool)
    cv2.circle(mask.view(np.uint8), (3000, 1500), 6, 1, -1)
    points = inscribed_circle_points(mask)
    np.testing.assert_allclose(points[0], [3000.5, 1500.5])
    assert _inside(mask, points)


@given(st.floats(0, 1), st.integers(0, 2**32 - 1))
def test_box_center_jitter_stays_in_box(jitter, seed):
    box = np.array([100.0, 200.0, 110.0, 204.0])
    points = box_center_jitter_points(box, jitter, np.random.default_rng(seed))
    assert points.shape == (2, 2) and points.dtype == np.float32
    centre = np.array([105.0, 202.0])
    assert np.all(np.abs(points - centre) <= jitter * np.array([5.0, 2.0]) + 1e-4)


def test_box_center_jitter_seeded():
    box = [10, 10, 50, 30]
    a = box_center_jitter_points(box, 0.5, np.random.default_rng((0, 7)))
    b = box_center_jitter_points(box, 0.5, np.random.default_rng((0, 7)))
    c = box_center_jitter_points(box, 0.5, np.random.default_rng((1, 7)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_allclose(box_center_jitter_points(box, 0.0, np.random.default_rng(0)),
                               [[30, 20], [30, 20]])
    with pytest.raises(ValueError):
        box_center_jitter_points(box, -1.0, np.random.default_rng(0))


def _their_points(box, randint):
    """The authors' ``get_solution_from_box_ref_seg`` (data_process/data_converter_fixed_512_gt_
    crop_random_region.py), its arithmetic written out: ``box`` is their inclusive integer box,
    ``randint(a, b)`` their ``random.randint`` (both ends included)."""
    x_min, y_min, x_max, y_max = map(int, box)
    cx = (x_min + x_max) // 2
    cy = (y_min + y_max) // 2
    dx = (x_max - x_min) // 10
    dy = (y_max - y_min) // 10
    px = min(max(cx + randint(-dx, dx), x_min), x_max)
    py = min(max(cy + randint(-dy, dy), y_min), y_max)
    return [[cx, cy], [px, py]]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 3800), st.integers(0, 2100), st.integers(0, 300), st.integers(0, 300),
       st.integers(0, 2**32 - 1))
def test_authors_jitter_is_their_converter(x_min, y_min, width, height, seed):
    """Their points from the same draws, as pixel centres of our continuous boxes."""
    inclusive = [x_min, y_min, x_min + width, y_min + height]
    continuous = np.array(inclusive, dtype=np.float32) + [0, 0, 1, 1]
    ours = authors_jitter_points(continuous, np.random.default_rng(seed))
    draws = np.random.default_rng(seed)
    theirs = _their_points(inclusive, lambda low, high: int(draws.integers(low, high + 1)))
    assert ours.shape == (2, 2) and ours.dtype == np.float32
    np.testing.assert_array_equal(ours, np.array(theirs, dtype=np.float32) + 0.5)


def test_authors_jitter_values_by_hand():
    # inclusive [10, 20, 33, 29]: centre (43 // 2, 49 // 2) = (21, 24); dx = 23 // 10 = 2,
    # dy = 9 // 10 = 0
    box = [10, 20, 34, 30]
    seen = set()
    for seed in range(200):
        first, second = authors_jitter_points(box, np.random.default_rng(seed))
        np.testing.assert_array_equal(first, [21.5, 24.5])  # the centre, rounded down
        assert second[1] == 24.5
        seen.add(float(second[0]))
    assert seen == {19.5, 20.5, 21.5, 22.5, 23.5}  # every offset in [-2, 2], nothing else
    # a box narrower than 10 pixels: no jitter; a one-pixel box: both points on its pixel
    np.testing.assert_array_equal(authors_jitter_points([5, 7, 14, 8], np.random.default_rng(0)),
                                  [[9.5, 7.5], [9.5, 7.5]])
    # the pixel extent of a non-integer box
    np.testing.assert_array_equal(
        authors_jitter_points([4.2, 6.7, 5.0, 7.1], np.random.default_rng(0)),
        [[4.5, 6.5], [4.5, 6.5]])


def test_authors_jitter_in_the_crop_is_the_original_shifted():
    """They compute the LPR's points in the 512 crop cut at original scale: an integer shift of
    the box shifts the points by as much (floor division commutes with it)."""
    box = np.array([1501.0, 303.0, 1571.0, 353.0])
    for corner in ([1187, 0], [1290, 97], [1501, 303]):
        shift = np.array(corner * 2, dtype=np.float64)
        for seed in range(20):
            in_original = authors_jitter_points(box, np.random.default_rng(seed))
            in_crop = authors_jitter_points(box - shift, np.random.default_rng(seed))
            np.testing.assert_array_equal(in_crop, in_original - np.array(corner, np.float32))


def test_authors_jitter_seeded_and_errors():
    box = [100, 100, 200, 160]
    draw = [authors_jitter_points(box, np.random.default_rng((0, i))) for i in range(20)]
    np.testing.assert_array_equal(draw[3], authors_jitter_points(box, np.random.default_rng((0, 3))))
    assert len({tuple(points[1]) for points in draw}) > 5
    for bad in ([0, 0, 0, 0], [5, 5, 5, 9], [0, 0, np.nan, 3], [1, 2, 3]):
        with pytest.raises(ValueError, match='authors_jitter_points'):
            authors_jitter_points(bad, np.random.default_rng(0))


def _brute_force_maximum(mask: np.ndarray):
    """Row-major first pixel of largest squared distance to the background (outside the array is
    background), with integer squared distances: the rule written out, no float ties."""
    height, width = mask.shape
    padded = np.pad(mask, 1)
    background = np.argwhere(~padded) - 1  # (row, col) of every background pixel, border included
    best = (-1, 0, 0)
    for row in range(height):
        for col in range(width):
            if mask[row, col]:
                squared = int(((background - (row, col))**2).sum(axis=1).min())
                if squared > best[0]:
                    best = (squared, row, col)
    return best


def _brute_force_points(mask: np.ndarray) -> np.ndarray:
    squared, row, col = _brute_force_maximum(mask)
    centres = [(col, row)]
    rest = mask.copy()
    rows, cols = np.ogrid[:mask.shape[0], :mask.shape[1]]
    rest[(rows - row)**2 + (cols - col)**2 < squared] = False
    if rest.any():
        _, row, col = _brute_force_maximum(rest)
    centres.append((col, row))
    return np.array(centres, dtype=np.float32) + 0.5


@pytest.mark.parametrize('seed', range(40))
def test_ties_break_row_major_exactly_and_every_call_agrees(seed):
    """Random blocky masks (many exactly tied distances): the points are the brute-force rule's,
    on every call. cv2's float32 distances differ in their last bits between runs, which swapped
    tied maxima from one run to the next before the squared distances were compared as integers."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((int(rng.integers(6, 20)), int(rng.integers(6, 20))), dtype=bool)
    for _ in range(int(rng.integers(1, 4))):
        y, x = rng.integers(0, mask.shape[0]), rng.integers(0, mask.shape[1])
        mask[y:y + rng.integers(2, 9), x:x + rng.integers(2, 9)] = True
    expected = _brute_force_points(mask)
    for _ in range(5):
        np.testing.assert_array_equal(inscribed_circle_points(mask), expected)


@pytest.mark.parametrize('seed', range(10))
def test_distances_off_in_their_last_bits_give_the_same_points(seed, monkeypatch):
    """cv2.distanceTransform's float32 results differ in their last bits between runs; a
    perturbation of one ulp on random pixels must not change the points (they stay the exact
    rule's)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((24, 30), dtype=bool)
    mask[3:15, 4:24] = True  # a rectangle: long rows of tied maxima
    mask[12:20, 10:18] = True
    expected = _brute_force_points(mask)
    exact = cv2.distanceTransform

    def off_by_an_ulp(*args, **kwargs):
        distance = exact(*args, **kwargs)
        nudged = rng.random(distance.shape) < 0.5
        distance[nudged] = np.nextafter(distance[nudged], np.float32(np.inf))
        return distance

    monkeypatch.setattr(cv2, 'distanceTransform', off_by_an_ulp)
    np.testing.assert_array_equal(inscribed_circle_points(mask), expected)
