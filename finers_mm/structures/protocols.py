# Copyright (c) finers_mm contributors. All rights reserved.
"""The two protocols FineRS runs by, and every setting in which they differ (pure facts).

- ``'authors'``: the authors' code (JiazuoYu/Fines) as it ran for the released weights: their
  prompts byte for byte (evaluation prompts at test, training prompts in training), coordinates in
  the pixels of the frame the image was given in, their reward and evaluation answer rules, the
  QA answer from GSE, PIL bilinear resizes, a token mean per sequence then a mean over sequences,
  5 candidate windows in the region search and jittered GT points. Five bugs of theirs are fixed,
  not reproduced (:data:`AUTHORS_FIXES`).
- ``'finers_mm'``: this project's clearer protocol, each difference with its reason in
  ``docs/fidelity.md``.

A config sets ``protocol = 'authors'`` once; :func:`finers_mm.utils.protocol_config.apply_protocol`
hands it to every component that takes a ``protocol`` argument, and each component reads its own
setting here with :func:`protocol_setting`. This module is the one place that says what a protocol
means; the authors' prompt strings live in :mod:`.authors_prompts`, their ways of reading a
completion in :mod:`.authors_parsing`, their answer rules in :mod:`.answers`; docs/fidelity.md has
every difference with its reason and measured effect.
"""
from typing import Any, Dict

AUTHORS = 'authors'
FINERS_MM = 'finers_mm'
PROTOCOLS = (AUTHORS, FINERS_MM)
#: the protocol of a component built without one (the tiny configs, older configs)
DEFAULT_PROTOCOL = FINERS_MM

#: the authors' bugs the 'authors' protocol fixes instead of reproducing (docs/fidelity.md)
AUTHORS_FIXES: Dict[str, str] = {
    'a': 'an option answer names exactly one option (their regex rewards "A B C D")',
    'b': 'continuous boxes [x1, y1, x2 + 1, y2 + 1] (the size band of the GSE reward moves 1 px)',
    'c': 'the LPR sees RGB crops at test (their evaluation swaps R and B)',
    'd': 'crop windows shift inside the image instead of clamping their corners',
    'e': 'best_region is required when the retrospective terms are on',
}

#: setting -> {protocol: value}; one row per difference (docs/fidelity.md has the reasons)
SETTINGS: Dict[str, Dict[str, Any]] = {
    # prompt templates of the stages (models/prompts.py): the authors' evaluation and training
    # strings, or finers_mm's
    'prompts': {AUTHORS: AUTHORS, FINERS_MM: FINERS_MM},
    # what a Qwen2.5-VL box's pixels are: 'frame' = pixels of the image as given to the processor
    # (the explorer view / refiner crop), 'model_image' = pixels after the processor's
    # smart-resize to multiples of 28 (what the model sees)
    'coordinates': {AUTHORS: 'frame', FINERS_MM: 'model_image'},
    # how a completion is read and an answer judged (structures/parsing.py, structures/answers.py,
    # the reward terms, FineRSMetric)
    'answer_rule': {AUTHORS: AUTHORS, FINERS_MM: FINERS_MM},
    # the stage whose response is the QA answer at evaluation (the authors' --qa_stage stage1)
    'qa_stage': {AUTHORS: 'explorer', FINERS_MM: 'refiner'},
    # how the explorer view and the refiner crop are resized to their frames
    'resize': {AUTHORS: 'pil_bilinear', FINERS_MM: 'cv2_linear'},
    # GRPO loss aggregation (models/losses/grpo_loss.py): veRL with a micro-batch of one sequence,
    # or one token mean over the group
    'loss_type': {AUTHORS: 'seq_mean_token_mean', FINERS_MM: 'dapo'},
    # candidate windows per record in the region search, the centred one included (the authors: 4
    # random + 1 centred)
    'region_candidates': {AUTHORS: 5, FINERS_MM: 8},
    # which candidate wins equal scores (rl/region_search/candidates.py): their loop keeps a window
    # when iou >= the best so far over [4 random, centred]
    'region_ties': {AUTHORS: 'centred_then_last', FINERS_MM: 'first'},
    # GT points of the refiner's SFT targets and rewards (datasets/transforms/targets.py)
    'gt_points': {AUTHORS: 'authors_jitter', FINERS_MM: 'inscribed_circles'},
}


def check_protocol(protocol: str) -> str:
    """Return ``protocol`` if it names a protocol.

    Args:
        protocol (str): ``'authors'`` or ``'finers_mm'``.

    Returns:
        str: ``protocol``.

    Raises:
        ValueError: any other value, naming the known ones.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f'unknown protocol {protocol!r}; expected one of {PROTOCOLS} (set '
                         "`protocol = 'authors'` in the config to run as the authors' code)")
    return protocol


def protocol_setting(protocol: str, name: str) -> Any:
    """The value of one setting under a protocol.

    Args:
        protocol (str): ``'authors'`` or ``'finers_mm'``.
        name (str): a key of :data:`SETTINGS`, e.g. ``'coordinates'``.

    Returns:
        Any: the setting's value under ``protocol``.

    Raises:
        ValueError: an unknown protocol or setting.
    """
    check_protocol(protocol)
    if name not in SETTINGS:
        raise ValueError(f'unknown protocol setting {name!r}; known: {sorted(SETTINGS)}')
    return SETTINGS[name][protocol]
