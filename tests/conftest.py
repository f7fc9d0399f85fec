# Copyright (c) finers_mm contributors. All rights reserved.
"""Shared pytest fixtures. Tests run on CPU, offline, with tiny models built locally once per session."""
import os

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')

import pytest  # noqa: E402


@pytest.fixture(scope='session')
def tiny_models(tmp_path_factory):
    """Paths of the tiny local models (see :func:`finers_mm.utils.tiny_models.build_tiny_models`)."""
    from finers_mm.utils.tiny_models import build_tiny_models
    return build_tiny_models(str(tmp_path_factory.mktemp('tiny_models')), seed=0)


@pytest.fixture(scope='session', autouse=True)
def _single_torch_thread():
    """One intra-op thread: the tiny models run ~100x faster than with 2 threads on a loaded 2-core box."""
    import torch
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
