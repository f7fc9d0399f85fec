# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRS as a proposer for mmdet detectors (issue 7, item 3).

Import it with ``custom_imports = dict(imports=['finers_mm', 'projects.reasoning_proposer.reasoning_proposer'])``.
"""
from finers_mm.structures import slice_windows  # re-exported: it lived here before
from finers_mm.utils.frames_config import register_frame_arguments
from .crop_detector import MMDetCropDetector, OracleCropDetector
from .proposer import ReasoningProposerDetector, SlicedDetector, merge_detections
from .scaffolding import ScriptedRegionExplorer, region_for

# the proposer's crop windows follow the config's `frames` as FineRSDetector's do
register_frame_arguments('ReasoningProposerDetector', crop_min_side='crop_min_side')

__all__ = ['MMDetCropDetector', 'OracleCropDetector', 'ReasoningProposerDetector',
           'SlicedDetector', 'merge_detections', 'slice_windows', 'ScriptedRegionExplorer',
           'region_for']
