# Copyright (c) finers_mm contributors. All rights reserved.
"""Retrospective best-region search (METHOD.md step 4, "Locate-informed retrospective reward").

For every record, candidate explorer regions that contain the GT box are turned into crop windows
exactly as :class:`~finers_mm.models.FineRSDetector` turns a predicted region into one
(:mod:`.candidates`); the trained refiner (LPR) localises the target in every window, and the
region whose window gives the refiner's box the highest IoU with the GT box becomes the record's
``best_region``, the explorer's (GSE) region target (:mod:`.scoring`).

These are the pure, reusable parts. The resumable job over an annotation file (state shards per
rank, the split of the pending records, progress, the output JSON) is the tool
``tools/search_best_region.py`` with its runner ``tools/region_search_job.py``.
"""
from .candidates import (CANDIDATE_RULES, TIE_RULES, CandidateRegions,
                         best_candidate, preference_order)
from .scoring import SearchResult, localization_ious, search_batch

__all__ = [
    'CANDIDATE_RULES', 'TIE_RULES', 'CandidateRegions', 'best_candidate',
    'preference_order', 'SearchResult', 'localization_ious', 'search_batch'
]
