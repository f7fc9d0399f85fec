# Copyright (c) finers_mm contributors. All rights reserved.
"""Image files, read one way by every part of finers_mm: as displayed, RGB, 8 bits.

**Frame.** An image is used *as displayed*: its EXIF orientation tag (or the XMP
``tiff:Orientation`` a photo editor writes instead) is applied, the way a photo viewer, PIL's
``ImageOps.exif_transpose`` and the authors' ``cv2.imread`` show it. Every size, polygon, box and
prediction in finers_mm is in that frame: a camera JPEG of 4000x3000 stored pixels with orientation
6 ("rotate 90 degrees clockwise to display") is a 3000x4000 image to the dataset's size check, the
pipeline, the metrics and the visualiser, and the annotation's ``points`` are read in the
3000x4000 frame. The header size (:func:`read_image_header`) and the decoded pixels
(:func:`decode_image`) follow the same tag, read by the same code, so they cannot disagree.

**Pixels.** :func:`decode_image` returns ``(H, W, 3)`` uint8 RGB from OpenCV's decoder (the one
``tools/test.py`` always used): grayscale is repeated to three channels, alpha is dropped, 16-bit
samples keep their high byte (``v >> 8``, so a 16-bit grayscale PNG is not clipped to white).

**Completeness.** An interrupted copy or download, or a full disk, leaves a file whose header is
valid but whose pixel data stops early; OpenCV then refuses it (a truncated JPEG or PNG decodes to
nothing). :func:`read_image_header` finds it without decoding: a JPEG must end with its
end-of-image marker and a PNG with its ``IEND`` chunk. A file that does not (a complete image may
carry trailing bytes, e.g. a phone's motion photo) is decoded once to decide, so the check refuses
exactly the files the pipeline could not decode. Cost, measured on 4K (3840x2160) JPEGs of
4.8 MB on a warm page cache: 0.04 ms per image for the header, orientation and tail (0.026 ms for
the header alone), 0.2 s for FineRS-4k's 4,563 images, where decoding each one would take 78 ms
(about 6 minutes; 41 ms at 1/8 scale), and in every process that builds the dataset (each rank;
with ``lazy_init=True`` at the first access). Limits: a bit flip *inside* a JPEG is decoded by
OpenCV without error (wrong pixels, nothing a cheap check can see); one inside a PNG fails its CRC
and :func:`decode_image` names the file when the pipeline reaches it. Other formats get the header
check only.
"""
import io
from typing import BinaryIO, NamedTuple, Optional

import cv2
import numpy as np
from mmengine.fileio import get_local_path
from PIL import Image, UnidentifiedImageError

#: EXIF tag 0x0112
ORIENTATION_TAG = 0x0112
#: orientations that swap width and height (5 transpose, 6 rotate 90 cw, 7 transverse, 8 90 ccw)
SWAPS_SIDES = (5, 6, 7, 8)
_JPEG_END = b'\xff\xd9'
_PNG_END = b'\x00\x00\x00\x00IEND\xaeB`\x82'  # the IEND chunk: length 0, type, CRC
_TAIL = len(_PNG_END)
_REEXPORT = 're-export the image as JPEG or PNG'
_RECOPY = ('copy the image again from its source (an interrupted copy or download, or a full disk '
           'leaves such a file)')


class ImageFileError(ValueError):
    """An image file finers_mm cannot use.

    Args:
        path (str): the file (or the name given with the bytes).
        reason (str): short name of the problem: ``'unreadable image'`` | ``'truncated image'``.
        detail (str): what is wrong.
        fix (str): what to do.
    """

    def __init__(self, path: str, reason: str, detail: str, fix: str) -> None:
        self.path, self.reason, self.detail, self.fix = path, reason, detail, fix
        super().__init__(f'{path}: {reason}: {detail}. Fix: {fix}')


class ImageHeader(NamedTuple):
    """What an image file's header says, in the displayed frame.

    Attributes:
        width (int): displayed width (px), EXIF orientation applied.
        height (int): displayed height (px).
        orientation (int): the EXIF orientation, 1 (as stored) to 8.
        format (str): PIL's format name, e.g. ``'JPEG'``, ``'PNG'``.
    """
    width: int
    height: int
    orientation: int
    format: str


def read_image_header(path: str, backend_args: Optional[dict] = None) -> ImageHeader:
    """Read an image's displayed size and check that the file is complete, without decoding it.

    Args:
        path (str): the image file (any mmengine file backend).
        backend_args (dict, optional): arguments of the file backend.

    Returns:
        ImageHeader: the displayed size, orientation and format.

    Raises:
        FileNotFoundError: the file does not exist.
        ImageFileError: the bytes are not an image, the size is empty, or the file is truncated.
    """
    try:
        with get_local_path(path, backend_args=backend_args) as local_path:
            with open(local_path, 'rb') as file:
                header = _parse_header(file, path)
                file.seek(0, io.SEEK_END)
                file.seek(max(file.tell() - _TAIL, 0))
                complete = _ends_complete(file.read(), header.format)
                if not complete:
                    # a complete image may carry trailing bytes: the pipeline's decoder decides
                    file.seek(0)
                    complete = _cv2_decode(file.read()) is not None
    except FileNotFoundError:
        raise
    except OSError as error:  # a folder, no permission, an I/O error
        raise ImageFileError(path, 'unreadable image', f'cannot be read ({error})',
                             'give the path of an image file that can be read') from None
    if not complete:
        raise ImageFileError(
            path, 'truncated image', f'the {header.format} file ends before its end-of-image '
            'marker and cannot be decoded', _RECOPY)
    return header


def decode_image(content: bytes, name: str = '<bytes>') -> np.ndarray:
    """Decode an image file's bytes as displayed (EXIF orientation applied), RGB, uint8.

    Args:
        content (bytes): the whole file.
        name (str): the file's name for error messages.

    Returns:
        np.ndarray: (H, W, 3) uint8 RGB, C-contiguous, in the displayed frame.

    Raises:
        ImageFileError: the bytes are not an image, or the file is truncated or corrupt.
    """
    header = _parse_header(io.BytesIO(content), name)
    img = _cv2_decode(content)
    if img is None:
        if not _ends_complete(content[-_TAIL:], header.format):
            raise ImageFileError(
                name, 'truncated image', f'the {header.format} file ends before its '
                'end-of-image marker', _RECOPY)
        raise ImageFileError(name, 'unreadable image',
                             f'OpenCV cannot decode this {header.format} file (corrupt data)',
                             f'{_RECOPY}, or {_REEXPORT}')
    return cv2.cvtColor(orient(img, header.orientation), cv2.COLOR_BGR2RGB)


#: stored -> displayed pixels per EXIF orientation (1: as stored), as PIL's exif_transpose
_ORIENT_OPS = {
    2: lambda img: cv2.flip(img, 1),
    3: lambda img: cv2.rotate(img, cv2.ROTATE_180),
    4: lambda img: cv2.flip(img, 0),
    5: cv2.transpose,
    6: lambda img: cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE),
    7: lambda img: cv2.flip(cv2.transpose(img), -1),  # transverse: transpose, then rotate 180
    8: lambda img: cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE),
}


def orient(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels into displayed pixels, as PIL's ``ImageOps.exif_transpose``.

    Args:
        img (np.ndarray): (H, W) or (H, W, C) pixels as stored in the file (C <= 4, a dtype
            OpenCV takes: uint8, uint16, float32, ...).
        orientation (int): the EXIF orientation, 1 to 8 (anything else: as stored).

    Returns:
        np.ndarray: the displayed pixels, (W, H, ...) for orientations 5 to 8; ``img`` itself for
        1, otherwise a new C-contiguous array (OpenCV's flips and rotations: a 4K image in a few
        ms, where numpy's strided copies take ten times longer).
    """
    operation = _ORIENT_OPS.get(orientation)
    return img if operation is None else operation(img)


def _parse_header(file: BinaryIO, name: str) -> ImageHeader:
    """The displayed size, orientation and format from the file's header (no pixel decode)."""
    try:
        with Image.open(file) as image:
            width, height = image.size
            orientation = _orientation(image)
            image_format = image.format or 'unknown'
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise ImageFileError(name, 'unreadable image', f'not an image file ({error})',
                             _REEXPORT) from None
    if width <= 0 or height <= 0:
        raise ImageFileError(name, 'unreadable image', f'the header says {width}x{height}',
                             _REEXPORT)
    if orientation in SWAPS_SIDES:
        width, height = height, width
    return ImageHeader(int(width), int(height), int(orientation), image_format)


def _orientation(image: Image.Image) -> int:
    """The EXIF (or XMP) orientation the header holds, 1 to 8; 1 when absent or unreadable."""
    try:
        # the base class's getexif reads only what the header held; PNG's own would decode the
        # whole image to look for an eXIf chunk after the pixels
        orientation = Image.Image.getexif(image).get(ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001
        # a malformed EXIF block must not refuse pixels that decode; the header size and the
        # decoded pixels both come through here, so they still agree
        return 1
    return orientation if orientation in range(1, 9) else 1


def _ends_complete(tail: bytes, image_format: str) -> bool:
    """Whether the last bytes are the format's end marker (True for unchecked formats)."""
    if image_format in ('JPEG', 'MPO'):
        return tail.endswith(_JPEG_END)
    if image_format == 'PNG':
        return tail.endswith(_PNG_END)
    return True


def _cv2_decode(content: bytes) -> Optional[np.ndarray]:
    """OpenCV's decode as stored (orientation NOT applied), BGR uint8; None when it fails."""
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    return cv2.imdecode(np.frombuffer(content, np.uint8), flags)
