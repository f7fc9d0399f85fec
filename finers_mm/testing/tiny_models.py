# Copyright (c) finers_mm contributors. All rights reserved.
"""Tiny local models: the embedded default for tests, examples and smoke runs.

Nothing here downloads anything. :func:`build_tiny_models` writes, into one directory,

* a tiny **Qwen2.5-VL** and a tiny **Qwen2-VL** in Hugging Face format (random weights, a
  byte-level BPE tokenizer trained locally with ``tokenizers``, Qwen's special tokens and chat
  template, image and video processors with a small pixel budget), both loadable with
  ``from_pretrained(dir, local_files_only=True)``, also through the ``Auto*`` classes;
* a tiny segment-anything :class:`~segment_anything.modeling.Sam` (256 px input) as a ``state_dict``
  checkpoint plus a json build config, rebuilt with
  :func:`~finers_mm.models.mask_heads.sam_builder.build_sam_from_config`.

The build is deterministic in ``seed`` (same seed, same tensors and tokenizer files) and cached: a
manifest written last, atomically, marks a complete build, and a second call returns it at once.
"""
import copy
import json
import os
import os.path as osp
import random
import shutil
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import torch

from finers_mm.models.mask_heads.sam_builder import TINY_SAM_CONFIG, build_sam_from_config
from finers_mm.utils.fileio import write_atomic

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerFast, ProcessorMixin

#: Bump when the layout or content of a build changes, so stale caches are rebuilt.
BUILD_VERSION = 1
MANIFEST_NAME = 'tiny_models_manifest.json'

# ------------------------------------------------------------------------------------------------
# Tokenizer
# ------------------------------------------------------------------------------------------------

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


# ------------------------------------------------------------------------------------------------
# Qwen-VL models
# ------------------------------------------------------------------------------------------------

#: Text decoder shared by both tiny VLMs. head_dim = hidden_size / num_attention_heads = 16, so
#: the mrope_section (temporal, height, width) must sum to head_dim / 2 = 8 (Qwen: 16/24/24).
TINY_TEXT_CONFIG: Dict[str, Any] = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    max_window_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    hidden_act='silu',
    max_position_embeddings=32768,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
    rope_parameters=dict(rope_type='default', rope_theta=1000000.0, mrope_section=[2, 3, 3]),
)

#: Pixel budget of the tiny processors: an image is resized to between 4 and 32 merged 28x28
#: tokens (a 1920x1080 image becomes 4x7 merged tokens, i.e. 112 vision patches of 14x14).
TINY_MIN_PIXELS = 4 * 28 * 28
TINY_MAX_PIXELS = 32 * 28 * 28

#: Per-family differences: classes (by transformers name) and the vision tower config.
_VLM_FAMILIES: Dict[str, Dict[str, Any]] = {
    'qwen2_5_vl': dict(
        config_cls='Qwen2_5_VLConfig',
        model_cls='Qwen2_5_VLForConditionalGeneration',
        processor_cls='Qwen2_5_VLProcessor',
        vision_config=dict(
            depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
            patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
            fullatt_block_indexes=[1], in_channels=3, hidden_act='silu'),
    ),
    'qwen2_vl': dict(
        config_cls='Qwen2VLConfig',
        model_cls='Qwen2VLForConditionalGeneration',
        processor_cls='Qwen2VLProcessor',
        vision_config=dict(
            depth=2, embed_dim=32, mlp_ratio=2, num_heads=2, hidden_size=64, patch_size=14,
            spatial_merge_size=2, temporal_patch_size=2, in_channels=3, hidden_act='quick_gelu'),
    ),
}


def _build_qwen_vl_processor(family: str,
                             tokenizer: 'PreTrainedTokenizerFast') -> 'ProcessorMixin':
    """Assemble a family's processor: tokenizer, image and video processors, chat template.

    Args:
        family (str): Key of :data:`_VLM_FAMILIES`.
        tokenizer (PreTrainedTokenizerFast): The tiny tokenizer.

    Returns:
        transformers.ProcessorMixin: A ``Qwen2_5_VLProcessor`` or ``Qwen2VLProcessor``.
    """
    import transformers
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    size = dict(shortest_edge=TINY_MIN_PIXELS, longest_edge=TINY_MAX_PIXELS)
    patching = dict(patch_size=14, temporal_patch_size=2, merge_size=2)
    image_processor = Qwen2VLImageProcessor(size=size, **patching)
    video_processor = Qwen2VLVideoProcessor(size=size, **patching)
    processor_cls = getattr(transformers, _VLM_FAMILIES[family]['processor_cls'])
    return processor_cls(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
        chat_template=QWEN_VL_CHAT_TEMPLATE)


def _build_qwen_vl_model(family: str, tokenizer: 'PreTrainedTokenizerFast',
                         seed: int) -> 'PreTrainedModel':
    """Build a randomly initialised tiny VLM of a family, deterministically in ``seed``.

    Args:
        family (str): Key of :data:`_VLM_FAMILIES`.
        tokenizer (PreTrainedTokenizerFast): The tiny tokenizer (vocabulary, special token ids).
        seed (int): Seed of the weight initialisation; the global RNG state is left untouched.

    Returns:
        transformers.PreTrainedModel: The model in float32 and eval mode, with a greedy
        generation config stopping at ``<|im_end|>`` or ``<|endoftext|>``.
    """
    import transformers
    from transformers import GenerationConfig

    spec = _VLM_FAMILIES[family]
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in QWEN_SPECIAL_TOKENS}
    text_config = dict(copy.deepcopy(TINY_TEXT_CONFIG), vocab_size=len(tokenizer),
                       bos_token_id=ids['<|endoftext|>'], eos_token_id=ids['<|im_end|>'],
                       pad_token_id=ids['<|endoftext|>'])
    config = getattr(transformers, spec['config_cls'])(
        text_config=text_config,
        vision_config=copy.deepcopy(spec['vision_config']),
        image_token_id=ids['<|image_pad|>'],
        video_token_id=ids['<|video_pad|>'],
        vision_start_token_id=ids['<|vision_start|>'],
        vision_end_token_id=ids['<|vision_end|>'],
        tie_word_embeddings=TINY_TEXT_CONFIG['tie_word_embeddings'],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = getattr(transformers, spec['model_cls'])(config).float().eval()
    model.generation_config = GenerationConfig(
        bos_token_id=ids['<|endoftext|>'],
        eos_token_id=[ids['<|im_end|>'], ids['<|endoftext|>']],
        pad_token_id=ids['<|endoftext|>'],
        do_sample=False,
    )
    return model


#: the adapter type of each tiny family (Qwen3-VL from :func:`build_tiny_qwen3_vl`)
ADAPTER_TYPES = dict(qwen2_5_vl='Qwen25VLAdapter', qwen2_vl='Qwen2VLAdapter',
                     qwen3_vl='Qwen3VLAdapter')


def build_tiny_qwen3_vl(out_dir: str, seed: int = 0) -> str:
    """Write a tiny Qwen3-VL (16 px patches, 0-1000 relative coordinates) to ``out_dir``.

    Not part of :func:`build_tiny_models` (only the adapter tests need it); not cached.

    Args:
        out_dir (str): the Hugging Face model directory to write (model and processor).
        seed (int): seed of the random weights; the global RNG state is left untouched.

    Returns:
        str: ``out_dir``.
    """
    import transformers
    from transformers import GenerationConfig, Qwen2VLImageProcessor, Qwen3VLProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    tokenizer = build_tiny_tokenizer()
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in QWEN_SPECIAL_TOKENS}
    size = dict(shortest_edge=4 * 32 * 32, longest_edge=32 * 32 * 32)
    patching = dict(patch_size=16, temporal_patch_size=2, merge_size=2)
    Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size, **patching), tokenizer=tokenizer,
        video_processor=Qwen3VLVideoProcessor(size=size, **patching),
        chat_template=QWEN_VL_CHAT_TEMPLATE).save_pretrained(out_dir)
    text_config = {k: TINY_TEXT_CONFIG[k] for k in (
        'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads',
        'num_key_value_heads')}
    config = transformers.Qwen3VLConfig(
        text_config=dict(text_config, vocab_size=len(tokenizer), head_dim=16,
                         rope_parameters=dict(rope_type='default', rope_theta=5e5,
                                              mrope_section=[2, 3, 3], mrope_interleaved=True),
                         pad_token_id=ids['<|endoftext|>'], eos_token_id=ids['<|im_end|>']),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                           out_hidden_size=64, num_position_embeddings=64,
                           deepstack_visual_indexes=[0], **{
                               k: v for k, v in patching.items() if k != 'merge_size'}),
        image_token_id=ids['<|image_pad|>'], video_token_id=ids['<|video_pad|>'],
        vision_start_token_id=ids['<|vision_start|>'], vision_end_token_id=ids['<|vision_end|>'])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.Qwen3VLForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[ids['<|im_end|>'], ids['<|endoftext|>']], pad_token_id=ids['<|endoftext|>'])
    model.save_pretrained(out_dir)
    return out_dir


# ------------------------------------------------------------------------------------------------
# segment-anything
# ------------------------------------------------------------------------------------------------

def _build_tiny_sam(out_dir: str, seed: int) -> Dict[str, str]:
    """Write the tiny SAM checkpoint and its build config.

    Args:
        out_dir (str): Directory to write ``sam_tiny.pth`` and ``sam_tiny.json`` into.
        seed (int): Seed of the weight initialisation; the global RNG state is left untouched.

    Returns:
        dict[str, str]: ``sam`` (checkpoint path) and ``sam_config`` (json path).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = build_sam_from_config(TINY_SAM_CONFIG)
    ckpt, cfg_path = osp.join(out_dir, 'sam_tiny.pth'), osp.join(out_dir, 'sam_tiny.json')
    torch.save(sam.state_dict(), ckpt)
    with open(cfg_path, 'w', encoding='utf-8') as f:
        json.dump(TINY_SAM_CONFIG, f, indent=2)
    return dict(sam=ckpt, sam_config=cfg_path)


# ------------------------------------------------------------------------------------------------
# The whole build
# ------------------------------------------------------------------------------------------------

#: Relative locations of the build products inside ``out_dir``.
_LAYOUT = dict(qwen2_5_vl='qwen2_5_vl', qwen2_vl='qwen2_vl', sam='sam_tiny.pth',
               sam_config='sam_tiny.json')


def _read_manifest(out_dir: str) -> Optional[Dict[str, Any]]:
    """Read the manifest of a previous build.

    Args:
        out_dir (str): The build directory.

    Returns:
        dict | None: The manifest, or None if absent or unreadable.
    """
    try:
        with open(osp.join(out_dir, MANIFEST_NAME), encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _product_files(out_dir: str) -> List[str]:
    """List the files of the build products, relative to ``out_dir`` and sorted.

    Args:
        out_dir (str): The build directory.

    Returns:
        list[str]: Relative paths of every file under the product paths of :data:`_LAYOUT`.
    """
    files = []
    for rel in _LAYOUT.values():
        path = osp.join(out_dir, rel)
        if osp.isdir(path):
            files += [osp.relpath(osp.join(root, name), out_dir)
                      for root, _, names in os.walk(path) for name in names]
        elif osp.isfile(path):
            files.append(rel)
    return sorted(files)


def _is_complete(out_dir: str, manifest: Optional[Dict[str, Any]],
                 expected: Dict[str, Any]) -> bool:
    """Whether ``out_dir`` holds a complete build matching ``expected``.

    Args:
        out_dir (str): The build directory.
        manifest (dict, optional): Its manifest as read by :func:`_read_manifest`.
        expected (dict): Version, seed and layout the build must have.

    Returns:
        bool: True if the manifest matches and every file it lists exists.
    """
    if not isinstance(manifest, dict) or any(manifest.get(k) != v for k, v in expected.items()):
        return False
    files = manifest.get('files')
    return (isinstance(files, list) and len(files) > 0
            and all(isinstance(f, str) and osp.isfile(osp.join(out_dir, f)) for f in files))


def build_tiny_models(out_dir: str, seed: int = 0) -> Dict[str, str]:
    """Build (or reuse) the tiny Qwen2.5-VL, Qwen2-VL and SAM models in ``out_dir``.

    A complete build is marked by a manifest written last and atomically; when ``out_dir`` already
    holds one for the same ``seed`` and :data:`BUILD_VERSION`, the paths are returned without
    rebuilding. Concurrent callers (e.g. pytest-xdist workers) are serialised by a file lock.

    Args:
        out_dir (str): Output directory (created if missing).
        seed (int): Seed of all random weights. Defaults to 0. The tokenizer does not depend on it.

    Returns:
        dict[str, str]: Absolute paths: ``qwen2_5_vl`` and ``qwen2_vl`` (Hugging Face model dirs
        with processor), ``sam`` (``state_dict`` checkpoint) and ``sam_config`` (json for
        :func:`build_sam_from_config`).
    """
    from filelock import FileLock

    out_dir = osp.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    paths = {key: osp.join(out_dir, rel) for key, rel in _LAYOUT.items()}
    expected = dict(version=BUILD_VERSION, seed=int(seed), layout=_LAYOUT)
    with FileLock(osp.join(out_dir, '.tiny_models.lock')):
        manifest = _read_manifest(out_dir)
        if _is_complete(out_dir, manifest, expected):
            return paths
        # Invalidate first, so an interrupted rebuild is never mistaken for a complete one.
        if osp.exists(osp.join(out_dir, MANIFEST_NAME)):
            os.remove(osp.join(out_dir, MANIFEST_NAME))
        from transformers.utils import logging as hf_logging
        progress_bar = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            tokenizer = build_tiny_tokenizer()
            for family in _VLM_FAMILIES:
                model_dir = paths[family]
                if osp.isdir(model_dir):
                    shutil.rmtree(model_dir)
                _build_qwen_vl_model(family, tokenizer, seed).save_pretrained(model_dir)
                _build_qwen_vl_processor(family, tokenizer).save_pretrained(model_dir)
            _build_tiny_sam(out_dir, seed)
        finally:
            if progress_bar:
                hf_logging.enable_progress_bar()
        write_atomic(osp.join(out_dir, MANIFEST_NAME),
                     json.dumps(dict(expected, files=_product_files(out_dir)), indent=2))
    return paths
