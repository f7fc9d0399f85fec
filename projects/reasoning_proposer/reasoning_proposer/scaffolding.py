# Copyright (c) finers_mm contributors. All rights reserved.
"""TEST / BENCHMARK SCAFFOLDING: an explorer that answers regions written down beforehand.

The tiny random Qwen2.5-VL explorer never writes a parsable region, so the end-to-end test and the
benchmark script the explorer instead (as ``finers_mm.testing.scripted`` scripts completions): the
regions (ORIGINAL pixels) come from a JSON file ``{question: [x1, y1, x2, y2] | null}``, made from
the GT (``region_for``), optionally displaced to mimic a localisation error.
"""
import json
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.model import BaseModule

from finers_mm.models.stages import ExplorerOutput, Query
from finers_mm.registry import MODELS
from finers_mm.structures import explorer_to_original, original_to_explorer, region_around_box
from finers_mm.structures.answers import FOUND_RESPONSE


def region_for(gt_bbox, image_size: Tuple[int, int], explorer_frame=(1920, 1080),
               region_size: int = 256, shift=(0.0, 0.0)) -> np.ndarray:
    """The explorer's ``region_size`` region around the GT (as GlobalExplorer is trained to answer),
    moved by ``shift`` explorer-frame pixels, in ORIGINAL pixels."""
    gt = original_to_explorer(np.asarray(gt_bbox, np.float32), image_size, explorer_frame)
    region = region_around_box(gt, explorer_frame, region_size)
    region = region + np.array([shift[0], shift[1], shift[0], shift[1]], np.float32)
    return explorer_to_original(region, image_size, explorer_frame).astype(np.float32)


@MODELS.register_module()
class ScriptedRegionExplorer(BaseModule):
    """Answers, per question, the region of a JSON file (null: no usable region, reason
    ``'scripted_none'``). It honours the explorer interface of :mod:`finers_mm.models.stages`.

    Args:
        regions (str | dict): JSON file or dict ``{question: [x1, y1, x2, y2] or None}``, ORIGINAL
            pixels; for ``num_regions = k > 1`` a question may list several regions
            ``[[x1, y1, x2, y2], ...]``, best first: the first k are answered, padded with "no
            region" outputs.
    """

    def __init__(self, regions) -> None:
        super().__init__()
        if isinstance(regions, str):
            with open(regions) as f:
                regions = json.load(f)
        self.regions: Dict[str, Optional[list]] = dict(regions)

    def explore(self, views: Sequence[np.ndarray], image_sizes, queries: Sequence[Query],
                num_regions: int = 1) -> List[ExplorerOutput]:
        outputs = []
        for query in queries:
            if query.question not in self.regions:
                raise KeyError(f'ScriptedRegionExplorer: no region for {query.question!r}')
            regions = self.regions[query.question]
            if regions is None:
                regions = []
            elif not isinstance(regions[0], (list, tuple, np.ndarray)):  # one [x1, y1, x2, y2]
                regions = [regions]
            regions = list(regions)[:num_regions]
            regions += [None] * (num_regions - len(regions))
            for region in regions:
                if region is None:
                    outputs.append(ExplorerOutput(region=None, answer=None, completion='scripted',
                                                  invalid='scripted_none'))
                else:
                    outputs.append(ExplorerOutput(region=np.asarray(region, np.float32),
                                                  answer=FOUND_RESPONSE,
                                                  completion='scripted'))
        return outputs
