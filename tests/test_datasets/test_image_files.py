# Copyright (c) finers_mm contributors. All rights reserved.
"""The one image reader: displayed frame (EXIF), 8-bit RGB, completeness, named errors (CPU)."""
import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from finers_mm.datasets import image_files
from finers_mm.datasets.image_files import (ImageFileError, decode_image, orient,
                                            read_image_header)

H, W = 24, 40  # stored size: not square, so a swapped side shows


def stored_pixels() -> np.ndarray:
    """(H, W, 3) uint8 where every pixel differs: any flip or transpose changes the array."""
    index = np.arange(H * W * 3, dtype=np.int64).reshape(H, W, 3)
    return ((index * 7) % 251).astype(np.uint8)


def png_bytes(rgb: np.ndarray, orientation: int = 1) -> bytes:
    """A lossless PNG of ``rgb`` (as stored) with an EXIF orientation (eXIf before IDAT)."""
    exif = Image.Exif()
    if orientation != 1:
        exif[image_files.ORIENTATION_TAG] = orientation
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, 'PNG', exif=exif)
    return buffer.getvalue()


def jpeg_bytes(rgb: np.ndarray, orientation: int = 1, quality: int = 95) -> bytes:
    exif = Image.Exif()
    if orientation != 1:
        exif[image_files.ORIENTATION_TAG] = orientation
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, 'JPEG', exif=exif, quality=quality)
    return buffer.getvalue()


@pytest.mark.parametrize('orientation', range(1, 9))
def test_displayed_pixels_and_size_match_pil_exif_transpose(tmp_path, orientation):
    content = png_bytes(stored_pixels(), orientation)
    path = tmp_path / f'o{orientation}.png'
    path.write_bytes(content)
    displayed = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(content))))

    img = decode_image(content, str(path))
    header = read_image_header(str(path))

    np.testing.assert_array_equal(img, displayed)
    assert img.flags['C_CONTIGUOUS'] and img.dtype == np.uint8
    assert (header.height, header.width) == img.shape[:2]
    assert header.orientation == orientation and header.format == 'PNG'
    assert img.shape[:2] == ((W, H) if orientation in (5, 6, 7, 8) else (H, W))


@pytest.mark.parametrize('orientation', [1, 3, 6, 8])
def test_orient_of_any_channel_layout(orientation):
    """orient works on (H, W) masks as on (H, W, 3) images: one transform for both."""
    rgb = stored_pixels()
    np.testing.assert_array_equal(
        orient(rgb[..., 0], orientation), orient(rgb, orientation)[..., 0])


def test_jpeg_exif_orientation_applied_once(tmp_path):
    """OpenCV would apply a JPEG's orientation by itself; decode_image must not apply it twice."""
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:4, :8] = 255  # a white block in the stored top-left corner
    content = jpeg_bytes(rgb, orientation=6)  # displayed: rotated 90 degrees clockwise
    img = decode_image(content, 'rotated.jpg')
    assert img.shape == (W, H, 3)
    assert img[:8, -4:].mean() > 200 and img[-8:, :4].mean() < 50  # now in the top-right corner


def test_16_bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    gray16 = np.tile(np.linspace(0, 65535, W).astype(np.uint16), (H, 1))
    ok, encoded = cv2.imencode('.png', gray16)
    assert ok and Image.open(io.BytesIO(encoded.tobytes())).mode == 'I;16'
    img = decode_image(encoded.tobytes(), 'depth.png')
    assert img.shape == (H, W, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[..., 0], (gray16 >> 8).astype(np.uint8))
    np.testing.assert_array_equal(img[..., 0], img[..., 2])
    assert img.min() == 0 and img.max() == 255 and 100 < img.mean() < 155


@pytest.mark.parametrize('fmt', ['jpeg', 'png'])
def test_truncated_file_refused_by_header_and_decode(tmp_path, fmt):
    content = (jpeg_bytes if fmt == 'jpeg' else png_bytes)(stored_pixels())
    path = tmp_path / f'cut.{fmt}'
    path.write_bytes(content[:len(content) * 2 // 3])
    assert Image.open(path).size == (W, H)  # the header alone looks fine

    with pytest.raises(ImageFileError) as info:
        read_image_header(str(path))
    assert info.value.reason == 'truncated image' and str(path) in str(info.value)
    assert 'Fix: copy the image again' in str(info.value)
    with pytest.raises(ImageFileError, match='truncated image') as info:
        decode_image(path.read_bytes(), str(path))
    assert str(path) in str(info.value) and 'Fix: ' in str(info.value)


def test_corrupt_png_named_when_decoded(tmp_path):
    """The documented limit: a flipped byte inside a complete PNG passes the header check (no
    decode at load time) and the decoder names the file and the fix when the pipeline reaches it."""
    content = bytearray(png_bytes(stored_pixels()))
    content[len(content) // 2] ^= 0xFF  # inside IDAT: its CRC no longer matches
    path = tmp_path / 'flipped.png'
    path.write_bytes(bytes(content))
    assert read_image_header(str(path))[:2] == (W, H)
    with pytest.raises(ImageFileError, match='unreadable image') as info:
        decode_image(bytes(content), str(path))
    assert str(path) in str(info.value) and 'cannot decode' in str(info.value)
    assert 'Fix: copy the image again' in str(info.value)


def test_complete_file_with_trailing_bytes_is_accepted(tmp_path):
    """A complete JPEG followed by other data (e.g. a motion photo's video) still decodes."""
    path = tmp_path / 'motion.jpg'
    path.write_bytes(jpeg_bytes(stored_pixels()) + b'\x00ftypmp42' + bytes(500))
    assert read_image_header(str(path))[:2] == (W, H)
    assert decode_image(path.read_bytes()).shape == (H, W, 3)


def test_header_read_decodes_nothing(tmp_path, monkeypatch):
    paths = []
    for i, content in enumerate([jpeg_bytes(stored_pixels(), 6), png_bytes(stored_pixels(), 3)]):
        paths.append(tmp_path / f'{i}.img')
        paths[-1].write_bytes(content)
    decodes = []
    monkeypatch.setattr(image_files.cv2, 'imdecode', lambda *a: decodes.append(a))
    monkeypatch.setattr(Image.Image, 'load', lambda *a: decodes.append(a))
    assert [read_image_header(str(p))[:2] for p in paths] == [(H, W), (W, H)]
    assert decodes == []


@pytest.mark.parametrize('content', [b'', b'not an image at all', b'\x89PNG\r\n\x1a\n broken'])
def test_not_an_image(tmp_path, content):
    path = tmp_path / 'x.png'
    path.write_bytes(content)
    for read in (lambda: read_image_header(str(path)), lambda: decode_image(content, str(path))):
        with pytest.raises(ImageFileError, match='unreadable image') as info:
            read()
        assert str(path) in str(info.value) and 'Fix: re-export the image' in str(info.value)
        assert isinstance(info.value, ValueError)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_image_header(str(tmp_path / 'none.jpg'))


MALFORMED_EXIF = {
    'offset past the end': b'Exif\x00\x00MM\x00*\xff\xff\xff\xff',
    'orientation as text': (b'Exif\x00\x00II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x02\x00\x04'
                            b'\x00\x00\x00abc\x00\x00\x00\x00\x00'),
}


@pytest.mark.filterwarnings('ignore:Corrupt EXIF data')
@pytest.mark.parametrize('case', [*MALFORMED_EXIF, 'orientation 9', 'PIL raises'])
def test_malformed_exif_reads_as_stored(tmp_path, monkeypatch, case):
    """A broken EXIF block neither refuses the image nor lets the size and pixels disagree."""
    content = jpeg_bytes(stored_pixels(), orientation=9 if case == 'orientation 9' else 1)
    if case == 'PIL raises':  # what an older or newer Pillow may do on such a block
        def getexif(image):
            raise SyntaxError('not a TIFF file')
        monkeypatch.setattr(Image.Image, 'getexif', getexif)
    elif case in MALFORMED_EXIF:
        block = MALFORMED_EXIF[case]
        content = content[:2] + b'\xff\xe1' + (len(block) + 2).to_bytes(2, 'big') + block + \
            content[2:]
    path = tmp_path / 'odd_exif.jpg'
    path.write_bytes(content)
    header = read_image_header(str(path))
    assert (header.height, header.width, header.orientation) == (H, W, 1)
    assert decode_image(content).shape == (H, W, 3)
