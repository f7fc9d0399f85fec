# Copyright (c) finers_mm contributors. All rights reserved.
"""Checks that a training set can feed a reward, run before training starts."""
from .rewards import BaseReward


def check_reward_data(reward: BaseReward, dataset) -> None:
    """Refuse records without ``best_region`` when a reward term needs the retrospective target.

    The authors' release silently trained GSE with the two retrospective terms at 0; here a term
    that ``requires`` ``target_region`` on records without ``best_region`` stops the run, naming
    the annotation file and the fix.

    Args:
        reward (BaseReward): the GRPO reward (its ``requires`` lists the fields its terms need).
        dataset: the training dataset (a ``BaseDataset``, or an mmengine wrapper of one).

    Raises:
        RuntimeError: some records have no ``best_region`` but the reward needs it.
    """
    if 'target_region' not in reward.requires:
        return
    dataset = getattr(dataset, 'dataset', dataset)  # through mmengine's dataset wrappers
    dataset.full_init()
    missing = [i for i in range(len(dataset))
               if dataset.get_data_info(i).get('best_region') is None]
    if missing:
        raise RuntimeError(
            f'{len(missing)} of {len(dataset)} training records in '
            f'{getattr(dataset, "ann_file", "the dataset")} have no best_region, but the reward '
            'terms need it (the locate-informed retrospective reward). Run '
            'tools/search_best_region.py with the trained refiner first, or remove the terms '
            'that require target_region from the reward.')
