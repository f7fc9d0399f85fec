# Copyright (c) finers_mm contributors. All rights reserved.
"""FullyShardStrategy's settings (no process group: the sharded runs are in
tests/test_rl/test_grpo_fsdp.py and tests/test_models/test_vlm_sharding.py)."""
import pytest
from mmengine.registry import STRATEGIES as MMENGINE_STRATEGIES

from finers_mm.engine.strategies import FullyShardStrategy
from finers_mm.engine.strategies.fully_shard import DEFAULT_MIXED_PRECISION


def test_found_from_mmengines_flexible_runner_registry(tmp_path):
    """FlexibleRunner builds `strategy` from mmengine's root registry: the config's
    'finers_mm.FullyShardStrategy' reaches finers_mm's child registry."""
    strategy = MMENGINE_STRATEGIES.build(dict(type='finers_mm.FullyShardStrategy',
                                              work_dir=str(tmp_path)))
    assert isinstance(strategy, FullyShardStrategy)
    assert strategy.mixed_precision == DEFAULT_MIXED_PRECISION
    assert strategy.master_dtype == 'float32' and strategy.reshard_after_forward


def test_refuses_amp_on_top_of_fsdp_mixed_precision(tmp_path):
    strategy = FullyShardStrategy(work_dir=str(tmp_path))
    with pytest.raises(ValueError, match="use optim_wrapper type 'OptimWrapper'"):
        strategy.build_optim_wrapper(dict(type='AmpOptimWrapper', optimizer=dict(type='AdamW')))
