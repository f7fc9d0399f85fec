# Copyright (c) finers_mm contributors. All rights reserved.
"""The resizes of the frames (finers_mm.structures.images): cv2 linear (finers_mm) against Pillow's
antialiased filters (the authors' evaluation and training converters)."""
import mmcv
import numpy as np
import pytest
from PIL import Image

from finers_mm.structures import crop_to_frame, resize_to_frame
from finers_mm.structures.images import RESIZE_METHODS, check_resize


def _noise(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_cv2_linear_is_the_default_and_unchanged():
    img = _noise(90, 160)
    expected = mmcv.imresize(img, (64, 36), interpolation='bilinear', backend='cv2')
    np.testing.assert_array_equal(resize_to_frame(img, (64, 36)), expected)
    np.testing.assert_array_equal(resize_to_frame(img, (64, 36), resize='cv2_linear'), expected)
    # masks keep their cv2 nearest resize
    mask = (img[..., 0] > 128).astype(np.uint8)
    np.testing.assert_array_equal(
        crop_to_frame(mask, [10, 5, 90, 85], (40, 40), interpolation='nearest'),
        mmcv.imresize(mask[5:85, 10:90], (40, 40), interpolation='nearest', backend='cv2'))


@pytest.mark.parametrize('resize,pil_filter', [('pil_bilinear', Image.BILINEAR),
                                               ('pil_bicubic', Image.BICUBIC)])
def test_pil_methods_are_pillow_resizes_of_the_rgb_array(resize, pil_filter):
    """The authors' ``Image.fromarray(rgb).resize((w, h), Image.BILINEAR)``, pixel for pixel."""
    img = _noise(90, 160, seed=1)
    out = resize_to_frame(img, (64, 36), resize=resize)
    assert out.shape == (36, 64, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.asarray(Image.fromarray(img).resize((64, 36),
                                                                              pil_filter)))
    assert not np.array_equal(out, resize_to_frame(img, (64, 36)))
    # a crop (a strided view) is resized as its own copy would be
    window = [7, 3, 107, 83]
    np.testing.assert_array_equal(
        crop_to_frame(img, window, (50, 40), resize=resize),
        np.asarray(Image.fromarray(img[3:83, 7:107].copy()).resize((50, 40), pil_filter)))


@pytest.mark.parametrize('resize', RESIZE_METHODS)
def test_a_window_of_the_frame_size_is_copied_unchanged(resize):
    """The authors' LPR training crops: 512 x 512 original pixels, never resized."""
    img = _noise(100, 120, seed=2)
    np.testing.assert_array_equal(crop_to_frame(img, [10, 20, 74, 84], (64, 64), resize=resize),
                                  img[20:84, 10:74])


def test_pillow_antialiases_where_cv2_skips_pixels():
    """Shrinking 4x, cv2's bilinear reads 2 of every 4 source columns: a 1-px dot on a skipped
    pixel vanishes. Pillow's stretched triangle filter weighs every source pixel."""
    img = np.zeros((64, 64, 3), dtype=np.uint8)
    img[8, 8] = 255  # cv2 samples source 4 * i + 1.5: pixels 4i + 1 and 4i + 2 only
    assert resize_to_frame(img, (16, 16)).max() == 0
    pil = resize_to_frame(img, (16, 16), resize='pil_bilinear')
    assert 0 < pil.max() < 255 and pil[2, 2].max() == pil.max()  # dimmed, at the right place
    # period-2 stripes shrunk 3x: cv2 reads single columns (full-contrast aliasing), Pillow
    # averages them to an even grey
    stripes = np.zeros((30, 60, 3), dtype=np.uint8)
    stripes[:, ::2] = 255
    cv2_out = resize_to_frame(stripes, (20, 10))[..., 0].astype(int)
    pil_out = resize_to_frame(stripes, (20, 10), resize='pil_bilinear')[..., 0].astype(int)
    assert cv2_out.max() - cv2_out.min() == 255
    assert pil_out.max() - pil_out.min() < 40 and abs(pil_out.mean() - 127.5) < 10


def test_resize_errors():
    img = _noise(20, 20)
    with pytest.raises(ValueError, match='unknown resize'):
        resize_to_frame(img, (10, 10), resize='pil')
    with pytest.raises(ValueError, match='unknown resize'):
        check_resize('lanczos')
    assert check_resize('pil_bilinear') == 'pil_bilinear'
    with pytest.raises(ValueError, match="applies to resize='cv2_linear' only"):
        resize_to_frame(img, (10, 10), interpolation='area', resize='pil_bilinear')
    with pytest.raises(ValueError, match='uint8'):
        resize_to_frame(img.astype(bool), (10, 10), resize='pil_bicubic')
