"""run_config.process_group_scope: a group joined inside ends with the scope, a caller's stays."""
import pytest
import torch.distributed as dist

from finers_mm.utils.run_config import process_group_scope


def _join(store):
    dist.init_process_group('gloo', init_method=f'file://{store}', rank=0, world_size=1)


def test_a_group_joined_inside_is_destroyed_at_exit_also_on_error(tmp_path):
    with process_group_scope():
        _join(tmp_path / 'first')
        assert dist.is_initialized()
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match='boom'):
        with process_group_scope():
            _join(tmp_path / 'second')
            raise RuntimeError('boom')
    assert not dist.is_initialized()


def test_a_group_that_existed_before_is_left_alone(tmp_path):
    _join(tmp_path / 'store')
    try:
        with process_group_scope():
            dist.barrier()
        assert dist.is_initialized()
    finally:
        dist.destroy_process_group()
