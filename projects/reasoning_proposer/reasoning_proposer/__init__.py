# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRS as a proposer for mmdet detectors (issue 7, item 3).

Import it with ``custom_imports = dict(imports=['finers_mm', 'projects.reasoning_proposer.reasoning_proposer'])``.
"""
from finers_mm.structures import slice_windows  # re-exported: it lived here before
from .crop_detector import MMDetCropDetector, OracleCropDetector
from .proposer import ReasoningProposerDetector, SlicedDetector, merge_detections
from .scaffolding import ScriptedRegionExplorer, region_for

__all__ = ['MMDetCropDetector', 'OracleCropDetector', 'ReasoningProposerDetector',
           'SlicedDetector', 'merge_detections', 'slice_windows', 'ScriptedRegionExplorer',
           'region_for']
