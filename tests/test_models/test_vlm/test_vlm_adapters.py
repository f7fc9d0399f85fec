# Copyright (c) finers_mm contributors. All rights reserved.
"""Tests of finers_mm.models.vlm: loading from config, batched generation, log-probs, LoRA and the
coordinate conventions, on tiny local Qwen2-VL, Qwen2.5-VL and Qwen3-VL models (CPU)."""
import json
import os.path as osp
import shutil

import numpy as np
import pytest
import torch

from finers_mm.models.vlm import (GenerationResult, Qwen2VLAdapter, Qwen3VLAdapter, Qwen25VLAdapter,
                                  completion_mask_after_eos)
from finers_mm.registry import MODELS
from finers_mm.testing.tiny_models import ADAPTER_TYPES, TINY_MAX_PIXELS, TINY_MIN_PIXELS

PROMPTS = ['Please find the tiny red car.', 'Where is the boat?',
           'Question: what color is the small flag near the bridge? Answer with one word.']
MAX_NEW = 10


def _cfg(model_dirs, family: str, **kwargs) -> dict:
    return dict(type=ADAPTER_TYPES[family], pretrained=model_dirs[family],
                generation=dict(max_new_tokens=MAX_NEW), **kwargs)


@pytest.fixture(scope='module')
def adapters(model_dirs):
    """One adapter per family, built from config dicts (tests must not modify them)."""
    return {family: MODELS.build(_cfg(model_dirs, family)) for family in ADAPTER_TYPES}


def _rgb(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


#: an explorer view, a refiner crop and a third size: the prompts' image token counts differ
IMAGES = [_rgb(1080, 1920, 0), _rgb(512, 512, 1), _rgb(300, 700, 2)]


def _manual_logprobs(adapter, image, prompt, completion_ids):
    """Log-softmax of every vocabulary entry along a completion: (T, V), from a plain forward."""
    inputs = adapter.build_inputs([image], [prompt])
    ids = torch.cat([inputs['input_ids'], completion_ids[None]], dim=1)
    types = torch.cat([inputs['mm_token_type_ids'], torch.zeros_like(completion_ids)[None]], 1)
    with torch.no_grad():
        logits = adapter.model(input_ids=ids, attention_mask=torch.ones_like(ids),
                               mm_token_type_ids=types, pixel_values=inputs['pixel_values'],
                               image_grid_thw=inputs['image_grid_thw']).logits
    prompt_len = inputs['input_ids'].shape[1]
    return logits[0, prompt_len - 1:-1].float().log_softmax(-1)


# ------------------------------------------------------------------------------------------------
# Building
# ------------------------------------------------------------------------------------------------


def test_build_from_config_and_swap_type(adapters, model_dirs):
    expected = dict(qwen2_5_vl=(Qwen25VLAdapter, 'Qwen2_5_VLForConditionalGeneration'),
                    qwen2_vl=(Qwen2VLAdapter, 'Qwen2VLForConditionalGeneration'),
                    qwen3_vl=(Qwen3VLAdapter, 'Qwen3VLForConditionalGeneration'))
    for family, (adapter_cls, model_cls) in expected.items():
        adapter = adapters[family]
        assert type(adapter) is adapter_cls and isinstance(adapter, torch.nn.Module)
        assert type(adapter.model).__name__ == model_cls
        assert type(adapter.processor).__name__.endswith('Processor')
        assert adapter.model.dtype == torch.float32
        assert adapter.model.config._attn_implementation == 'sdpa'
        # Full fine-tune by default: every weight trainable, no checkpointing.
        assert all(p.requires_grad for p in adapter.parameters())
        assert not adapter.model.is_gradient_checkpointing
    # The swap is the `type` line alone (here: the same dir would be the wrong family).
    cfg = _cfg(model_dirs, 'qwen2_5_vl')
    with pytest.raises(ValueError, match=r"Qwen2VLAdapter expects a 'qwen2_vl'.*'qwen2_5_vl'"):
        MODELS.build(dict(cfg, type='Qwen2VLAdapter'))
    swapped = MODELS.build(dict(cfg, type='Qwen2VLAdapter', pretrained=model_dirs['qwen2_vl']))
    assert type(swapped) is Qwen2VLAdapter


def test_missing_pretrained_names_path_and_key(model_dirs, tmp_path):
    missing = str(tmp_path / 'no_such_model')
    with pytest.raises(FileNotFoundError, match=r'no_such_model.*`pretrained`.*does not exist'):
        MODELS.build(dict(type='Qwen25VLAdapter', pretrained=missing))
    with pytest.raises(FileNotFoundError, match=r'`pretrained`.*has no config.json'):
        MODELS.build(dict(type='Qwen25VLAdapter', pretrained=str(tmp_path)))


def test_bad_settings_fail_at_build(model_dirs):
    cfg = _cfg(model_dirs, 'qwen2_vl')
    with pytest.raises(ValueError, match='dtype'):
        MODELS.build(dict(cfg, dtype='float64'))
    with pytest.raises(ValueError, match='unknown generation settings.*max_new_tokenz'):
        MODELS.build(dict(cfg, generation=dict(max_new_tokenz=3)))
    with pytest.raises(ValueError, match='min_pixels <= max_pixels'):
        MODELS.build(dict(cfg, min_pixels=10 * 28 * 28, max_pixels=4 * 28 * 28))
    with pytest.raises(ValueError, match='exclude each other'):
        MODELS.build(dict(cfg, lora=dict(r=2), freeze=True))


def test_dtype_bfloat16_and_eager(model_dirs):
    adapter = MODELS.build(_cfg(model_dirs, 'qwen2_5_vl', dtype='bfloat16',
                                attn_implementation='eager'))
    assert {p.dtype for p in adapter.parameters()} == {torch.bfloat16}
    assert adapter.model.config._attn_implementation == 'eager'
    result = adapter.generate(IMAGES[1:2], PROMPTS[:1], max_new_tokens=3)
    assert result.completion_ids.shape == (1, 3)
    logprobs = adapter.completion_logprobs(result.prompt_inputs, result.completion_ids,
                                           result.completion_mask)
    assert logprobs.dtype == torch.float32 and bool((logprobs < 0).all())


def test_freeze_and_gradient_checkpointing(model_dirs):
    frozen = MODELS.build(_cfg(model_dirs, 'qwen2_vl', freeze=True))
    assert not any(p.requires_grad for p in frozen.parameters())
    frozen.train()
    assert frozen.training and not frozen.model.training

    adapter = MODELS.build(_cfg(model_dirs, 'qwen2_vl', gradient_checkpointing=True))
    assert adapter.model.is_gradient_checkpointing
    adapter.train()
    modes = []
    hook = adapter.model.register_forward_pre_hook(lambda module, args: modes.append(
        module.training))
    result = adapter.generate(IMAGES[:2], PROMPTS[:2], max_new_tokens=4)
    hook.remove()
    assert len(modes) == 4 and not any(modes)  # generation runs in eval mode (KV cache on) ...
    assert adapter.model.training  # ... and restores the training mode
    logprobs = adapter.completion_logprobs(result.prompt_inputs, result.completion_ids,
                                           result.completion_mask)
    logprobs.sum().backward()
    assert adapter.model.lm_head.weight.grad is not None
    assert adapter.model.model.visual.patch_embed.proj.weight.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------------
# Image budget and coordinate conventions
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('family', list(ADAPTER_TYPES))
def test_model_image_size_is_what_the_processor_feeds(adapters, family):
    adapter = adapters[family]
    patch = adapter.processor.image_processor.patch_size
    inputs = adapter.build_inputs(IMAGES, PROMPTS)
    for image, (_, grid_h, grid_w) in zip(IMAGES, inputs['image_grid_thw'].tolist()):
        frame_size = (image.shape[1], image.shape[0])
        assert adapter.model_image_size(frame_size) == (grid_w * patch, grid_h * patch)


def test_image_budget_from_config(adapters, model_dirs):
    assert adapters['qwen2_5_vl'].processor.image_processor.size['longest_edge'] == TINY_MAX_PIXELS
    adapter = MODELS.build(_cfg(model_dirs, 'qwen2_5_vl', max_pixels=64 * 28 * 28))
    size = adapter.processor.image_processor.size
    assert (size['shortest_edge'], size['longest_edge']) == (TINY_MIN_PIXELS, 64 * 28 * 28)
    # smart_resize of 1920x1080 within 64 merged tokens: scale 1 / sqrt(1920 * 1080 / 50176)
    # gives 298.7 x 168.0, floored to multiples of 28.
    assert adapter.model_image_size((1920, 1080)) == (280, 168)
    grid = adapter.build_inputs(IMAGES[:1], PROMPTS[:1])['image_grid_thw'][0].tolist()
    assert grid == [1, 168 // 14, 280 // 14]


def test_qwen2_5_vl_absolute_pixels_of_resized_image(adapters):
    adapter = adapters['qwen2_5_vl']
    # Tiny budget (<= 32 merged 28 px tokens): 1920x1080 -> 7x4 tokens = 196x112 px.
    assert adapter.model_image_size((1920, 1080)) == (196, 112)
    assert adapter.model_image_size((512, 512)) == (140, 140)
    model_box = np.array([49.0, 28.0, 98.0, 112.0])
    expected = model_box * np.array([1920 / 196, 1080 / 112, 1920 / 196, 1080 / 112])
    np.testing.assert_allclose(adapter.model_to_frame(model_box, (1920, 1080)), expected,
                               rtol=1e-6)
    np.testing.assert_allclose(adapter.model_to_frame([[140.0, 70.0]], (512, 512)),
                               [[512.0, 256.0]], rtol=1e-6)
    np.testing.assert_allclose(adapter.frame_to_model([1920.0, 1080.0], (1920, 1080)),
                               [196.0, 112.0], rtol=1e-6)


@pytest.mark.parametrize('family', ['qwen2_vl', 'qwen3_vl'])
def test_relative_0_1000_families(adapters, family):
    adapter = adapters[family]
    for frame_size in ((1920, 1080), (512, 512)):
        w, h = frame_size
        np.testing.assert_allclose(
            adapter.model_to_frame([0.0, 0.0, 1000.0, 1000.0], frame_size), [0, 0, w, h])
        np.testing.assert_allclose(adapter.model_to_frame([[500.0, 250.0]], frame_size),
                                   [[w / 2, h / 4]], rtol=1e-6)
        # Independent of the pixel budget: the resized size plays no part.
        assert adapter.model_coord_size(frame_size) == (1000, 1000)


@pytest.mark.parametrize('family', list(ADAPTER_TYPES))
def test_coordinate_round_trip(adapters, family):
    adapter = adapters[family]
    rng = np.random.default_rng(0)
    for frame_size in ((1920, 1080), (512, 512), (700, 300)):
        boxes = rng.uniform(0, 1, (5, 4)) * np.tile(frame_size, 2)
        points = rng.uniform(0, 1, (2, 3, 2)) * np.array(frame_size)
        for coords in (boxes, points):
            model = adapter.frame_to_model(coords, frame_size)
            assert model.shape == coords.shape and model.dtype == np.float32
            np.testing.assert_allclose(adapter.model_to_frame(model, frame_size), coords,
                                       rtol=1e-6, atol=1e-4)
    assert not np.allclose(adapter.frame_to_model(boxes, (512, 512)), boxes)


@pytest.mark.parametrize('family,frame_size,region_size,expected', [
    # relative 0..1000: 256 / 1920 * 1000 = 133.3, 256 / 1080 * 1000 = 237.0
    ('qwen3_vl', (1920, 1080), 256, (133, 237)),
    ('qwen2_vl', (1920, 1080), 256, (133, 237)),
    ('qwen3_vl', (512, 512), 256, (500, 500)),
    ('qwen3_vl', (3840, 2160), 1, (1, 1)),  # never 0
    # absolute pixels of the model image, under the tiny budget (1920 x 1080 seen at 196 x 112,
    # 512 x 512 at 140 x 140): the square in the model's pixels, 256 * 196 / 1920 = 26.1,
    # 256 * 112 / 1080 = 26.5
    ('qwen2_5_vl', (1920, 1080), 256, (26, 27)),
    ('qwen2_5_vl', (512, 512), 300, (82, 82)),
])
def test_region_size_in_model(adapters, family, frame_size, region_size, expected):
    adapter = adapters[family]
    size = adapter.region_size_in_model(region_size, frame_size)
    assert size == expected and all(type(v) is int for v in size)
    if region_size > 1:
        box = adapter.frame_to_model([0, 0, region_size, region_size], frame_size)
        assert size == (round(float(box[2])), round(float(box[3])))


@pytest.mark.parametrize('max_pixels,frame_size,expected', [
    # the checkpoint's budget: 1920 x 1080 -> 1932 x 1092 (< 2 % a side): the authors' 256
    (12845056, (1920, 1080), (256, 256)),
    (1920 * 1080, (1920, 1080), (256, 256)),  # 1904 x 1064
    # a lowered budget (1280 merged tokens): 1316 x 728, 256 * 1316 / 1920 = 175.5, 172.6
    (1280 * 28 * 28, (1920, 1080), (175, 173)),
])
def test_region_size_in_model_follows_the_pixel_budget(model_dirs, max_pixels, frame_size,
                                                       expected):
    """Qwen2.5-VL in model-image pixels states the region in the pixels it sees once the resize
    moves a side by more than 2 %; in frame pixels (the authors' protocol) never."""
    cfg = dict(_cfg(model_dirs, 'qwen2_5_vl'), max_pixels=max_pixels)
    adapter = MODELS.build(cfg)
    assert adapter.region_size_in_model(256, frame_size) == expected
    authors = MODELS.build(dict(cfg, coordinates='frame'))
    assert authors.region_size_in_model(256, frame_size) == (256, 256)
    tiny_authors = MODELS.build(dict(_cfg(model_dirs, 'qwen2_5_vl'), coordinates='frame'))
    assert tiny_authors.region_size_in_model(256, frame_size) == (256, 256)


# ------------------------------------------------------------------------------------------------
# Prompts and generation
# ------------------------------------------------------------------------------------------------


def test_build_inputs_chat_template_and_left_padding(adapters):
    adapter = adapters['qwen2_5_vl']
    inputs = adapter.build_inputs(IMAGES, PROMPTS)
    tokenizer = adapter.processor.tokenizer
    mask, ids = inputs['attention_mask'], inputs['input_ids']
    assert ids.shape[0] == 3 and inputs['image_grid_thw'].shape == (3, 3)
    assert bool(mask[:, -1].all()) and not bool(mask[:, 0].all())  # left padding
    for row, prompt in enumerate(PROMPTS):
        text = tokenizer.decode(ids[row][mask[row].bool()])
        assert text.startswith('<|im_start|>system\n')
        assert f'<|vision_end|>{prompt}<|im_end|>\n<|im_start|>assistant\n' in text
        assert bool((ids[row][~mask[row].bool()] == tokenizer.pad_token_id).all())
    with pytest.raises(ValueError, match='as many images as prompts'):
        adapter.build_inputs(IMAGES[:2], PROMPTS)
    with pytest.raises(ValueError, match=r'\(H, W, 3\) uint8'):
        adapter.build_inputs([IMAGES[0].astype(np.float32)], PROMPTS[:1])


@pytest.mark.parametrize('family', list(ADAPTER_TYPES))
def test_batched_greedy_equals_single(adapters, family):
    adapter = adapters[family]
    batch = adapter.generate(IMAGES, PROMPTS)
    assert isinstance(batch, GenerationResult) and batch.num_return_sequences == 1
    assert batch.completion_ids.shape == (3, MAX_NEW) and len(batch.texts) == 3
    for i in range(3):
        single = adapter.generate(IMAGES[i:i + 1], PROMPTS[i:i + 1])
        assert torch.equal(single.completion_ids[0], batch.completion_ids[i])
        assert single.texts[0] == batch.texts[i]
    # Stop on a token of prompt 0's completion: rows end at different lengths and are padded.
    stop = int(batch.completion_ids[0, 2])
    pad = adapter.model.generation_config.pad_token_id
    stopped = adapter.generate(IMAGES, PROMPTS, eos_token_id=stop)
    for i in range(3):
        row, mask = stopped.completion_ids[i], stopped.completion_mask[i].bool()
        hits = (batch.completion_ids[i] == stop).nonzero()
        length = int(hits[0]) + 1 if len(hits) else MAX_NEW
        assert int(mask.sum()) == length and bool(mask[:length].all())
        assert torch.equal(row[:length], batch.completion_ids[i, :length])
        assert bool((row[length:] == pad).all())
        assert stopped.texts[i] == adapter.processor.decode(row[:length], skip_special_tokens=True)
    assert stopped.completion_mask[0].sum() == 3


def test_sampling_is_prompt_major(adapters):
    adapter = adapters['qwen2_5_vl']
    greedy = adapter.generate(IMAGES, PROMPTS)
    # top_k=1 sampling is greedy: sample j of prompt i must equal prompt i's greedy completion.
    samples = adapter.generate(IMAGES, PROMPTS, do_sample=True, top_k=1, num_return_sequences=2)
    assert samples.num_return_sequences == 2 and len(samples.texts) == 6
    assert torch.equal(samples.completion_ids, greedy.completion_ids.repeat_interleave(2, dim=0))
    # Real sampling: the config's temperature 1 / top_p 1 / top_k off give distinct samples.
    torch.manual_seed(0)
    sampled = adapter.generate(IMAGES, PROMPTS, do_sample=True, num_return_sequences=2)
    assert sampled.completion_ids.shape == (6, MAX_NEW)
    assert not torch.equal(sampled.completion_ids[0], sampled.completion_ids[1])
    torch.manual_seed(0)
    again = adapter.generate(IMAGES, PROMPTS, do_sample=True, num_return_sequences=2)
    assert torch.equal(sampled.completion_ids, again.completion_ids)
    with pytest.raises(ValueError, match='num_return_sequences'):
        adapter.generate(IMAGES[:1], PROMPTS[:1], num_return_sequences=2)  # greedy


def test_checkpoint_sampling_defaults_do_not_leak(adapters, model_dirs, tmp_path):
    # A checkpoint shipping sampling defaults (Qwen2.5-VL-Instruct: top_k=1, top_p=0.001,
    # repetition_penalty=1.05) must sample exactly like the same weights without them.
    local = str(tmp_path / 'qwen2_5_vl')
    shutil.copytree(model_dirs['qwen2_5_vl'], local)
    gen_file = osp.join(local, 'generation_config.json')
    with open(gen_file) as f:
        saved = json.load(f)
    with open(gen_file, 'w') as f:
        json.dump(dict(saved, do_sample=True, top_k=1, top_p=0.001, temperature=0.1,
                       repetition_penalty=1.05, min_p=0.9), f)
    adapter = MODELS.build(dict(type='Qwen25VLAdapter', pretrained=local,
                                generation=dict(max_new_tokens=MAX_NEW)))
    config = adapter.model.generation_config
    assert config.eos_token_id == saved['eos_token_id']
    assert config.pad_token_id == saved['pad_token_id']
    assert config.repetition_penalty is None and config.min_p is None and config.top_k is None
    results = []
    for model in (adapter, adapters['qwen2_5_vl']):
        torch.manual_seed(0)
        results.append(model.generate(IMAGES, PROMPTS, do_sample=True,
                                      num_return_sequences=2).completion_ids)
    assert torch.equal(*results)


# ------------------------------------------------------------------------------------------------
# Log-probs
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('family', list(ADAPTER_TYPES))
def test_greedy_completion_logprobs(adapters, family):
    adapter = adapters[family]
    batch = adapter.generate(IMAGES, PROMPTS)
    stop = int(batch.completion_ids[1, 3])
    result = adapter.generate(IMAGES, PROMPTS, eos_token_id=stop)  # padded completions
    with torch.no_grad():
        logprobs = adapter.completion_logprobs(result.prompt_inputs, result.completion_ids,
                                               result.completion_mask)
    assert logprobs.shape == result.completion_ids.shape and logprobs.dtype == torch.float32
    assert bool((logprobs[result.completion_mask == 0] == 0).all())
    for i in range(3):
        mask = result.completion_mask[i].bool()
        tokens = result.completion_ids[i][mask]
        manual = _manual_logprobs(adapter, IMAGES[i], PROMPTS[i], tokens)
        # Greedy consistency: every token is the most likely one at its step.
        np.testing.assert_allclose(logprobs[i][mask], manual.max(-1).values, atol=1e-5)
        np.testing.assert_allclose(logprobs[i][mask],
                                   manual.gather(-1, tokens[:, None])[:, 0], atol=1e-5)


@pytest.mark.parametrize('family', ['qwen2_5_vl', 'qwen3_vl'])
def test_repeated_prompts_give_the_same_logprobs(adapters, family):
    adapter = adapters[family]
    torch.manual_seed(1)
    samples = adapter.generate(IMAGES, PROMPTS, do_sample=True, num_return_sequences=2)
    with torch.no_grad():
        together = adapter.completion_logprobs(samples.prompt_inputs, samples.completion_ids,
                                               samples.completion_mask)
        for i in range(3):
            rows = slice(2 * i, 2 * i + 2)
            single_prompt = adapter.build_inputs(IMAGES[i:i + 1], PROMPTS[i:i + 1])
            alone = adapter.completion_logprobs(single_prompt, samples.completion_ids[rows],
                                                samples.completion_mask[rows])
            np.testing.assert_allclose(together[rows], alone, atol=1e-5)
            for j in range(2):
                manual = _manual_logprobs(adapter, IMAGES[i], PROMPTS[i],
                                          samples.completion_ids[2 * i + j])
                picked = manual.gather(-1, samples.completion_ids[2 * i + j, :, None])[:, 0]
                np.testing.assert_allclose(together[2 * i + j], picked, atol=1e-5)


def test_completion_logprobs_temperature_and_shape_check(adapters):
    adapter = adapters['qwen2_vl']
    result = adapter.generate(IMAGES[:2], PROMPTS[:2])
    with torch.no_grad():
        plain = adapter.completion_logprobs(result.prompt_inputs, result.completion_ids,
                                            result.completion_mask)
        cooled = adapter.completion_logprobs(result.prompt_inputs, result.completion_ids,
                                             result.completion_mask, temperature=0.5)
    assert bool((cooled > plain).all())  # the greedy token gains mass at a lower temperature
    with pytest.raises(ValueError, match='do not match 2 prompts'):
        adapter.completion_logprobs(result.prompt_inputs, result.completion_ids[:1],
                                    result.completion_mask[:1])


def test_completion_mask_after_eos():
    ids = torch.tensor([[5, 7, 2, 9, 2], [5, 5, 5, 5, 5], [3, 5, 5, 4, 1]])
    expected = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    assert torch.equal(completion_mask_after_eos(ids, [2, 4]), expected)


# ------------------------------------------------------------------------------------------------
# LoRA and the reference policy
# ------------------------------------------------------------------------------------------------


def test_lora_and_reference_policy(adapters, model_dirs):
    from peft import PeftModel

    base = adapters['qwen2_5_vl']
    with pytest.raises(RuntimeError, match='needs `lora`'):
        with base.reference_policy():
            pass
    adapter = MODELS.build(_cfg(model_dirs, 'qwen2_5_vl',
                                lora=dict(r=4, alpha=8, dropout=0.0)))
    assert isinstance(adapter.model, PeftModel) and adapter.use_lora
    trainable = [n for n, p in adapter.named_parameters() if p.requires_grad]
    assert trainable and all('lora_' in n for n in trainable)
    assert all('language_model' in n for n in trainable)  # default: not the vision tower
    num_layers = base.model.config.get_text_config().num_hidden_layers
    assert len(trainable) == num_layers * 7 * 2  # 7 linear layers per block, A and B
    # mmengine's init_weights must keep the loaded weights (and LoRA's zero B).
    state = {k: v.clone() for k, v in adapter.state_dict().items()}
    adapter.init_weights()
    assert all(torch.equal(v, state[k]) for k, v in adapter.state_dict().items())

    inputs = base.build_inputs(IMAGES[:2], PROMPTS[:2])
    with torch.no_grad():
        base_logits = base.model(**inputs).logits
        for name, param in adapter.model.named_parameters():
            if 'lora_B' in name:
                param.add_(0.05)
        lora_logits = adapter.model(**inputs).logits
        with adapter.reference_policy():
            reference_logits = adapter.model(**inputs).logits
        after = adapter.model(**inputs).logits
    assert torch.equal(reference_logits, base_logits)
    assert not torch.allclose(lora_logits, base_logits, atol=1e-4)
    assert torch.equal(after, lora_logits)  # the adapter is back on after the context

    # Log-probs and generation go through the LoRA model, the reference through the base.
    result = adapter.generate(IMAGES[:2], PROMPTS[:2])
    with torch.no_grad():
        with adapter.reference_policy():
            reference = adapter.completion_logprobs(result.prompt_inputs, result.completion_ids,
                                                    result.completion_mask)
        policy = adapter.completion_logprobs(result.prompt_inputs, result.completion_ids,
                                             result.completion_mask)
        from_base = base.completion_logprobs(result.prompt_inputs, result.completion_ids,
                                             result.completion_mask)
    assert torch.equal(reference, from_base) and not torch.allclose(policy, reference)
    custom = MODELS.build(_cfg(model_dirs, 'qwen2_vl',
                               lora=dict(r=2, target_modules=['q_proj', 'v_proj'])))
    names = [n for n, p in custom.named_parameters() if p.requires_grad]
    assert names and all(('q_proj' in n or 'v_proj' in n) and 'lora_' in n for n in names)
