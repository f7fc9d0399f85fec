# Copyright (c) finers_mm contributors. All rights reserved.
"""The interface every VLM adapter honours (BaseVLMAdapter): the family-specific prompt methods
are declared there and implemented by every registered family; ``select_prompts`` cuts a batch of
encoded prompts the way the rollout scores them in chunks."""
import numpy as np
import pytest
import torch

from finers_mm.models.vlm import BaseVLMAdapter
from finers_mm.registry import MODELS
from finers_mm.testing.tiny_models import ADAPTER_TYPES

PROMPTS = ['Please find the tiny red car.', 'Where is the boat?',
           'Question: what color is the small flag near the bridge? Answer with one word.']
#: three sizes: the prompts' image token counts (and patch rows) differ
IMAGES = [np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
          for seed, shape in enumerate([(224, 392, 3), (112, 112, 3), (168, 308, 3)])]


class _NoChunksAdapter(BaseVLMAdapter):
    """A family that implements only what BaseVLMAdapter's constructor needs."""
    model_class = 'Qwen2_5_VLForConditionalGeneration'
    model_type = 'qwen2_5_vl'
    relative_scale = 1000


@pytest.fixture(scope='module')
def adapters(model_dirs):
    return {family: MODELS.build(dict(type=ADAPTER_TYPES[family], pretrained=model_dirs[family],
                                      generation=dict(max_new_tokens=6)))
            for family in ADAPTER_TYPES}


def test_family_methods_are_declared_on_the_base_with_a_clear_error(model_dirs):
    adapter = _NoChunksAdapter(pretrained=model_dirs['qwen2_5_vl'])
    inputs = adapter.build_inputs(IMAGES[:2], PROMPTS[:2])
    with pytest.raises(NotImplementedError, match='_NoChunksAdapter must implement select_prompts'):
        adapter.select_prompts(inputs, 0, 1)
    with pytest.raises(NotImplementedError, match='must implement repeat_prompt_inputs'):
        adapter.repeat_prompt_inputs(inputs, 2)
    with pytest.raises(NotImplementedError, match='must implement model_image_size'):
        adapter.model_image_size((64, 64))
    for family in ADAPTER_TYPES.values():
        cls = MODELS.get(family)
        for name in ('select_prompts', 'repeat_prompt_inputs', 'model_image_size'):
            assert getattr(cls, name) is not getattr(BaseVLMAdapter, name), (family, name)


@pytest.mark.parametrize('family', list(ADAPTER_TYPES))
def test_select_prompts_is_the_chunk_encoded_alone(adapters, family):
    adapter = adapters[family]
    batch = adapter.build_inputs(IMAGES, PROMPTS)
    chunk = adapter.select_prompts(batch, 1, 3)
    alone = adapter.build_inputs(IMAGES[1:3], PROMPTS[1:3])
    assert set(chunk.keys()) == set(batch.keys())
    assert torch.equal(chunk['image_grid_thw'], alone['image_grid_thw'])
    assert torch.equal(chunk['pixel_values'], alone['pixel_values'])
    assert torch.equal(chunk['input_ids'], batch['input_ids'][1:3])  # the batch's padding kept
    for row in range(2):  # the same tokens as encoded alone, behind the batch's padding
        mask = chunk['attention_mask'][row].bool()
        kept = alone['attention_mask'][row].bool()
        assert torch.equal(chunk['input_ids'][row][mask], alone['input_ids'][row][kept])


@pytest.mark.parametrize('family', ['qwen2_5_vl', 'qwen3_vl'])
def test_log_probs_of_chunks_equal_those_of_the_batch(adapters, family):
    adapter = adapters[family]
    torch.manual_seed(0)
    result = adapter.generate(IMAGES, PROMPTS, do_sample=True, num_return_sequences=2)
    with torch.no_grad():
        whole = adapter.completion_logprobs(result.prompt_inputs, result.completion_ids,
                                            result.completion_mask)
        chunks = torch.cat([
            adapter.completion_logprobs(adapter.select_prompts(result.prompt_inputs, i, i + 1),
                                        result.completion_ids[2 * i:2 * i + 2],
                                        result.completion_mask[2 * i:2 * i + 2])
            for i in range(3)])
    np.testing.assert_allclose(chunks, whole, atol=1e-5)
