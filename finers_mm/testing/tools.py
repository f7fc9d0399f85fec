# Copyright (c) finers_mm contributors. All rights reserved.
"""The repository's tools (scripts) as modules, and the files they read, for tests."""
import importlib.util
import os.path as osp
from types import ModuleType

import torch
from mmengine.registry import init_default_scope

from finers_mm.registry import MODELS
from finers_mm.utils.run_config import load_config
from .paths import REPO_ROOT, config_path


def _load_script(path: str, name: str) -> ModuleType:
    """Execute the script at ``path`` as a module named ``name`` (not put in ``sys.modules``)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_tool(*parts: str) -> ModuleType:
    """Load a script of ``tools/`` by its path, as a module (its ``main`` and helpers).

    Args:
        *parts (str): the path below ``tools/``, e.g. ``load_tool('misc', 'export_stage.py')``.

    Returns:
        module: the loaded script (its ``__main__`` block not run).
    """
    return _load_script(osp.join(REPO_ROOT, 'tools', *parts),
                        '_tool_' + '_'.join(part.replace('.py', '') for part in parts))


def load_benchmark(filename: str) -> ModuleType:
    """Load a script of ``benchmarks/`` by its file name, as a module (its ``main`` and helpers).

    A benchmark importing a sibling module needs ``benchmarks/`` on ``sys.path`` first
    (``monkeypatch.syspath_prepend``), as when it runs as a script.

    Args:
        filename (str): e.g. ``'bench_tiny_vision_probe.py'``.

    Returns:
        module: the loaded script (its ``__main__`` block not run).
    """
    return _load_script(osp.join(REPO_ROOT, 'benchmarks', filename),
                        '_bench_' + filename.replace('.py', ''))


def save_stage_checkpoint(path: str, tiny_models: dict, config: str = 'lpr_tiny.py',
                          scale: float = 1.0) -> dict:
    """Write a stage checkpoint as ``tools/train.py`` writes it: the tiny stage's weights and its
    config text.

    Args:
        path (str): the ``.pth`` file to write.
        tiny_models (dict): paths of the tiny models (the stage's ``pretrained``).
        config (str): the stage's config under ``configs/finers/``.
        scale (float): factor on the token embedding, so two checkpoints can differ.

    Returns:
        dict: ``path``, ``config`` (its path) and ``options`` (the config options that rebuild
        the stage), and ``key`` (the scaled weight).
    """
    options = {'model.vlm.pretrained': tiny_models['qwen2_5_vl']}
    init_default_scope('finers_mm')
    cfg = load_config(config_path('finers', config), options)
    state = MODELS.build(cfg.model).state_dict()
    key = next(key for key in state if key.endswith('embed_tokens.weight'))
    state[key] = state[key] * scale
    torch.save(dict(state_dict=state, meta=dict(cfg=cfg.pretty_text, iter=12)), path)
    return dict(path=path, config=config_path('finers', config), options=options, key=key)
