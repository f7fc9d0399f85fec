# Copyright (c) finers_mm contributors. All rights reserved.
"""Test fixtures shipped with finers_mm, as mmdet keeps ``mmdet.testing``.

- :mod:`.tiny_models`: tiny local Qwen2.5-VL / Qwen2-VL / SAM, built offline and cached (their
  tokenizer: :mod:`.tiny_tokenizer`);
- :mod:`.synthetic`: the synthetic FineRS-format data generator;
- :mod:`.scripted`: VLM adapters whose ``generate`` is scripted (registered on import), and the
  oracle completions that name the ground truth;
- :mod:`.samples`: data samples for metrics and random masks;
- :mod:`.chains`: the tiny FineRS test configs pointed at the tiny models;
- :mod:`.region_search`: a scripted refiner whose localisation depends on its window;
- :mod:`.tools`: the repository's tools loaded as modules, stage checkpoints as training writes
  them;
- :mod:`.toys`: a toy model, dataset and metric for the tools' plumbing (registered on import);
- :mod:`.authors_reference`: the authors' two reward functions re-derived in their own control flow
  (what the ``'authors'`` protocol's rewards are compared with).

The tests, benchmarks and tools use them; finers_mm's library code never imports this package
(``tests/test_architecture.py`` checks it). Importing this ``__init__`` registers nothing.
"""
from .paths import BUNDLED_DATA, CONFIGS, REPO_ROOT, config_path

__all__ = ['REPO_ROOT', 'CONFIGS', 'BUNDLED_DATA', 'config_path']
