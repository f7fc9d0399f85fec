"""Training strategies for mmengine's FlexibleRunner."""
from .fully_shard import FullyShardStrategy

__all__ = ['FullyShardStrategy']
