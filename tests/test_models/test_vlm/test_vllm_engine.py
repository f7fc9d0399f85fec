# Copyright (c) finers_mm contributors. All rights reserved.
"""VLLMRolloutEngine without a GPU: the weight names it pushes (our transformers / peft names ->
the checkpoint's, which vLLM's ``load_weights`` reads), the requests it builds (the same text and
image our processor encodes), the sampling parameters and seeds, and the result it returns (padded
and masked as Hugging Face generate's). ``vllm.LLM.generate`` itself needs a CUDA GPU and is not
run here (the tests that would call it skip and say so)."""
import glob
import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from finers_mm.models.vlm import GenerationResult, completion_mask_after_eos
from finers_mm.models.vlm.engines.vllm_engine import VLLMRolloutEngine, import_vllm
from finers_mm.models.vlm.engines.vllm_requests import (build_requests, check_prompt_tokens,
                                                        completions_to_result, eos_ids,
                                                        request_seed, sampling_kwargs,
                                                        unpadded_prompt_ids)
from finers_mm.models.vlm.engines.weight_names import (base_model, checkpoint_names,
                                                       iter_engine_weights, merged_lora,
                                                       policy_name)
from finers_mm.registry import MODELS, TASK_UTILS
from finers_mm.rl.grpo_hook import rollout_seed
from finers_mm.testing.tiny_models import ADAPTER_TYPES

HAS_VLLM = importlib.util.find_spec('vllm') is not None
HAS_CUDA = torch.cuda.is_available()
NO_VLLM = 'vLLM is not installed in this environment (`pip install -e .[vllm]`, GPU machines)'

PROMPTS = ['Please find the tiny red car.', 'Where is the boat? Answer with "A" or "B".']
IMAGES = [np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
          for seed, shape in enumerate([(224, 392, 3), (112, 140, 3)])]


@pytest.fixture(scope='module')
def adapters(model_dirs):
    return {family: MODELS.build(dict(type=ADAPTER_TYPES[family], pretrained=model_dirs[family],
                                      generation=dict(max_new_tokens=6)))
            for family in ADAPTER_TYPES}


@pytest.fixture(scope='module')
def lora_adapter(model_dirs):
    """A Qwen2.5-VL policy with LoRA whose B matrices are non-zero (so merging changes weights)."""
    adapter = MODELS.build(dict(type='Qwen25VLAdapter', pretrained=model_dirs['qwen2_5_vl'],
                                lora=dict(r=4)))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in adapter.model.named_parameters():
            if 'lora_B' in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    return adapter


def _checkpoint_keys(model_dir: str) -> set:
    keys = set()
    for path in glob.glob(osp.join(model_dir, '*.safetensors')):
        with safe_open(path, 'pt') as f:
            keys.update(f.keys())
    return keys


# ------------------------------------------------------------------------------------------------
# Weight names
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('family', list(ADAPTER_TYPES))
def test_every_weight_maps_to_a_name_of_the_saved_checkpoint(adapters, model_dirs, family):
    """transformers 5 names Qwen2/2.5-VL weights model.language_model.* / model.visual.* but
    saves (and vLLM reads) model.* / visual.*; Qwen3-VL keeps its names."""
    model = adapters[family].model
    names = checkpoint_names(model)
    keys = _checkpoint_keys(model_dirs[family])
    assert set(names) == {name for name, _ in model.named_parameters()}
    assert len(set(names.values())) == len(names)  # one-to-one
    assert set(names.values()) == keys
    if family in ('qwen2_vl', 'qwen2_5_vl'):
        assert names['model.language_model.norm.weight'] == 'model.norm.weight'
        assert names['model.visual.patch_embed.proj.weight'] == 'visual.patch_embed.proj.weight'
    assert names['lm_head.weight'] == 'lm_head.weight'


def test_peft_names_lose_the_wrap_and_lora_weights_are_not_pushed():
    assert policy_name('base_model.model.model.language_model.layers.0.self_attn.q_proj.'
                       'base_layer.weight') == (
        'model.language_model.layers.0.self_attn.q_proj.weight', True)
    assert policy_name('base_model.model.model.language_model.layers.0.self_attn.q_proj.'
                       'lora_A.default.weight')[1] is False
    assert policy_name('base_model.model.lm_head.modules_to_save.default.weight') == (
        'lm_head.weight', True)
    assert policy_name('base_model.model.lm_head.original_module.weight')[1] is False
    assert policy_name('model.visual.blocks.0.attn.qkv.weight') == (
        'model.visual.blocks.0.attn.qkv.weight', True)


def test_lora_policy_pushes_merged_weights_under_checkpoint_names(lora_adapter, model_dirs):
    model = lora_adapter.model
    names = checkpoint_names(base_model(model))
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    q_proj = 'model.language_model.layers.0.self_attn.q_proj'
    layer = base_model(model).get_submodule(q_proj)
    delta = (layer.lora_B['default'].weight @ layer.lora_A['default'].weight
             * layer.scaling['default'])
    with merged_lora(model):
        pushed = {name: tensor.clone() for name, tensor in iter_engine_weights(model, names)}
    assert set(pushed) == _checkpoint_keys(model_dirs['qwen2_5_vl'])
    # the LoRA update is in the pushed q_proj, and the policy is unmerged again afterwards
    base_q = before[f'base_model.model.{q_proj}.base_layer.weight']
    torch.testing.assert_close(pushed['model.layers.0.self_attn.q_proj.weight'], base_q + delta)
    assert not torch.equal(pushed['model.layers.0.self_attn.q_proj.weight'], base_q)
    after = dict(model.named_parameters())
    for name, value in before.items():
        torch.testing.assert_close(after[name], value, rtol=0, atol=1e-6)
    # a frozen vision weight is pushed as is
    assert torch.equal(pushed['visual.patch_embed.proj.weight'],
                       before['base_model.model.model.visual.patch_embed.proj.weight'])


def test_a_name_map_of_another_model_is_refused(adapters):
    names = checkpoint_names(adapters['qwen3_vl'].model)
    with pytest.raises(KeyError, match='name map was made for another model'):
        list(iter_engine_weights(adapters['qwen2_5_vl'].model, names))


@pytest.mark.skipif(not HAS_VLLM, reason=NO_VLLM)
@pytest.mark.parametrize('family,vllm_module,vllm_class', [
    ('qwen2_5_vl', 'qwen2_5_vl', 'Qwen2_5_VLForConditionalGeneration'),
    ('qwen2_vl', 'qwen2_vl', 'Qwen2VLForConditionalGeneration'),
    ('qwen3_vl', 'qwen3_vl', 'Qwen3VLForConditionalGeneration')])
def test_vllm_own_mapper_places_every_pushed_name(adapters, family, vllm_module, vllm_class):
    """vLLM's hf_to_vllm_mapper turns each checkpoint name into one of its modules' (the
    language model's, the vision tower's)."""
    module = pytest.importorskip(f'vllm.model_executor.models.{vllm_module}')
    mapper = getattr(module, vllm_class).hf_to_vllm_mapper
    names = checkpoint_names(adapters[family].model).values()
    mapped = mapper.apply_list(list(names))
    assert len(mapped) == len(names)
    assert all(name.startswith(('language_model.', 'visual.')) for name in mapped), mapped


# ------------------------------------------------------------------------------------------------
# Requests
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('family', list(ADAPTER_TYPES))
def test_request_text_and_image_are_what_our_processor_encodes(adapters, family):
    adapter = adapters[family]
    requests = build_requests(adapter, IMAGES, PROMPTS)
    conversations = [[dict(role='user', content=[dict(type='image'),
                                                 dict(type='text', text=prompt)])]
                     for prompt in PROMPTS]
    texts = adapter.processor.apply_chat_template(conversations, add_generation_prompt=True,
                                                  tokenize=False)
    ours = unpadded_prompt_ids(adapter.build_inputs(IMAGES, PROMPTS))
    for request, text, image, ids in zip(requests, texts, IMAGES, ours):
        assert request['prompt'].encode() == text.encode()  # byte for byte
        assert set(request) == {'prompt', 'multi_modal_data'}
        picture = request['multi_modal_data']['image']
        assert isinstance(picture, Image.Image) and picture.mode == 'RGB'
        assert np.array_equal(np.asarray(picture), image)
        # what vLLM's processor call makes of the request: our prompt tokens exactly
        alone = adapter.processor(text=[request['prompt']], images=[np.array(picture)],
                                  return_tensors='pt')
        assert alone['input_ids'][0].tolist() == ids
    check_prompt_tokens(ours, adapter.build_inputs(IMAGES, PROMPTS))


def test_prompt_tokens_of_another_image_budget_are_refused(adapters, model_dirs):
    adapter = adapters['qwen2_5_vl']
    inputs = adapter.build_inputs(IMAGES, PROMPTS)
    smaller = MODELS.build(dict(type='Qwen25VLAdapter', pretrained=model_dirs['qwen2_5_vl'],
                                max_pixels=56 * 56))
    theirs = unpadded_prompt_ids(smaller.build_inputs(IMAGES, PROMPTS))
    with pytest.raises(ValueError, match=r'prompt 0 has \d+ tokens in vLLM .*min/max pixels'):
        check_prompt_tokens(theirs, inputs)


def test_bad_requests_are_refused(adapters):
    with pytest.raises(ValueError, match='as many images as prompts'):
        build_requests(adapters['qwen2_5_vl'], IMAGES[:1], PROMPTS)
    with pytest.raises(ValueError, match='uint8 RGB'):
        build_requests(adapters['qwen2_5_vl'], [IMAGES[0].astype(np.float32)], PROMPTS[:1])


# ------------------------------------------------------------------------------------------------
# Sampling parameters and seeds
# ------------------------------------------------------------------------------------------------

def test_sampling_fields_come_from_the_generation_settings(adapters):
    adapter = adapters['qwen2_5_vl']
    engine = VLLMRolloutEngine()
    hook_sampling = dict(do_sample=True, temperature=0.7, top_p=0.9,
                         num_return_sequences=8, max_new_tokens=32)
    params = engine.sampling_arguments(adapter, 2, seed=123, **hook_sampling)
    assert len(params) == 2
    for kwargs in params:
        assert kwargs['n'] == 8 and kwargs['max_tokens'] == 32
        assert kwargs['temperature'] == 0.7 and kwargs['top_p'] == 0.9
        assert kwargs['top_k'] == -1  # the adapter's top_k=0: off
        assert kwargs['repetition_penalty'] == 1.0 and kwargs['min_p'] == 0.0
        assert kwargs['stop_token_ids'] == eos_ids(adapter)
        vision = adapter.model.generation_config.suppress_tokens
        assert vision and set(kwargs['logit_bias']) == set(vision)
    assert params[0]['seed'] != params[1]['seed']
    greedy = sampling_kwargs(dict(adapter.generation), [7])
    assert greedy['temperature'] == 0.0 and greedy['n'] == 1 and greedy['seed'] is None
    assert sampling_kwargs(dict(do_sample=True, top_k=20, max_new_tokens=4), [7])['top_k'] == 20
    with pytest.raises(ValueError, match=r"\['num_beams'\] have no vLLM equivalent"):
        sampling_kwargs(dict(max_new_tokens=4, num_beams=2), [7])


def test_seeds_are_distinct_per_iteration_rank_and_prompt_and_reproducible():
    n = 8  # vLLM seeds sample j of a request seeded s with s + j
    seen = {}
    for iteration in range(40):
        for rank in range(8):
            seed = rollout_seed(0, iteration, rank, 8)
            for prompt in range(16):
                first = request_seed(seed, prompt)
                assert first == request_seed(rollout_seed(0, iteration, rank, 8), prompt)
                for j in range(n):
                    key = (iteration, rank, prompt)
                    assert seen.setdefault(first + j, key) == key, (first + j, key)
    assert request_seed(rollout_seed(1, 0, 0, 8), 0) != request_seed(rollout_seed(0, 0, 0, 8), 0)


@pytest.mark.skipif(not HAS_VLLM, reason=NO_VLLM)
def test_vllm_accepts_the_sampling_fields(adapters):
    vllm = import_vllm()
    for kwargs in VLLMRolloutEngine().sampling_arguments(
            adapters['qwen2_5_vl'], 2, seed=5, do_sample=True, num_return_sequences=4):
        params = vllm.SamplingParams(**kwargs)
        assert params.n == 4 and params.seed == kwargs['seed']


def test_llm_arguments_colocate_one_engine_per_rank_on_the_local_checkpoint(adapters):
    adapter = adapters['qwen2_5_vl']
    size = adapter.processor.image_processor.size
    arguments = VLLMRolloutEngine(gpu_memory_utilization=0.4, max_model_len=2048,
                                  llm_kwargs=dict(max_num_batched_tokens=4096)
                                  ).llm_arguments(adapter, seed=3)
    assert arguments['model'] == adapter.pretrained and osp.isdir(arguments['model'])
    assert arguments['tensor_parallel_size'] == 1
    assert arguments['distributed_executor_backend'] == 'external_launcher'
    assert arguments['enable_sleep_mode'] is True
    assert arguments['limit_mm_per_prompt'] == {'image': 1}
    assert arguments['mm_processor_kwargs'] == dict(min_pixels=size['shortest_edge'],
                                                    max_pixels=size['longest_edge'])
    assert arguments['dtype'] == 'float32' and arguments['seed'] == 3
    assert arguments['gpu_memory_utilization'] == 0.4 and arguments['max_model_len'] == 2048
    assert arguments['generation_config'] == 'vllm'  # the checkpoint's sampling defaults ignored
    assert arguments['max_num_batched_tokens'] == 4096
    assert VLLMRolloutEngine(sleep_level=0).llm_arguments(adapter)['enable_sleep_mode'] is False


def test_bad_engine_settings_are_refused():
    with pytest.raises(ValueError, match='sleep_level'):
        VLLMRolloutEngine(sleep_level=3)
    with pytest.raises(ValueError, match='gpu_memory_utilization'):
        VLLMRolloutEngine(gpu_memory_utilization=1.5)
    with pytest.raises(ValueError, match='dtype'):
        VLLMRolloutEngine(dtype='int8')


# ------------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------------

def test_completions_become_the_result_hf_generate_gives(adapters):
    adapter = adapters['qwen2_5_vl']
    eos = eos_ids(adapter)
    pad = adapter.model.generation_config.pad_token_id
    tokenizer = adapter.processor.tokenizer
    words = tokenizer('the red car', add_special_tokens=False)['input_ids']
    token_ids = [words + [eos[0]], words[:1] + [eos[0]], words * 2, []]  # 2 prompts x n=2
    inputs = adapter.build_inputs(IMAGES, PROMPTS)
    result = completions_to_result(token_ids, eos, pad, adapter, inputs, n=2)
    assert isinstance(result, GenerationResult) and result.num_return_sequences == 2
    width = len(words) * 2
    assert result.completion_ids.shape == result.completion_mask.shape == (4, width)
    assert result.completion_mask.sum(dim=1).tolist() == [len(words) + 1, 2, width, 0]
    # as Hugging Face generate leaves them: eos kept, pad after it, the mask of the first eos
    expected_mask = completion_mask_after_eos(result.completion_ids, eos)
    assert torch.equal(result.completion_mask[:3], expected_mask[:3])
    assert (result.completion_ids[result.completion_mask == 0] == pad).all()
    assert result.texts[0] == tokenizer.decode(words, skip_special_tokens=True)
    assert result.texts[3] == ''
    assert result.prompt_inputs is inputs
    with pytest.raises(ValueError, match='3 completions for 2 prompts x 2'):
        completions_to_result(token_ids[:3], eos, pad, adapter, inputs, n=2)


# ------------------------------------------------------------------------------------------------
# The engine
# ------------------------------------------------------------------------------------------------

def test_the_engine_is_registered_and_needs_setup(adapters):
    engine = TASK_UTILS.build(dict(type='VLLMRolloutEngine', sleep_level=2))
    assert isinstance(engine, VLLMRolloutEngine) and engine.sleep_level == 2
    with pytest.raises(RuntimeError, match='call setup'):
        engine.generate(adapters['qwen2_5_vl'], IMAGES, PROMPTS)


@pytest.mark.skipif(HAS_VLLM, reason='vLLM is installed: the missing-vLLM message cannot show')
def test_without_vllm_setup_says_how_to_install_it(adapters):
    with pytest.raises(ImportError, match=r'pip install -e \.\[vllm\]'):
        VLLMRolloutEngine().setup(adapters['qwen2_5_vl'])


@pytest.mark.skipif(not (HAS_VLLM and HAS_CUDA),
                    reason='vllm.LLM.generate needs vLLM and a CUDA GPU; this machine has '
                    f'{"no vLLM" if not HAS_VLLM else "no GPU"}')
def test_vllm_generates_what_the_loss_can_score(model_dirs):  # pragma: no cover - GPU only
    adapter = MODELS.build(dict(type='Qwen25VLAdapter', pretrained=model_dirs['qwen2_5_vl'],
                                dtype='bfloat16', device='cuda',
                                generation=dict(max_new_tokens=8)))
    engine = VLLMRolloutEngine(gpu_memory_utilization=0.2, max_model_len=1024,
                               enforce_eager=True)
    engine.setup(adapter, seed=0)
    engine.before_rollout(adapter)
    sampling = dict(do_sample=True, num_return_sequences=2)
    result = engine.generate(adapter, IMAGES, PROMPTS, seed=11, **sampling)
    again = engine.generate(adapter, IMAGES, PROMPTS, seed=11, **sampling)
    engine.after_rollout(adapter)
    assert result.completion_ids.shape[0] == 4 and torch.equal(result.completion_ids,
                                                               again.completion_ids)
    logps = adapter.completion_logprobs(result.prompt_inputs, result.completion_ids.cuda(),
                                        result.completion_mask.cuda())
    assert torch.isfinite(logps).all()


class _StandInLLM:
    """What VLLMRolloutEngine uses of a ``vllm.LLM`` (which cannot run without a GPU): sleep,
    wake_up, reset_prefix_cache and trl's path to the in-process model's ``load_weights``."""

    def __init__(self):
        self.calls, self.loaded = [], {}
        runner = type('ModelRunner', (), {})()
        runner.model = type('Model', (), {'load_weights': self._load})()
        worker = type('Worker', (), {'model_runner': runner})()
        executor = type('Executor', (), {'driver_worker': worker})()
        self.llm_engine = type('Engine', (), {'model_executor': executor})()

    def _load(self, weights):
        for name, tensor in weights:
            self.loaded[name] = tensor.clone()
        self.calls.append('load_weights')

    def sleep(self, level):
        self.calls.append(f'sleep({level})')

    def wake_up(self, tags=None):
        self.calls.append(f'wake_up({",".join(tags)})')

    def reset_prefix_cache(self):
        self.calls.append('reset_prefix_cache')


def _compress(calls):
    """One 'load_weights' for each run of them."""
    return [c for i, c in enumerate(calls) if c != 'load_weights' or i == 0 or calls[i - 1] != c]


@pytest.mark.parametrize('sleep_level', [1, 2])
def test_lifecycle_sleeps_between_rollouts_and_pushes_weights_after_each_step(
        lora_adapter, model_dirs, sleep_level):
    engine = VLLMRolloutEngine(sleep_level=sleep_level)
    llm = _StandInLLM()
    engine.attach(llm, lora_adapter)
    assert llm.calls == [f'sleep({sleep_level})']
    wake = ['wake_up(weights)', 'load_weights', 'reset_prefix_cache', 'wake_up(kv_cache)']
    engine.before_rollout(lora_adapter)  # first rollout: the policy may be a resumed one
    engine.after_rollout(lora_adapter)
    assert _compress(llm.calls[1:]) == wake + [f'sleep({sleep_level})']
    assert set(llm.loaded) == _checkpoint_keys(model_dirs['qwen2_5_vl'])
    del llm.calls[:]
    engine.before_rollout(lora_adapter)  # no optimiser step: level 1 kept the weights
    engine.after_rollout(lora_adapter)
    unchanged = ['wake_up(weights)', 'wake_up(kv_cache)', f'sleep({sleep_level})']
    assert _compress(llm.calls) == (unchanged if sleep_level == 1 else wake + unchanged[-1:])
    del llm.calls[:]
    engine.after_optimizer_step(lora_adapter)
    engine.before_rollout(lora_adapter)
    assert _compress(llm.calls) == wake


def test_without_sleep_the_engine_stays_awake_and_syncs_after_steps(lora_adapter):
    engine = VLLMRolloutEngine(sleep_level=0)
    llm = _StandInLLM()
    engine.attach(llm, lora_adapter)
    engine.before_rollout(lora_adapter)
    engine.after_rollout(lora_adapter)
    engine.before_rollout(lora_adapter)
    engine.after_optimizer_step(lora_adapter)
    engine.before_rollout(lora_adapter)
    assert _compress(llm.calls) == ['load_weights', 'reset_prefix_cache'] * 2
