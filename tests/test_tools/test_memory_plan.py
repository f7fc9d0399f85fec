# Copyright (c) finers_mm contributors. All rights reserved.
"""tools/analysis_tools/memory_plan.py: the printed budget of the shipped 7B configs with the
shipped public config.json (issue 14's 8.29 B parameters, 83 GB under plain DDP, ~52 GB under
ZeRO-2 on 8 GPUs), the tiny model's count, LoRA, the JSON copy, bad input."""
import json
import os
import os.path as osp

import pytest

from finers_mm.testing import config_path
from finers_mm.testing.tools import load_tool

#: issue 14's setting of gse_qwen7b.py, pinned whatever the config becomes: plain DDP, bf16
#: weights, torch's AdamW
PLAIN_DDP = ['runner_type=Runner', 'strategy=None', 'model.vlm.dtype=bfloat16',
             'optim_wrapper.optimizer.type=AdamW']


@pytest.fixture(scope='module')
def tool():
    return load_tool('analysis_tools', 'memory_plan.py')


def _run(tool, capsys, *argv):
    code = tool.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _model_states(data) -> float:
    return data['totals']['model states']['gb']


def test_gse_7b_plain_ddp_is_issue_14s_83_gb(tool, capsys, tmp_path):
    out_json = tmp_path / 'plan' / 'gse.json'
    code, out, _ = _run(tool, capsys, config_path('finers', 'gse_qwen7b.py'), '--gpus', 8,
                        '--json', out_json, '--cfg-options', *PLAIN_DDP)
    assert code == 0
    assert '8,292,166,656' in out and 'GB = 1e9 bytes' in out
    # says which config.json it counted: the shipped public one (the checkpoint is not on disk)
    assert osp.join('model_configs', 'Qwen2.5-VL-7B-Instruct', 'config.json') in out
    data = json.loads(out_json.read_text())
    assert data['parameters']['total'] == 8_292_166_656
    assert data['settings']['strategy'] == 'DDP'
    assert _model_states(data) == pytest.approx(83, rel=0.01)
    assert data['fits'] is False and data['gpu_memory_gb'] == 80
    assert not [name for name in os.listdir(out_json.parent) if name != 'gse.json']


def test_gse_7b_zero2_on_8_gpus(tool, capsys, tmp_path):
    out_json = tmp_path / 'zero2.json'
    code, out, _ = _run(tool, capsys, config_path('finers', 'gse_qwen7b_deepspeed.py'),
                        '--gpus', 8, '--json', out_json, '--cfg-options',
                        'strategy.zero_optimization.stage=2', 'strategy.bf16.enabled=True',
                        'optim_wrapper.optimizer.type=AdamW')
    assert code == 0 and 'DeepSpeed ZeRO-2' in out
    data = json.loads(out_json.read_text())
    assert _model_states(data) == pytest.approx(16.6 + 6.2 + 12.4 + 16.6, rel=0.01)


def test_lpr_7b_on_4_gpus_and_gpu_memory(tool, capsys, tmp_path):
    out_json = tmp_path / 'lpr.json'
    code, out, _ = _run(tool, capsys, config_path('finers', 'lpr_qwen7b.py'), '--gpus', 4,
                        '--gpu-memory', 1000, '--json', out_json)
    assert code == 0 and 'fits 1000 GB' in out
    data = json.loads(out_json.read_text())
    assert data['settings']['frame'] == [512, 512] and data['settings']['image_patches'] == 1296
    assert data['fits'] is True


def test_lora_config_on_one_gpu(tool, capsys, tmp_path):
    out_json = tmp_path / 'lora.json'
    code, out, _ = _run(tool, capsys, config_path('finers', 'gse_qwen7b_lora.py'), '--gpus', 1,
                        '--gpu-memory', 40, '--json', out_json)
    assert code == 0 and 'LoRA adapters' in out and 'single GPU' in out
    data = json.loads(out_json.read_text())
    params = data['parameters']
    assert params['trainable'] == params['adapters'] > 0
    assert params['total'] == 8_292_166_656 + params['adapters']
    reference = next(c for c in data['components'] if c['name'] == 'KL reference policy')
    assert reference['bytes'] == 0 and 'adapters off' in reference['how']


def test_tiny_config_counts_the_tiny_model(tool, capsys, tmp_path, tiny_models):
    import transformers
    model = transformers.Qwen2_5_VLForConditionalGeneration.from_pretrained(
        tiny_models['qwen2_5_vl'], local_files_only=True)
    out_json = tmp_path / 'tiny.json'
    code, out, _ = _run(tool, capsys, config_path('finers', 'lpr_tiny.py'), '--json', out_json,
                        '--cfg-options', f"model.vlm.pretrained={tiny_models['qwen2_5_vl']}")
    assert code == 0 and '(model.vlm.pretrained)' in out
    data = json.loads(out_json.read_text())
    assert data['parameters']['total'] == sum(p.numel() for p in model.parameters())
    assert data['settings']['pixel_budget_source'].endswith('processor_config.json')


def test_missing_config_json_names_it_and_the_fix(tool, capsys, tmp_path):
    missing = tmp_path / 'Qwen9-VL-1B'
    code, out, err = _run(tool, capsys, config_path('finers', 'gse_qwen7b.py'), '--cfg-options',
                          f'model.vlm.pretrained={missing}')
    assert code == 1 and not out
    assert str(missing / 'config.json') in err and '--model-config' in err
    code, _, err = _run(tool, capsys, config_path('finers', 'gse_qwen7b.py'), '--model-config',
                        tmp_path / 'nowhere.json')
    assert code == 1 and 'nowhere.json' in err


def test_bad_arguments(tool, capsys, tmp_path):
    with pytest.raises(SystemExit) as error:
        tool.main([config_path('finers', 'gse_qwen7b.py'), '--gpus', '0'])
    assert error.value.code == 2
    code, _, err = _run(tool, capsys, tmp_path / 'missing.py')
    assert code == 1 and 'missing.py' in err
    code, _, err = _run(tool, capsys, config_path('finers', 'gse_qwen7b.py'), '--json', tmp_path)
    assert code == 1 and 'give a file name' in err  # refused before any work
