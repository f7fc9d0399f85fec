# Copyright (c) finers_mm contributors. All rights reserved.
"""Per-sample random generators: the only randomness of the data pipeline."""
import numpy as np

from .loading import record_name


def sample_rng(seed: int, results: dict) -> np.random.Generator:
    """``np.random.default_rng((seed, sample_idx))``: the same sample draws the same numbers in
    every run, worker and epoch, and different seeds draw different ones.

    Args:
        seed (int): the transform's seed, >= 0.
        results (dict): the sample; ``sample_idx`` is set by mmengine's ``BaseDataset``.

    Returns:
        np.random.Generator: a fresh generator for this sample.
    """
    if 'sample_idx' not in results:
        raise KeyError(f"record {record_name(results)} has no 'sample_idx' to seed its randomness "
                       "(mmengine's BaseDataset.get_data_info sets it; set it yourself when "
                       'running the pipeline by hand)')
    return np.random.default_rng((int(seed), int(results['sample_idx'])))
