# Copyright (c) finers_mm contributors. All rights reserved.
"""GT points of the refiner's answer (``points_1``, ``points_2``), in original pixels."""
import numpy as np
from mmcv.transforms import BaseTransform

from finers_mm.registry import TRANSFORMS
from finers_mm.structures import box_center_jitter_points, inscribed_circle_points
from .loading import record_name
from .randomness import sample_rng

POINT_METHODS = ('inscribed_circles', 'box_center_jitter')


@TRANSFORMS.register_module()
class SampleGTPoints(BaseTransform):
    """Two GT points of the target, in ORIGINAL pixels.

    - ``'inscribed_circles'`` (default, the paper's prompt): centres of the two largest inscribed
      circles of ``gt_mask`` (:func:`finers_mm.structures.inscribed_circle_points`); deterministic.
    - ``'box_center_jitter'`` (the authors' released data): the centre of ``gt_bbox`` plus a uniform
      jitter of up to ``jitter`` times the box's half-size
      (:func:`finers_mm.structures.box_center_jitter_points`), drawn from
      ``np.random.default_rng((seed, sample_idx))`` so that runs repeat.

    Required Keys:

    - gt_mask (``'inscribed_circles'``; from :class:`LoadFineRSMask`)
    - gt_bbox, sample_idx (``'box_center_jitter'``)

    Added Keys:

    - gt_points (np.float32 (2, 2), ORIGINAL pixels, continuous)

    Args:
        method (str): ``'inscribed_circles'`` or ``'box_center_jitter'``.
        jitter (float): largest jitter as a fraction of the box's half-size
            (``'box_center_jitter'``).
        seed (int): seed combined with ``sample_idx``.
    """

    def __init__(self, method: str = 'inscribed_circles', jitter: float = 0.25,
                 seed: int = 0) -> None:
        if method not in POINT_METHODS:
            raise ValueError(f'method must be one of {POINT_METHODS}, got {method!r}')
        self.method = method
        self.jitter = jitter
        self.seed = seed

    def transform(self, results: dict) -> dict:
        """Add ``gt_points``.

        Args:
            results (dict): the data info of one sample.

        Returns:
            dict: ``results`` with ``gt_points``.
        """
        if self.method == 'box_center_jitter':
            rng = sample_rng(self.seed, results)
            points = box_center_jitter_points(results['gt_bbox'], self.jitter, rng)
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
