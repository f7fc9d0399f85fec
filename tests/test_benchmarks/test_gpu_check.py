# Copyright (c) finers_mm contributors. All rights reserved.
"""benchmarks/gpu_check.py: ``--tiny`` runs a GRPO iteration of the 7B GSE config end to end on CPU
and writes every number; the HBM-bound and extrapolation arithmetic (gpu_check_math.py); the
reduced-depth 7B checkpoint keeps the real vocabulary and widths with the tiny tokenizer's ids.
Timings are recorded, never asserted."""
import importlib.util
import json
import os
import os.path as osp
import sys
from unittest import mock

import pytest
import torch

from finers_mm.testing import REPO_ROOT

BENCHMARKS = osp.join(REPO_ROOT, 'benchmarks')
PHASES = ('rollout', 'reference', 'policy_forward', 'policy_backward', 'optimizer_step')


@pytest.fixture
def bench(monkeypatch):
    """Import a module of benchmarks/ as the scripts see it (their folder on sys.path)."""
    monkeypatch.syspath_prepend(BENCHMARKS)
    loaded = []

    def load(name):
        spec = importlib.util.spec_from_file_location(name, osp.join(BENCHMARKS, f'{name}.py'))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        loaded.append(name)
        spec.loader.exec_module(module)
        return module

    yield load
    for name in loaded:
        sys.modules.pop(name, None)


@pytest.fixture
def isolated_process():
    """Undo what the script does to its process (a one-rank ``pytorch`` launch: RANK,
    WORLD_SIZE, ... in the environment, a process group; one torch thread), so that later tests
    do not infer a launcher from a leftover WORLD_SIZE."""
    threads = torch.get_num_threads()
    had_group = torch.distributed.is_initialized()
    with mock.patch.dict(os.environ):
        yield
    if torch.distributed.is_initialized() and not had_group:
        torch.distributed.destroy_process_group()
    torch.set_num_threads(threads)


def test_tiny_run_writes_every_phase_and_number(bench, tiny_models, tmp_path, capsys,
                                                isolated_process):
    out = tmp_path / 'gpu_check.json'
    n, tokens = 2, 4
    result = bench('gpu_check').main([
        '--tiny', '--model-config', osp.join(tiny_models['qwen2_5_vl'], 'config.json'),
        '--iters', '1', '--new-tokens', str(tokens), '--num-generations', str(n),
        '--out', str(out)])
    with open(out) as f:
        written = json.load(f)
    assert written == json.loads(json.dumps(result))
    assert written['device']['kind'] == 'cpu' and written['device']['bandwidth'] > 0
    model = written['model']
    assert (model['layers'], model['full_layers'], model['dtype']) == (1, 2, 'bfloat16')
    run = written['run']
    assert run['config'].endswith('gse_qwen7b.py') and run['iterations'] == 1
    # every phase ran once, the update is the sum of its three phases
    assert len(written['iterations']) == 1
    for iteration in written['iterations']:
        assert set(iteration['phases']) == set(PHASES)
        for phase in iteration['phases'].values():
            assert phase['calls'] == 1 and phase['seconds'] > 0 and phase['peak_bytes'] is None
        assert iteration['update']['seconds'] == pytest.approx(sum(
            iteration['phases'][p]['seconds'] for p in PHASES[2:]))
    hf = written['rollout']['hf']
    assert (hf['prompts'], hf['rows'], hf['sequences']) == (1, n, n)
    assert hf['decode_steps'] == tokens - 1 and hf['max_completion_length'] == tokens
    assert hf['completion_tokens'] == n * tokens
    assert 0 < hf['image_tokens'] < hf['prompt_tokens']
    assert hf['decode_tokens_per_s'] > 0 and hf['prefill_seconds'] > 0
    assert hf['hbm_bound_tokens_per_s'] > hf['hbm_bound_tokens_per_s_full'] > 0
    assert hf['weight_bytes_per_step_full'] > hf['weight_bytes_per_step'] > 0
    assert written['rollout']['vllm']['status'] in ('not installed', 'needs a GPU')
    assert written['logged']['completion_length'] == [float(tokens)]
    # the memory plan at 1 and 2 layers: more layers, more memory; nothing measured off a GPU
    for row in written['memory']['rows'].values():
        assert row['plan_full'] > row['plan'] > 0
        assert row['measured'] is None and row['extrapolated_full'] is None
    assert set(written['memory']['plans']) == {'reduced', 'full'}
    printed = capsys.readouterr().out
    for title in ('GRPO iteration by phase', 'rollout decode', 'memory vs'):
        assert title in printed


def test_hbm_bound_arithmetic(bench):
    m = bench('gpu_check_math')
    # Qwen2.5-VL-7B's cache: 2 (K, V) x 28 layers x 4 heads x 128 x 2 bytes
    assert m.kv_bytes_per_token(28, 4, 128, 2) == 57344
    assert m.mean_decode_context(100, 10) == 105
    with pytest.raises(ValueError, match='at least 2'):
        m.mean_decode_context(100, 1)
    assert m.decode_bytes_per_step(1e9, 1000, 8, 105) == 1e9 + 8 * 105 * 1000
    # 8 sequences, each step reads 1e9 weight bytes + 8 x 105 x 1000 cache bytes at 2 TB/s
    assert m.hbm_bound_tokens_per_s(1e9, 1000, 8, 100, 10, 2e12) == pytest.approx(
        8 * 2e12 / (1e9 + 840000))
    # weights only: one sequence per step reads them all
    assert m.hbm_bound_tokens_per_s(2e9, 0, 1, 0, 2, 4e12) == pytest.approx(2000.0)
    with pytest.raises(ValueError):
        m.hbm_bound_tokens_per_s(1e9, 0, 8, 10, 10, 0.0)
    named = [('model.visual.blocks.0.attn.qkv.weight', 100),
             ('model.language_model.embed_tokens.weight', 1000),
             ('model.language_model.layers.0.mlp.up_proj.weight', 10),
             ('model.language_model.norm.weight', 1), ('lm_head.weight', 500)]
    # decoder layers, norm and lm_head, plus one embedding row (hidden 4 x 2 bytes) per sequence
    assert m.decode_weight_bytes(named, sequences=3, hidden=4, element_bytes=2) == 511 + 24
    assert m.extrapolate_to_depth(10.0, 4.0, 30.0) == 36.0
    assert m.fraction(1.0, 4.0) == 0.25 and m.fraction(None, 4.0) is None
    assert m.fraction(1.0, 0.0) is None
    totals = m.phase_totals({'a': dict(seconds=1.0, peak_bytes=5),
                             'b': dict(seconds=2.0, peak_bytes=7)}, ['a', 'b', 'absent'])
    assert totals == dict(seconds=3.0, peak_bytes=7)


@pytest.mark.parametrize('name,bandwidth', [
    ('NVIDIA H100 80GB HBM3', 3.35e12), ('NVIDIA H100 PCIe', 2.0e12), ('NVIDIA H100 NVL', 3.9e12),
    ('NVIDIA H200', 4.8e12), ('NVIDIA A100-SXM4-80GB', 2.0e12), ('NVIDIA A100 80GB PCIe', 2.0e12),
    ('NVIDIA A100-SXM4-40GB', None), ('NVIDIA L4', None)])
def test_card_bandwidth_by_name(bench, name, bandwidth):
    assert bench('gpu_check_math').card_bandwidth(name) == bandwidth


def test_reduced_7b_keeps_width_and_vocabulary_with_the_tiny_tokenizer(bench):
    from transformers import Qwen2_5_VLForConditionalGeneration

    from finers_mm.testing.tiny_tokenizer import build_tiny_tokenizer
    build = bench('gpu_check_build')
    tokenizer = build_tiny_tokenizer()
    config, full = build.reduced_config(build.QWEN25_VL_7B_CONFIG, 4, tokenizer)
    assert full == 28
    with torch.device('meta'):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    language = model.model.language_model
    assert len(language.layers) == 4 and len(model.model.visual.blocks) == 32
    assert tuple(language.embed_tokens.weight.shape) == (152064, 3584)
    assert tuple(model.lm_head.weight.shape) == (152064, 3584)
    # the image placeholder the processor writes is the one the model looks for
    assert config.image_token_id == tokenizer.convert_tokens_to_ids('<|image_pad|>')
    assert config.text_config.eos_token_id == tokenizer.convert_tokens_to_ids('<|im_end|>')
    with pytest.raises(ValueError, match='between 1 and 28'):
        build.reduced_config(build.QWEN25_VL_7B_CONFIG, 29, tokenizer)


def test_region_is_shifted_into_the_image(bench):
    import numpy as np
    region_around = bench('gpu_check_build').region_around
    assert region_around(np.array([100., 100., 110., 120.]), 256, 1920, 1080) == [
        0.0, 0.0, 256.0, 256.0]
    assert region_around(np.array([1900., 1000., 1910., 1070.]), 256, 1920, 1080) == [
        1664.0, 824.0, 1920.0, 1080.0]
    assert region_around(np.array([900., 500., 1000., 600.]), 256, 1920, 1080) == [
        822.0, 422.0, 1078.0, 678.0]
