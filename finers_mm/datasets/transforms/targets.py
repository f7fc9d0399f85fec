# Copyright (c) finers_mm contributors. All rights reserved.
"""GT points of the refiner's answer (``points_1``, ``points_2``), in original pixels."""
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform

from finers_mm.registry import TRANSFORMS
from finers_mm.structures import box_center_jitter_points, inscribed_circle_points
from finers_mm.structures.points import authors_jitter_points
from finers_mm.structures.protocols import DEFAULT_PROTOCOL, check_protocol, protocol_setting
from .loading import record_name
from .randomness import sample_rng

POINT_METHODS = ('inscribed_circles', 'authors_jitter', 'box_center_jitter')
#: the methods that need ``gt_bbox`` and ``sample_idx`` (and no mask)
BOX_POINT_METHODS = ('authors_jitter', 'box_center_jitter')
#: the protocols module's names of a method that differ from this transform's: protocols.py calls
def protocol_point_method(protocol: str) -> str:
    """The GT-point method of a protocol (its ``'gt_points'`` setting, in this module's names).

    Args:
        protocol (str): ``'finers_mm'`` or ``'authors'``.

    Returns:
        str: ``'inscribed_circles'`` (finers_mm) or ``'authors_jitter'`` (authors).
    """
    return protocol_setting(check_protocol(protocol), 'gt_points')


@TRANSFORMS.register_module()
class SampleGTPoints(BaseTransform):
    """Two GT points of the target, in ORIGINAL pixels.

    - ``'inscribed_circles'`` (finers_mm, the paper's prompt): centres of the two largest
      inscribed circles of ``gt_mask`` (:func:`finers_mm.structures.inscribed_circle_points`);
      deterministic.
    - ``'authors_jitter'`` (the authors' data converters, exactly): the centre of ``gt_bbox``
      rounded down, and that centre moved by a random integer of up to a tenth of the box per
      axis (:func:`finers_mm.structures.points.authors_jitter_points`).
    - ``'box_center_jitter'``: the centre of ``gt_bbox`` plus a uniform jitter of up to ``jitter``
      times the box's half-size, for both points
      (:func:`finers_mm.structures.box_center_jitter_points`).

    The random methods draw from ``np.random.default_rng((seed, sample_idx))``, so that runs
    repeat.

    Required Keys:

    - gt_mask (``'inscribed_circles'``; from :class:`LoadFineRSMask`)
    - gt_bbox, sample_idx (``'authors_jitter'``, ``'box_center_jitter'``)

    Added Keys:

    - gt_points (np.float32 (2, 2), ORIGINAL pixels, continuous)

    Args:
        method (str, optional): ``'inscribed_circles'``, ``'authors_jitter'`` or
            ``'box_center_jitter'``. Defaults to None: the protocol's (``'inscribed_circles'``
            under ``'finers_mm'``, ``'authors_jitter'`` under ``'authors'``).
        jitter (float): largest jitter as a fraction of the box's half-size
            (``'box_center_jitter'`` only).
        seed (int): seed combined with ``sample_idx``.
        protocol (str): ``'finers_mm'`` or ``'authors'``. Defaults to ``'finers_mm'``.
    """

    def __init__(self, method: Optional[str] = None, jitter: float = 0.25, seed: int = 0,
                 protocol: str = DEFAULT_PROTOCOL) -> None:
        check_protocol(protocol)
        if method is None:
            method = protocol_point_method(protocol)
        if method not in POINT_METHODS:
            raise ValueError(f'method must be one of {POINT_METHODS}, got {method!r}')
        self.method = method
        self.jitter = jitter
        self.seed = seed
        self.protocol = protocol

    def transform(self, results: dict) -> dict:
        """Add ``gt_points``.

        Args:
            results (dict): the data info of one sample.

        Returns:
            dict: ``results`` with ``gt_points``.
        """
        if self.method in BOX_POINT_METHODS:
            rng = sample_rng(self.seed, results)
            try:
                points = (authors_jitter_points(results['gt_bbox'], rng)
                          if self.method == 'authors_jitter' else
                          box_center_jitter_points(results['gt_bbox'], self.jitter, rng))
            except ValueError as error:
                raise ValueError(f'record {record_name(results)}: {error}') from error
        else:
            if 'gt_mask' not in results:
                raise KeyError("SampleGTPoints(method='inscribed_circles') needs 'gt_mask': put "
                               'LoadFineRSMask before it in the pipeline')
            try:
                points = inscribed_circle_points(results['gt_mask'])
            except ValueError as error:
                raise ValueError(f'record {record_name(results)}: {error} (the GT polygon has no '
                                 'pixel inside the image)') from error
        results['gt_points'] = np.asarray(points, dtype=np.float32)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(method={self.method!r}, jitter={self.jitter}, '
                f'seed={self.seed})')
