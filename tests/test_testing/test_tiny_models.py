# Copyright (c) finers_mm contributors. All rights reserved.
"""Tests of finers_mm.testing.tiny_models: offline load, generate, SAM, determinism and cache."""
import json
import os
import os.path as osp
import runpy
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from finers_mm.models.mask_heads.sam_builder import TINY_SAM_CONFIG, build_sam_from_config
from finers_mm.testing import REPO_ROOT
from finers_mm.testing.tiny_models import MANIFEST_NAME, TINY_MAX_PIXELS, build_tiny_models
from finers_mm.testing.tiny_tokenizer import QWEN_SPECIAL_TOKENS

FAMILIES = ('qwen2_5_vl', 'qwen2_vl')
VLM_CLASSES = {'qwen2_5_vl': 'Qwen2_5_VLForConditionalGeneration',
               'qwen2_vl': 'Qwen2VLForConditionalGeneration'}
PROCESSOR_CLASSES = {'qwen2_5_vl': 'Qwen2_5_VLProcessor', 'qwen2_vl': 'Qwen2VLProcessor'}
FINERS_ANSWER = ('<think>The red car is left of the tree.</think>'
                 '<answer>{"bbox": [12, 34, 56, 78], "points_1": [1, 2], "points_2": [3,4], '
                 '"response": "The object is found."}</answer>')


def _rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _read(path: str) -> bytes:
    with open(path, 'rb') as f:
        return f.read()


def _weights(model_dir: str):
    from safetensors.torch import load_file
    files = sorted(f for f in os.listdir(model_dir) if f.endswith('.safetensors'))
    assert files, f'no safetensors in {model_dir}'
    state = {}
    for f in files:
        state.update(load_file(osp.join(model_dir, f)))
    return state


def _non_weight_files(model_dir: str):
    return {f: _read(osp.join(model_dir, f))
            for f in sorted(os.listdir(model_dir)) if not f.endswith('.safetensors')}


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_paths(tiny_models):
    assert set(tiny_models) == {'qwen2_5_vl', 'qwen2_vl', 'sam', 'sam_config'}
    assert all(osp.isabs(p) for p in tiny_models.values())
    for family in FAMILIES:
        assert osp.isfile(osp.join(tiny_models[family], 'config.json'))
    assert osp.isfile(tiny_models['sam']) and tiny_models['sam'].endswith('.pth')
    assert osp.isfile(tiny_models['sam_config']) and tiny_models['sam_config'].endswith('.json')
    # The two VLMs share one tokenizer.
    assert (_read(osp.join(tiny_models['qwen2_5_vl'], 'tokenizer.json')) ==
            _read(osp.join(tiny_models['qwen2_vl'], 'tokenizer.json')))


@pytest.mark.parametrize('family', FAMILIES)
def test_vlm_offline_load_and_generate(tiny_models, family):
    import transformers
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model_dir = tiny_models[family]
    processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    assert type(processor).__name__ == PROCESSOR_CLASSES[family]
    model_cls = getattr(transformers, VLM_CLASSES[family])
    model = model_cls.from_pretrained(model_dir, local_files_only=True).eval()
    auto_model = AutoModelForImageTextToText.from_pretrained(model_dir, local_files_only=True)
    assert type(auto_model) is model_cls
    _assert_same_state(model.state_dict(), auto_model.state_dict())
    cfg = model.config.get_text_config()
    head_dim = getattr(cfg, 'head_dim', None) or cfg.hidden_size // cfg.num_attention_heads
    assert sum(cfg.rope_parameters['mrope_section']) * 2 == head_dim
    assert processor.tokenizer.convert_tokens_to_ids('<|image_pad|>') == model.config.image_token_id

    question = 'Please find the tiny red car.'
    image = Image.fromarray(_rgb(120, 200))
    text = processor.apply_chat_template(
        [{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': question}]}],
        add_generation_prompt=True, tokenize=False)
    assert text.startswith('<|im_start|>system\n')
    assert f'<|vision_start|><|image_pad|><|vision_end|>{question}<|im_end|>' in text
    assert text.endswith('<|im_start|>assistant\n')
    inputs = processor(text=[text], images=[image], return_tensors='pt')
    # The one-call path (image inside the message) gives the same model inputs.
    direct = processor.apply_chat_template(
        [{'role': 'user', 'content': [{'type': 'image', 'image': image},
                                      {'type': 'text', 'text': question}]}],
        add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors='pt')
    for key in ('input_ids', 'pixel_values', 'image_grid_thw'):
        assert torch.equal(inputs[key], direct[key]), key

    grid = inputs['image_grid_thw']
    assert grid.shape == (1, 3)
    merge = processor.image_processor.merge_size
    num_image_tokens = int(grid.prod()) // merge**2
    assert int((inputs['input_ids'] == model.config.image_token_id).sum()) == num_image_tokens
    assert inputs['pixel_values'].shape[0] == int(grid.prod())

    max_new = 6
    gen_kwargs = dict(max_new_tokens=max_new, min_new_tokens=max_new, do_sample=False)
    with torch.no_grad():
        out = model.generate(**inputs, **gen_kwargs)
    prompt_len = inputs['input_ids'].shape[1]
    assert out.shape == (1, prompt_len + max_new)
    assert torch.equal(out[:, :prompt_len], inputs['input_ids'])
    assert int(out.max()) < len(processor.tokenizer)
    decoded = processor.batch_decode(out[:, prompt_len:], skip_special_tokens=False)
    assert len(decoded) == 1 and isinstance(decoded[0], str) and decoded[0]
    # Greedy decoding is reproducible.
    with torch.no_grad():
        assert torch.equal(out, model.generate(**inputs, **gen_kwargs))


def test_processor_pixel_budget(tiny_models):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_models['qwen2_5_vl'], local_files_only=True)
    image = Image.fromarray(_rgb(1080, 1920))
    t, h, w = processor.image_processor(images=[image], return_tensors='pt')['image_grid_thw'][0]
    merged_tokens = int(t * h * w) // 4
    assert 4 <= merged_tokens <= TINY_MAX_PIXELS // (28 * 28)
    assert w > h  # aspect ratio kept


def test_tokenizer(tiny_models):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = AutoTokenizer.from_pretrained(tiny_models['qwen2_5_vl'], local_files_only=True)
    assert isinstance(tok, PreTrainedTokenizerFast)
    ids = tok(FINERS_ANSWER, add_special_tokens=False)['input_ids']
    assert tok.decode(ids) == FINERS_ANSWER
    # Qwen splits digits one by one.
    assert tok.tokenize('3840') == ['3', '8', '4', '0']
    for special in QWEN_SPECIAL_TOKENS:
        assert (tok(special, add_special_tokens=False)['input_ids'] ==
                [tok.convert_tokens_to_ids(special)])
    assert tok.eos_token == '<|im_end|>' and tok.pad_token == '<|endoftext|>'
    chat_ids = tok('<|im_start|>hi<|im_end|>')['input_ids']
    assert tok.decode(chat_ids, skip_special_tokens=True) == 'hi'
    # Byte-level: any unicode round-trips.
    text = 'naïve 小 ✓'
    assert tok.decode(tok(text, add_special_tokens=False)['input_ids']) == text


def test_determinism_and_seed_rebuild(tiny_models, tmp_path):
    other = build_tiny_models(str(tmp_path), seed=0)
    for family in FAMILIES:
        _assert_same_state(_weights(tiny_models[family]), _weights(other[family]))
        assert _non_weight_files(tiny_models[family]) == _non_weight_files(other[family])
    sam_a = torch.load(tiny_models['sam'], weights_only=True)
    _assert_same_state(sam_a, torch.load(other['sam'], weights_only=True))

    # Another seed in the same dir rebuilds: new weights, same tokenizer.
    reseeded = build_tiny_models(str(tmp_path), seed=1)
    assert reseeded == other
    with open(osp.join(str(tmp_path), MANIFEST_NAME)) as f:
        assert json.load(f)['seed'] == 1
    for family in FAMILIES:
        a, b = _weights(tiny_models[family]), _weights(reseeded[family])
        assert a.keys() == b.keys()
        random_keys = [k for k in a if a[k].numel() > 1 and a[k].std() > 0]
        assert random_keys and not any(torch.equal(a[k], b[k]) for k in random_keys)
        assert (_read(osp.join(tiny_models[family], 'tokenizer.json')) ==
                _read(osp.join(reseeded[family], 'tokenizer.json')))
    sam_b = torch.load(reseeded['sam'], weights_only=True)
    key = 'image_encoder.patch_embed.proj.weight'
    assert not torch.equal(sam_a[key], sam_b[key])


def test_build_leaves_global_rng_untouched(tmp_path):
    import finers_mm.testing.tiny_models as tm

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tm._build_tiny_sam(str(tmp_path), seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_cache_hit_does_not_rebuild(tiny_models, monkeypatch):
    import finers_mm.testing.tiny_models as tm

    out_dir = osp.dirname(tiny_models['sam'])
    manifest = osp.join(out_dir, MANIFEST_NAME)
    stamp = os.stat(manifest).st_mtime_ns

    def _fail(*args, **kwargs):
        raise AssertionError('cache hit must not rebuild')

    monkeypatch.setattr(tm, 'build_tiny_tokenizer', _fail)
    monkeypatch.setattr(tm, '_build_tiny_sam', _fail)
    assert build_tiny_models(out_dir, seed=0) == tiny_models
    assert os.stat(manifest).st_mtime_ns == stamp


def test_incomplete_build_is_rebuilt(tmp_path):
    import finers_mm.testing.tiny_models as tm

    out_dir = str(tmp_path)
    manifest = osp.join(out_dir, MANIFEST_NAME)
    tm._build_tiny_sam(out_dir, seed=0)  # an interrupted build: no manifest, no VLMs
    built = build_tiny_models(out_dir, seed=0)
    assert osp.isfile(osp.join(built['qwen2_vl'], 'config.json'))
    with open(manifest) as f:
        files = json.load(f)['files']
    assert 'qwen2_vl/model.safetensors' in files and 'sam_tiny.pth' in files

    # A manifest whose listed files are not all there is no cache hit.
    os.remove(osp.join(built['qwen2_5_vl'], 'model.safetensors'))
    assert build_tiny_models(out_dir, seed=0) == built
    assert osp.isfile(osp.join(built['qwen2_5_vl'], 'model.safetensors'))

    # Nor is an old-format or corrupt manifest.
    for content in ('{"version": 1, "seed": 0}', '{not json'):
        with open(manifest, 'w') as f:
            f.write(content)
        build_tiny_models(out_dir, seed=0)
        with open(manifest) as f:
            assert json.load(f)['files'] == files


def test_sam_predictor(tiny_models):
    from segment_anything import SamPredictor
    from segment_anything.modeling import Sam

    with open(tiny_models['sam_config']) as f:
        config = json.load(f)
    assert config == TINY_SAM_CONFIG
    sam = build_sam_from_config(config, checkpoint=tiny_models['sam'])
    assert isinstance(sam, Sam) and sam.image_encoder.img_size == 256
    _assert_same_state(sam.state_dict(), torch.load(tiny_models['sam'], weights_only=True))

    height, width = 90, 160
    predictor = SamPredictor(sam)
    predictor.set_image(_rgb(height, width, seed=1))
    masks, scores, low_res = predictor.predict(
        point_coords=np.array([[40.0, 30.0], [60.0, 50.0]]), point_labels=np.array([1, 1]),
        box=np.array([20.0, 10.0, 100.0, 70.0]), multimask_output=True)
    assert masks.shape == (3, height, width) and masks.dtype == bool
    assert scores.shape == (3, )
    assert low_res.shape == (3, 64, 64)


def test_sam_config_errors():
    with pytest.raises(KeyError, match='encoder_dpth'):
        build_sam_from_config(dict(encoder_dpth=3))
    with pytest.raises(ValueError, match='multiple of patch_size'):
        build_sam_from_config(dict(img_size=250))


def test_cli_prints_paths(tiny_models, monkeypatch, capsys):
    out_dir = osp.dirname(tiny_models['sam'])
    script = osp.join(REPO_ROOT, 'tools', 'misc', 'build_tiny_models.py')
    monkeypatch.setattr(sys, 'argv', [script, out_dir, '--seed', '0'])
    runpy.run_path(script, run_name='__main__')
    printed = capsys.readouterr().out
    assert json.loads(printed[:printed.rindex('}') + 1]) == tiny_models
