# Copyright (c) finers_mm contributors. All rights reserved.
"""A VLM's coordinate convention: between what the model writes and the pixels of the image it
was fed (the "frame": the explorer view or the refiner crop)."""
from typing import Optional, Tuple

import numpy as np

from finers_mm.structures.frames import Size, frame_to_model, model_to_frame

#: absolute pixels of the processor-resized image (what the model sees)
MODEL_IMAGE = 'model_image'
#: absolute pixels of the image as given to the processor (the authors' convention: their rewards
#: compared raw outputs with frame-pixel GT, so their weights answer in the frame's pixels)
FRAME = 'frame'
COORDINATES = (MODEL_IMAGE, FRAME)
#: the largest relative change of a frame side by the processor's resize under which an
#: absolute-pixel model is still asked for the region in frame pixels (the authors' "256*256")
REGION_RESIZE_TOLERANCE = 0.02


def check_coordinates(coordinates: str, owner: str = 'the VLM adapter') -> str:
    """Return ``coordinates`` if it is one of :data:`COORDINATES`; ValueError naming ``owner``."""
    if coordinates not in COORDINATES:
        raise ValueError(f'{owner}: unknown `coordinates` {coordinates!r}; expected one of '
                         f"{COORDINATES} ('frame' is the authors' convention)")
    return coordinates


class CoordinateConventionMixin:
    """The coordinate convention of a VLM adapter, set by the class attribute ``relative_scale``.

    ``relative_scale`` None: ABSOLUTE pixels of the image as the model saw it, i.e. after the
    processor's resize (:meth:`model_image_size`, which the adapter implements); an int ``s``:
    coordinates relative to the image, ``0..s`` along each axis.
    """

    relative_scale: Optional[int]
    #: for absolute families, the pixels the numbers are in (:data:`COORDINATES`)
    coordinates: str = MODEL_IMAGE

    def model_image_size(self, frame_size: Size) -> Size:
        """Size of an image of ``frame_size`` after the processor's resize (what the model sees).

        Args:
            frame_size (tuple[int, int]): ``(W, H)`` of the image fed to the model.

        Returns:
            tuple[int, int]: ``(W, H)`` of the model's input image.
        """
        raise NotImplementedError(f'{type(self).__name__} must implement model_image_size (the '
                                  'size of an image after its processor resized it)')

    def model_coord_size(self, frame_size: Size) -> Size:
        """Extent of the model's coordinate space over an image of ``frame_size``.

        Args:
            frame_size (tuple[int, int]): ``(W, H)`` of the image fed to the model.

        Returns:
            tuple[int, int]: ``(sx, sy)``: the image's right/bottom edge is at ``x = sx`` /
            ``y = sy`` in model coordinates.
        """
        if self.relative_scale is None:
            if self.coordinates == FRAME:
                return (int(frame_size[0]), int(frame_size[1]))
            return self.model_image_size(frame_size)
        return (self.relative_scale, self.relative_scale)

    def model_to_frame(self, coords, frame_size: Size) -> np.ndarray:
        """Map coordinates as the model writes them to pixels of the image it was fed.

        Args:
            coords: boxes (..., 4) ``[x1, y1, x2, y2]`` or points (..., 2) in model coordinates.
            frame_size (tuple[int, int]): ``(W, H)`` of the image fed to the model.

        Returns:
            np.ndarray: float32, same shape, in frame pixels (continuous, not clipped).
        """
        return model_to_frame(coords, frame_size,
                              self.model_coord_size(frame_size)).astype(np.float32)

    def frame_to_model(self, coords, frame_size: Size) -> np.ndarray:
        """Map pixels of the fed image to the model's coordinates (inverse of
        :meth:`model_to_frame`), e.g. to write target answers.

        Args:
            coords: boxes (..., 4) or points (..., 2) in frame pixels.
            frame_size (tuple[int, int]): ``(W, H)`` of the image fed to the model.

        Returns:
            np.ndarray: float32, same shape, in model coordinates.
        """
        return frame_to_model(coords, frame_size,
                              self.model_coord_size(frame_size)).astype(np.float32)

    def region_size_in_model(self, region_size: int, frame_size: Size) -> Tuple[int, int]:
        """Width and height, in the model's coordinates, of a ``region_size`` square of the frame:
        the region size the explorer prompt states (the one place that knows it).

        - Relative conventions (``relative_scale`` an int, Qwen2-VL / Qwen3-VL): the square mapped
          with :meth:`frame_to_model` and rounded, e.g. 256 in a 1920 x 1080 frame is
          ``(133, 237)`` on a 0..1000 scale (at least 1 unit each).
        - Absolute pixels of the frame (``coordinates='frame'``, the authors' protocol):
          ``(region_size, region_size)``, their prompt ("a 256*256 bounding box").
        - Absolute pixels of the model image (``coordinates='model_image'``, Qwen2.5-VL under
          finers_mm): ``(region_size, region_size)`` while the processor's smart-resize changes
          each side of the frame by at most :data:`REGION_RESIZE_TOLERANCE` (the paper's frame:
          1920 x 1080 becomes 1932 x 1092 with the checkpoint's pixel budget, so the prompt keeps
          the authors' 256 and an answer of that size is 254 x 253 frame pixels, well inside the
          reward's size band); under a smaller budget the square mapped with
          :meth:`frame_to_model`, as for relative conventions (a 1920 x 1080 frame seen at
          1316 x 728 asks for ``(175, 173)``), so the prompt, the SFT targets and the reward's
          size band agree on one region.

        Args:
            region_size (int): side of the region in frame pixels.
            frame_size (tuple[int, int]): ``(W, H)`` of the image fed to the model.

        Returns:
            tuple[int, int]: ``(width, height)`` in model coordinates.
        """
        if self.relative_scale is None:
            if self.coordinates == FRAME or not _resized_beyond(
                    self.model_coord_size(frame_size), frame_size, REGION_RESIZE_TOLERANCE):
                return int(region_size), int(region_size)
        side = float(region_size)
        box = self.frame_to_model(np.array([0.0, 0.0, side, side], np.float32), frame_size)
        return (max(1, int(round(float(box[2] - box[0])))),
                max(1, int(round(float(box[3] - box[1])))))


def _resized_beyond(model_size: Size, frame_size: Size, tolerance: float) -> bool:
    """Whether a side of ``frame_size`` changes by more than ``tolerance`` (a fraction) in
    ``model_size``."""
    return any(abs(float(m) / float(f) - 1.0) > tolerance for m, f in zip(model_size, frame_size))
