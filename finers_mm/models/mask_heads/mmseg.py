# Copyright (c) finers_mm contributors. All rights reserved.
"""A frozen mmsegmentation mask head: any mmseg segmentor on the crop, the prompted component kept.

The segmentor labels every pixel of the crop; the refiner's box and points then pick the object:
the connected component(s) of the foreground under the positive points or, when no point lands on
the foreground, the component overlapping the box most, restricted to the box by default.

Coordinates follow :mod:`finers_mm.structures.frames` (continuous): the pixel holding a point
``(x, y)`` is ``(floor(x), floor(y))`` and a box covers the pixels it touches,
``floor(x1) <= i < ceil(x2)`` (exactly ``x1 <= i < x2`` for an integer box).
"""
import copy
import math
import os.path as osp
from collections import defaultdict
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import mmcv
import numpy as np
import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint
from mmseg.models.segmentors import BaseSegmentor
from mmseg.registry import MODELS as MMSEG_MODELS
from mmseg.structures import SegDataSample

from finers_mm.registry import MODELS
from .base import ArrayLike, BaseMaskHead


def _segmentor_config(segmentor: Union[str, Mapping[str, Any]]) -> Tuple[ConfigDict, str]:
    """The segmentor's model config and a description of where it came from, for messages.

    Args:
        segmentor (str | Mapping): an mmseg model config, or the path of an mmseg config file
            (its ``model``).

    Returns:
        tuple[ConfigDict, str]: a copy of the model config (``test_cfg`` and the other nested
        dicts as ``ConfigDict``, as mmseg expects) and ``"config key 'segmentor'"`` (plus the file).
    """
    if isinstance(segmentor, Mapping):
        return ConfigDict(copy.deepcopy(dict(segmentor))), "config key 'segmentor'"
    source = f"config key 'segmentor' (file '{segmentor}')"
    if not osp.isfile(segmentor):
        raise FileNotFoundError(f'MMSegMaskHead: mmseg config file not found: {source}. Give an '
                                f'mmseg model config dict or the local path of an mmseg config.')
    config = Config.fromfile(segmentor)
    if 'model' not in config:
        raise KeyError(f"MMSegMaskHead: {source} has no 'model'.")
    return copy.deepcopy(config.model), source


def build_mmseg_segmentor(segmentor: Union[str, Mapping[str, Any]],
                          checkpoint: Optional[str] = None) -> BaseSegmentor:
    """Build an mmseg segmentor in mmseg's registry and scope, with local weights if given.

    The build runs under the ``mmseg`` default scope (restored afterwards), so a config built from
    a ``finers_mm`` or ``mmdet`` scope (e.g. after an mmdet ``Runner``) finds mmseg's backbones,
    heads and data preprocessor by their plain names.

    Args:
        segmentor (str | Mapping): an mmseg model config (``type`` e.g. ``'EncoderDecoder'``, with
            its ``data_preprocessor``), or the path of an mmseg config file (its ``model``).
        checkpoint (str, optional): LOCAL path of the segmentor's weights (an mmseg checkpoint or a
            bare ``state_dict``), loaded strictly. None keeps random weights.

    Returns:
        BaseSegmentor: the segmentor, on CPU.

    Raises:
        FileNotFoundError: ``checkpoint`` or the config file does not exist.
        KeyError: an unknown type in the segmentor config (the message names the key and file).
        TypeError: the config builds something that is not an mmseg segmentor.
    """
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f"MMSegMaskHead: segmentor checkpoint not found: '{checkpoint}' "
                                f"(config key 'checkpoint'). Give the local path of the mmseg "
                                f"checkpoint; nothing is downloaded.")
    cfg, source = _segmentor_config(segmentor)
    if 'data_preprocessor' not in cfg:
        raise KeyError(f"MMSegMaskHead: {source} has no 'data_preprocessor'; give the mmseg "
                       f"model config's SegDataPreProcessor (mean, std, bgr_to_rgb).")
    with DefaultScope.overwrite_default_scope('mmseg'):
        try:
            model = MMSEG_MODELS.build(cfg)
        except KeyError as error:
            raise KeyError(f'MMSegMaskHead: cannot build the segmentor of {source}, type '
                           f"{cfg.get('type')!r}: {error}") from error
    if not isinstance(model, BaseSegmentor):
        raise TypeError(f'MMSegMaskHead: {source} builds a {type(model).__name__}, not an mmseg '
                        f'segmentor (BaseSegmentor, e.g. EncoderDecoder).')
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True, logger='current')
    return model


def box_pixel_extent(box: ArrayLike, size: Tuple[int, int]) -> Tuple[int, int, int, int]:
    """The pixels a continuous box touches, as integer slice bounds inside an image.

    Args:
        box: (4,) ``[x1, y1, x2, y2]`` continuous pixels.
        size (tuple[int, int]): ``(w, h)`` of the image.

    Returns:
        tuple[int, int, int, int]: ``(x1, y1, x2, y2)`` with ``floor`` / ``ceil`` of the box,
        clipped to ``[0, w] x [0, h]``; ``mask[y1:y2, x1:x2]`` is the box's pixels.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    width, height = size
    return (min(max(math.floor(x1), 0), width), min(max(math.floor(y1), 0), height),
            min(max(math.ceil(x2), 0), width), min(max(math.ceil(y2), 0), height))


def select_component(foreground: np.ndarray,
                     box: ArrayLike,
                     points: Optional[ArrayLike] = None,
                     point_labels: Optional[ArrayLike] = None,
                     clip_to_box: bool = True) -> np.ndarray:
    """The prompted object in a foreground map: the components the points (else the box) select.

    Components are 8-connected, computed on the foreground restricted to the box when
    ``clip_to_box`` (on the whole map otherwise). Kept: every component holding a positive point
    and no negative point; when there is none, the single component with the most pixels inside
    the box (the first in raster order on a tie) unless it holds a negative point; when nothing
    overlaps the box, nothing. Points outside the map are ignored.

    Args:
        foreground (np.ndarray): (h, w) bool foreground of the crop.
        box: (4,) ``[x1, y1, x2, y2]`` continuous CROP pixels.
        points: (P, 2) ``[x, y]`` continuous CROP pixels, or None.
        point_labels: (P,) 1 positive, 0 negative, or None (all positive).
        clip_to_box (bool): keep only the part of the foreground inside the box.

    Returns:
        np.ndarray: (h, w) bool mask of the kept component(s), possibly empty.
    """
    height, width = foreground.shape
    x1, y1, x2, y2 = box_pixel_extent(box, (width, height))
    inside = np.zeros((height, width), dtype=bool)
    inside[y1:y2, x1:x2] = True
    candidates = foreground & inside if clip_to_box else foreground
    _, components = cv2.connectedComponents(candidates.astype(np.uint8), connectivity=8)
    selected, vetoed = _components_at_points(components, points, point_labels)
    selected -= vetoed
    if not selected:
        overlap = np.bincount(components[inside], minlength=components.max() + 1)
        overlap[[0, *vetoed]] = 0
        if overlap.max() == 0:
            return np.zeros((height, width), dtype=bool)
        selected = {int(overlap.argmax())}
    return np.isin(components, sorted(selected))


def _components_at_points(components: np.ndarray, points: Optional[ArrayLike],
                          point_labels: Optional[ArrayLike]) -> Tuple[set, set]:
    """The component labels (> 0) under the positive and under the negative points.

    Args:
        components (np.ndarray): (h, w) int labels, 0 is background.
        points: (P, 2) continuous CROP pixels, or None.
        point_labels: (P,) 1 positive, 0 negative, or None (all positive).

    Returns:
        tuple[set, set]: labels under positive points, labels under negative points.
    """
    positive, negative = set(), set()
    if points is None:
        return positive, negative
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    labels = np.ones(len(points)) if point_labels is None else np.asarray(point_labels)
    height, width = components.shape
    for (x, y), label in zip(points, labels):
        col, row = math.floor(x), math.floor(y)
        if 0 <= col < width and 0 <= row < height and components[row, col] > 0:
            (positive if label > 0 else negative).add(int(components[row, col]))
    return positive, negative


@MODELS.register_module()
class MMSegMaskHead(BaseMaskHead):
    """Frozen mmseg segmentor as a FineRS mask head (step 3, "Mask").

    The mask-head interface of :class:`~finers_mm.models.mask_heads.base.BaseMaskHead`, as
    :class:`~finers_mm.models.mask_heads.SAMMaskHead`, so a config swaps one for the other by its
    ``model.mask_head`` block. Each crop is segmented by the segmentor (crops of the same size go
    through it together, ``batch_size`` at a time, each exactly once); the foreground is the pixels
    whose predicted class is one of ``foreground_class``; the prompt keeps the component(s) of
    :func:`select_component`. The score is the mean foreground probability (softmax of the
    segmentor's logits summed over the foreground classes, or its sigmoid for a one-channel head)
    over the kept mask, 0 for an empty mask. An all-zero box (the refiner's "No object found"), a
    box with no area inside its crop or a non-finite coordinate gives an empty mask with score 0
    and the crop never reaches the segmentor.

    Crops enter as mmseg's test pipeline would give them (BGR, as ``LoadImageFromFile`` loads;
    the segmentor's ``SegDataPreProcessor`` converts and normalises), optionally rescaled like
    mmseg's ``Resize(scale, keep_ratio=True)``; mmseg resizes the logits back to the crop.

    The model is frozen: no parameter requires grad and the head stays in eval mode even when its
    parent calls ``.train()``.

    Args:
        segmentor (str | dict): the mmseg model config (e.g. an ``EncoderDecoder`` with its
            ``data_preprocessor``), or the LOCAL path of an mmseg config file (its ``model`` is
            used). Built in mmseg's registry and scope.
        checkpoint (str, optional): LOCAL path of the segmentor's weights. None builds random
            weights, only meaningful in tests.
        foreground_class (int | Sequence[int], optional): the class(es) of the object. Defaults to
            None: every class but 0 (background).
        clip_to_box (bool): keep only the part of the mask inside the box. Defaults to True.
        scale (tuple[int, int], optional): rescale each crop, keeping its aspect ratio, to fit
            ``scale`` (long edge, short edge) before the segmentor, as the segmentor's test
            pipeline does (e.g. ``(2048, 512)``). Defaults to None (the crop as is).
        batch_size (int): Most crops per segmentor pass. Defaults to 8.
        init_cfg (dict, optional): mmengine init config. Defaults to None.
    """

    def __init__(self,
                 segmentor: Union[str, Mapping[str, Any]],
                 checkpoint: Optional[str] = None,
                 foreground_class: Optional[Union[int, Sequence[int]]] = None,
                 clip_to_box: bool = True,
                 scale: Optional[Tuple[int, int]] = None,
                 batch_size: int = 8,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if int(batch_size) < 1:
            raise ValueError(f'MMSegMaskHead: batch_size must be >= 1, got {batch_size}.')
        self.segmentor = build_mmseg_segmentor(segmentor, checkpoint)
        if checkpoint is None:
            print_log(f'MMSegMaskHead: no checkpoint given, the {type(self.segmentor).__name__} '
                      f'has random weights.', logger='current')
        self.foreground_classes = self._check_foreground(foreground_class,
                                                         self.segmentor.num_classes)
        self.clip_to_box = bool(clip_to_box)
        self.scale = None if scale is None else tuple(int(s) for s in scale)
        self.batch_size = int(batch_size)
        self.segmentor.requires_grad_(False)
        self.segmentor.eval()

    @staticmethod
    def _check_foreground(foreground_class: Optional[Union[int, Sequence[int]]],
                          num_classes: int) -> Tuple[int, ...]:
        """The foreground classes as a sorted tuple, each checked against ``num_classes``."""
        if foreground_class is None:
            classes = tuple(range(1, num_classes))
        elif isinstance(foreground_class, (int, np.integer)):
            classes = (int(foreground_class), )
        else:
            classes = tuple(sorted({int(c) for c in foreground_class}))
        if not classes or not all(0 <= c < num_classes for c in classes):
            raise ValueError(f"MMSegMaskHead: foreground_class {foreground_class!r} must name "
                             f"classes in [0, {num_classes}) of the segmentor (config key "
                             f"'foreground_class').")
        return classes

    def segment(self, crops: List[np.ndarray], boxes: np.ndarray, points: Optional[np.ndarray],
                point_labels: Optional[np.ndarray],
                indices: List[int]) -> Iterator[Tuple[int, np.ndarray, float]]:
        """The segmentor on the crops ``indices``; the component(s) the prompt selects, scored by
        their mean foreground probability (see :meth:`BaseMaskHead.segment`)."""
        for i, foreground, probability in self._run_segmentor(crops, indices):
            mask = select_component(foreground, boxes[i], None if points is None else points[i],
                                    None if point_labels is None else point_labels[i],
                                    self.clip_to_box)
            yield i, mask, float(probability[mask].mean()) if mask.any() else 0.0

    def _run_segmentor(self, crops: List[np.ndarray],
                 indices: List[int]) -> Iterator[Tuple[int, np.ndarray, np.ndarray]]:
        """Run the segmentor on the crops ``indices``, same-size inputs batched together.

        Args:
            crops (list[np.ndarray]): (h_i, w_i, 3) uint8 RGB crops.
            indices (list[int]): which crops to segment.

        Yields:
            tuple[int, np.ndarray, np.ndarray]: the crop index, its (h_i, w_i) bool foreground and
            its (h_i, w_i) float32 foreground probability, in CROP pixels.
        """
        inputs = {i: self._input(crops[i]) for i in indices}
        groups: Dict[Tuple[int, ...], List[int]] = defaultdict(list)
        for i in indices:
            groups[tuple(inputs[i].shape)].append(i)
        device = next(self.segmentor.parameters()).device
        self.segmentor.data_preprocessor.to(device)
        for group in groups.values():
            for start in range(0, len(group), self.batch_size):
                chunk = group[start:start + self.batch_size]
                samples = [SegDataSample(metainfo=dict(
                    ori_shape=crops[i].shape[:2], img_shape=tuple(inputs[i].shape[1:]),
                    pad_shape=tuple(inputs[i].shape[1:]))) for i in chunk]
                outputs = self.segmentor.test_step(
                    dict(inputs=[inputs[i] for i in chunk], data_samples=samples))
                for i, output in zip(chunk, outputs):
                    yield (i, *self._foreground(output))

    def _input(self, crop: np.ndarray) -> torch.Tensor:
        """A crop as mmseg's test pipeline packs an image: (3, h', w') uint8 BGR, rescaled to
        ``scale`` (keeping the aspect ratio) when given."""
        image = crop[..., ::-1]
        if self.scale is not None:
            image = mmcv.imrescale(image, self.scale, interpolation='bilinear')
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))

    def _foreground(self, output: SegDataSample) -> Tuple[np.ndarray, np.ndarray]:
        """Foreground mask and probability of one mmseg prediction.

        Args:
            output (SegDataSample): with ``pred_sem_seg`` (1, h, w) and ``seg_logits`` (C, h, w)
                at the crop's size (logits for C > 1; already the sigmoid for C == 1).

        Returns:
            tuple[np.ndarray, np.ndarray]: (h, w) bool mask of the pixels predicted as a
            foreground class, (h, w) float32 probability of the foreground classes.
        """
        seg_logits = output.seg_logits.data.float()
        if seg_logits.shape[0] == 1:  # a one-channel head: mmseg already applied the sigmoid
            probabilities = torch.cat([1 - seg_logits, seg_logits])
        else:
            probabilities = seg_logits.softmax(dim=0)
        classes = list(self.foreground_classes)
        probability = probabilities[classes].sum(dim=0).cpu().numpy()
        labels = output.pred_sem_seg.data[0].long().cpu().numpy()
        return np.isin(labels, classes), probability.astype(np.float32)
