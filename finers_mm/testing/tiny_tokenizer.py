# Copyright (c) finers_mm contributors. All rights reserved.
"""The tiny Qwen tokenizer: a byte-level BPE trained locally on a fixed corpus, Qwen's special
tokens and chat template (used by :mod:`finers_mm.testing.tiny_models`)."""
import json
import random
from typing import TYPE_CHECKING, List

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

#: Qwen2/Qwen2.5-VL special tokens in the released tokenizers' order (ids follow the BPE vocab).
QWEN_SPECIAL_TOKENS = (
    '<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|object_ref_start|>', '<|object_ref_end|>',
    '<|box_start|>', '<|box_end|>', '<|quad_start|>', '<|quad_end|>', '<|vision_start|>',
    '<|vision_end|>', '<|vision_pad|>', '<|image_pad|>', '<|video_pad|>')

#: The Qwen2-VL / Qwen2.5-VL chat template (text, image and video content items).
QWEN_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

TOKENIZER_VOCAB_SIZE = 1024

_WORDS = (
    'the a an of in on at to is are was were be this that these those there here with without and '
    'or not no yes which what where who how many much color colour shape size small tiny large '
    'big left right top bottom middle center near far above below behind front next between '
    'inside outside image picture photo region area object objects car person people tree '
    'building window door sign road boat ship plane bird dog cat flag light pole roof wall field '
    'water river bridge tower truck bus bicycle motorcycle bag bottle clock red green blue yellow '
    'white black gray brown orange pink purple first second third one two three four five answer '
    'question option options please find locate segment output give provide reason think step '
    'carefully coordinates bounding box point points format json found response the object is '
    'located visible small target high resolution A B C D').split()

_FINERS_TEMPLATES = (
    'Please find "{q}" in the image. Output the thinking process in <think> </think> and the '
    'final answer in <answer> </answer> tags. Output the bbox and two points inside the object in '
    'JSON format.',
    'Question: {q} Options: A. {w1} B. {w2} C. {w3} D. {w4}. Answer with the option letter.',
    '<think>The {w1} is {w2} the {w3}, so the target is small and near the {w4}.</think>'
    '<answer>{{"bbox": [{b0}, {b1}, {b2}, {b3}], "points_1": [{p0}, {p1}], '
    '"points_2": [{p2},{p3}], "response": "The object is found."}}</answer>',
    '<think>I look at the {w1} region first.</think>'
    '<answer>{{"bbox": [{b0}, {b1}, {b2}, {b3}], "response": "{w1} {w2}"}}</answer>',
    '<answer>{{"bbox": [{b0},{b1},{b2},{b3}], "points_1": [{p0},{p1}], "points_2": [{p2},{p3}], '
    '"response": "{L}"}}</answer>',
)


def _tokenizer_corpus(num_lines: int = 600) -> List[str]:
    """Generate the fixed training corpus of the tiny tokenizer.

    The corpus is independent of the model seed so every build shares one tokenizer.

    Args:
        num_lines (int): Number of generated lines (besides digits and the fixed tokens).

    Returns:
        list[str]: The corpus lines.
    """
    rng = random.Random(20240517)
    lines = [' '.join(str(i) for i in range(100)), ' '.join(_WORDS),
             '<think> </think> <answer> </answer>',
             '{"bbox": [], "points_1": [], "points_2": [], "response": ""}',
             'system\nYou are a helpful assistant.\nuser\nassistant\n'] * 2
    for _ in range(num_lines):
        template = rng.choice(_FINERS_TEMPLATES)
        words = rng.sample(_WORDS, 4)
        question = ' '.join(rng.choice(_WORDS) for _ in range(rng.randint(3, 10)))
        nums = [rng.randint(0, 3840) for _ in range(8)]
        lines.append(template.format(
            q=question, w1=words[0], w2=words[1], w3=words[2], w4=words[3], L=rng.choice('ABCD'),
            b0=nums[0], b1=nums[1], b2=nums[2], b3=nums[3], p0=nums[4], p1=nums[5], p2=nums[6],
            p3=nums[7]))
    return lines


def build_tiny_tokenizer(vocab_size: int = TOKENIZER_VOCAB_SIZE) -> 'PreTrainedTokenizerFast':
    """Train a tiny Qwen2 byte-level BPE tokenizer locally.

    The BPE is trained with ``tokenizers`` using Qwen2's own pre-tokenisation (its split regex,
    then byte-level bytes without prefix space, so e.g. every digit is one token); the learned
    vocabulary and merges are then wrapped in transformers' ``Qwen2Tokenizer`` (a
    ``PreTrainedTokenizerFast``), the class of the released checkpoints. Qwen's special tokens
    follow the BPE vocabulary, in Qwen's order.

    Args:
        vocab_size (int): Upper bound of the BPE vocabulary (the small corpus may give fewer).

    Returns:
        transformers.Qwen2Tokenizer: The tokenizer; eos is ``<|im_end|>`` and pad
        ``<|endoftext|>`` as in the released instruct models; ``image_token``, ``video_token``,
        ``vision_start_token`` and ``vision_end_token`` are named attributes.
    """
    from tokenizers import (AddedToken, Regex, Tokenizer, models, normalizers, pre_tokenizers,
                            trainers)
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior='isolated', invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(_tokenizer_corpus(), trainer=trainer)
    trained = json.loads(bpe.to_str())['model']
    vocab = dict(trained['vocab'])
    vocab.update({tok: len(trained['vocab']) + i for i, tok in enumerate(QWEN_SPECIAL_TOKENS)})
    # tokenizers serialises merges as [a, b] pairs (older versions: "a b" strings).
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(' ')) for m in trained['merges']]
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        eos_token='<|im_end|>',
        pad_token='<|endoftext|>',
        model_max_length=131072,
        padding_side='right',  # as released; batched generation must pad left itself
        clean_up_tokenization_spaces=False,
        extra_special_tokens=dict(
            image_token='<|image_pad|>', video_token='<|video_pad|>',
            vision_start_token='<|vision_start|>', vision_end_token='<|vision_end|>'),
    )
    tokenizer.add_tokens(
        [AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIAL_TOKENS],
        special_tokens=True)
    return tokenizer
