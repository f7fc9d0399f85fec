# Copyright (c) finers_mm contributors. All rights reserved.
"""A frozen segment-anything (SAM) mask head: box + points on a crop in, best-scoring mask out.

Coordinate conventions (verified against ``segment_anything`` 1.0):

- finers_mm is continuous (:mod:`finers_mm.structures.frames`): pixel ``i`` covers ``[i, i + 1)``
  and its centre is ``i + 0.5``; a box is ``[x1, y1, x2, y2]`` with ``x2 = xmax + 1``.
- SAM takes pixel INDICES: ``PromptEncoder._embed_points`` and ``PromptEncoder._embed_boxes`` both
  add 0.5 ("Shift to center of pixel") before the positional encoding, and SAM's boxes are
  inclusive index boxes ``[xmin, ymin, xmax, ymax]`` (``utils.amg.batched_mask_to_box`` returns the
  max index as the right edge).

So a point ``p`` becomes ``p - 0.5`` (SAM adds the 0.5 back) and a box becomes
``[x1, y1, x2 - 1, y2 - 1]`` (the box of pixels ``xmin..xmax`` becomes ``[xmin, .., xmax, ..]``,
whose corner pixels' centres SAM encodes). Both are converted in CROP pixels, the frame in which
``SamPredictor.predict`` takes its prompts, and then resized with SAM's own
``ResizeLongestSide.apply_coords`` / ``apply_boxes``, exactly as ``SamPredictor`` does (SAM's own
0.5 shift then happens in the resized frame: a sub-pixel approximation of SAM's, kept as is).
"""
import json
import os.path as osp
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.logging import print_log
from segment_anything import sam_model_registry
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide

from finers_mm.registry import MODELS
from .base import ArrayLike, BaseMaskHead
from .sam_builder import build_sam_from_config

#: ``model_type`` values built through ``segment_anything.sam_model_registry``.
SAM_REGISTRY_TYPES = ('vit_b', 'vit_l', 'vit_h')


def boxes_to_sam(boxes: ArrayLike) -> np.ndarray:
    """Continuous finers_mm boxes -> SAM's inclusive pixel-index boxes (same frame).

    Args:
        boxes: (..., 4) ``[x1, y1, x2, y2]``, continuous (``x2 = xmax + 1``).

    Returns:
        np.ndarray: (..., 4) float64 ``[x1, y1, x2 - 1, y2 - 1]``.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim == 0 or boxes.shape[-1] != 4:
        raise ValueError(f'expected boxes of shape (..., 4), got {boxes.shape}')
    return boxes - np.array([0.0, 0.0, 1.0, 1.0])


def points_to_sam(points: ArrayLike) -> np.ndarray:
    """Continuous finers_mm points -> SAM's pixel-index points (same frame).

    Args:
        points: (..., 2) ``[x, y]``, continuous (pixel ``i``'s centre is ``i + 0.5``).

    Returns:
        np.ndarray: (..., 2) float64 ``[x - 0.5, y - 0.5]``.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim == 0 or points.shape[-1] != 2:
        raise ValueError(f'expected points of shape (..., 2), got {points.shape}')
    return points - 0.5


def _load_build_config(config: Union[str, Mapping[str, Any]]) -> Dict[str, Any]:
    """The SAM build config: a mapping as is, or a json file read (key ``config`` of the head)."""
    if isinstance(config, Mapping):
        return dict(config)
    if not osp.isfile(config):
        raise FileNotFoundError(f"SAMMaskHead: SAM build config file not found: '{config}' (config "
                                f"key 'config'). Point it to a json written by "
                                f"finers_mm.testing.tiny_models.build_tiny_models (sam_config).")
    with open(config, encoding='utf-8') as f:
        return json.load(f)


@MODELS.register_module()
class SAMMaskHead(BaseMaskHead):
    """Frozen segment-anything mask head (FineRS step 3, "Mask").

    The mask-head interface of :class:`~finers_mm.models.mask_heads.base.BaseMaskHead`: crops + one
    box and optional points per crop, in CROP pixels, in; one crop-sized mask and a score (SAM's
    predicted IoU of the kept mask) per crop out.

    Each crop is prompted with its box and points (positive by default); SAM predicts
    ``multimask`` candidates and the highest-scoring one is kept. All crops of a call go through the
    image encoder together, ``batch_size`` at a time, each crop exactly once. An all-zero box (the
    refiner's "No object found"), a box with no area inside its crop or a non-finite coordinate
    gives an empty mask with score 0 and the crop never reaches SAM.

    The model is frozen: no parameter requires grad and the head stays in eval mode even when its
    parent calls ``.train()``. It runs in SAM's own float32 on the device the head is moved to.

    Args:
        model_type (str, optional): ``'vit_b'``, ``'vit_l'`` or ``'vit_h'`` (Meta's released
            architectures, built with ``segment_anything.sam_model_registry``) or ``'tiny'`` (built
            from ``config`` with :func:`~finers_mm.models.mask_heads.sam_builder.build_sam_from_config`).
            Defaults to None, which requires ``config``.
        checkpoint (str, optional): LOCAL path of the model's ``state_dict`` (e.g.
            ``sam_vit_h_4b8939.pth``). None builds random weights, only meaningful in tests.
        config (str | dict, optional): Build config (a json path or a dict) for ``'tiny'`` (None:
            :data:`~finers_mm.models.mask_heads.sam_builder.TINY_SAM_CONFIG`). Giving it implies ``'tiny'``.
        multimask (bool): Predict SAM's 3 candidate masks and keep the highest-scoring one (SAM's
            advice for ambiguous prompts; the authors' setting). False: SAM's single-mask output.
            Defaults to True.
        batch_size (int): Most crops per image-encoder pass. Defaults to 8.
        init_cfg (dict, optional): mmengine init config. Defaults to None.
    """

    def __init__(self,
                 model_type: Optional[str] = None,
                 checkpoint: Optional[str] = None,
                 config: Optional[Union[str, Mapping[str, Any]]] = None,
                 multimask: bool = True,
                 batch_size: int = 8,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if int(batch_size) < 1:
            raise ValueError(f'SAMMaskHead: batch_size must be >= 1, got {batch_size}.')
        if checkpoint is not None and not osp.isfile(checkpoint):
            raise FileNotFoundError(f"SAMMaskHead: SAM checkpoint not found: '{checkpoint}' "
                                    f"(config key 'checkpoint'). Give the local path of the "
                                    f"state_dict file; nothing is downloaded.")
        if config is not None or model_type == 'tiny':
            if model_type not in (None, 'tiny'):
                raise ValueError(f"SAMMaskHead: 'config' builds a 'tiny' SAM; it cannot be "
                                 f"combined with model_type='{model_type}'.")
            self.sam: Sam = build_sam_from_config(
                _load_build_config(config) if config is not None else {}, checkpoint)
        elif model_type in SAM_REGISTRY_TYPES:
            self.sam = sam_model_registry[model_type](checkpoint=checkpoint)
        else:
            raise ValueError(f"SAMMaskHead: model_type must be one of "
                             f"{list(SAM_REGISTRY_TYPES) + ['tiny']} (or give 'config'), got "
                             f"{model_type!r}.")
        if checkpoint is None:
            print_log(f'SAMMaskHead: no checkpoint given, SAM ({model_type or "tiny"}) has random '
                      f'weights.', logger='current')
        self.multimask = bool(multimask)
        self.batch_size = int(batch_size)
        self.transform = ResizeLongestSide(self.sam.image_encoder.img_size)
        self.sam.requires_grad_(False)
        self.sam.eval()

    def segment(self, crops: List[np.ndarray], boxes: np.ndarray, points: Optional[np.ndarray],
                point_labels: Optional[np.ndarray],
                indices: List[int]) -> Iterator[Tuple[int, np.ndarray, float]]:
        """SAM on the crops ``indices``, ``batch_size`` per pass; the best-scoring candidate kept
        (see :meth:`BaseMaskHead.segment`)."""
        for start in range(0, len(indices), self.batch_size):
            chunk = indices[start:start + self.batch_size]
            records = [
                self._sam_input(crops[i], boxes[i], None if points is None else points[i],
                                None if point_labels is None else point_labels[i]) for i in chunk
            ]
            for i, output in zip(chunk, self.sam(records, multimask_output=self.multimask)):
                best = int(output['iou_predictions'][0].argmax())
                yield (i, output['masks'][0, best].cpu().numpy(),
                       float(output['iou_predictions'][0, best]))

    def _sam_input(self, crop: np.ndarray, box: np.ndarray, points: Optional[np.ndarray],
                   labels: Optional[np.ndarray]) -> Dict[str, Any]:
        """One record of ``Sam.forward``'s ``batched_input``, prepared as ``SamPredictor`` does.

        Args:
            crop (np.ndarray): (h, w, 3) uint8 RGB.
            box (np.ndarray): (4,) continuous CROP pixels.
            points (np.ndarray, optional): (P, 2) continuous CROP pixels.
            labels (np.ndarray, optional): (P,) point labels.

        Returns:
            dict: ``image`` (3, h', w') uint8 tensor, the crop resized to long side ``img_size``;
            ``original_size`` ``(h, w)``; ``boxes`` (1, 4) and, with points, ``point_coords``
            (1, P, 2) and ``point_labels`` (1, P), in SAM's pixel-index convention of the RESIZED
            crop.
        """
        device = self.sam.device
        size = crop.shape[:2]
        image = torch.as_tensor(self.transform.apply_image(crop), device=device)
        record = dict(
            image=image.permute(2, 0, 1).contiguous(),
            original_size=size,
            boxes=torch.as_tensor(self.transform.apply_boxes(boxes_to_sam(box[None]), size),
                                  dtype=torch.float, device=device))
        if points is not None:
            record['point_coords'] = torch.as_tensor(
                self.transform.apply_coords(points_to_sam(points), size)[None], dtype=torch.float,
                device=device)
            record['point_labels'] = torch.as_tensor(labels[None], dtype=torch.int, device=device)
        return record
