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
import math
import os
import os.path as osp
import shutil
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import torch

from finers_mm.models.mask_heads.sam_builder import TINY_SAM_CONFIG, build_sam_from_config
from finers_mm.utils.fileio import write_atomic
from .tiny_tokenizer import QWEN_SPECIAL_TOKENS, QWEN_VL_CHAT_TEMPLATE, build_tiny_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerFast, ProcessorMixin

#: Bump when the layout or content of a build changes, so stale caches are rebuilt.
BUILD_VERSION = 1
MANIFEST_NAME = 'tiny_models_manifest.json'

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


def _build_qwen_vl_processor(family: str, tokenizer: 'PreTrainedTokenizerFast',
                             min_pixels: int = TINY_MIN_PIXELS,
                             max_pixels: int = TINY_MAX_PIXELS) -> 'ProcessorMixin':
    """Assemble a family's processor: tokenizer, image and video processors, chat template.

    Args:
        family (str): Key of :data:`_VLM_FAMILIES`.
        tokenizer (PreTrainedTokenizerFast): The tiny tokenizer.
        min_pixels (int): smallest image budget in pixels. Defaults to :data:`TINY_MIN_PIXELS`.
        max_pixels (int): largest image budget in pixels. Defaults to :data:`TINY_MAX_PIXELS`.

    Returns:
        transformers.ProcessorMixin: A ``Qwen2_5_VLProcessor`` or ``Qwen2VLProcessor``.
    """
    import transformers
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    size = dict(shortest_edge=min_pixels, longest_edge=max_pixels)
    patching = dict(patch_size=14, temporal_patch_size=2, merge_size=2)
    image_processor = Qwen2VLImageProcessor(size=size, **patching)
    video_processor = Qwen2VLVideoProcessor(size=size, **patching)
    processor_cls = getattr(transformers, _VLM_FAMILIES[family]['processor_cls'])
    return processor_cls(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
        chat_template=QWEN_VL_CHAT_TEMPLATE)


def _build_qwen_vl_model(family: str, tokenizer: 'PreTrainedTokenizerFast', seed: int,
                         text_config: Optional[Dict[str, Any]] = None,
                         vision_config: Optional[Dict[str, Any]] = None) -> 'PreTrainedModel':
    """Build a randomly initialised tiny VLM of a family, deterministically in ``seed``.

    Args:
        family (str): Key of :data:`_VLM_FAMILIES`.
        tokenizer (PreTrainedTokenizerFast): The tiny tokenizer (vocabulary, special token ids).
        seed (int): Seed of the weight initialisation; the global RNG state is left untouched.
        text_config (dict, optional): the text decoder; default :data:`TINY_TEXT_CONFIG`.
        vision_config (dict, optional): the vision tower; default the family's.

    Returns:
        transformers.PreTrainedModel: The model in float32 and eval mode, with a greedy
        generation config stopping at ``<|im_end|>`` or ``<|endoftext|>``.
    """
    import transformers
    from transformers import GenerationConfig

    spec = _VLM_FAMILIES[family]
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in QWEN_SPECIAL_TOKENS}
    text_config = copy.deepcopy(TINY_TEXT_CONFIG if text_config is None else text_config)
    text_config = dict(text_config, vocab_size=len(tokenizer),
                       bos_token_id=ids['<|endoftext|>'], eos_token_id=ids['<|im_end|>'],
                       pad_token_id=ids['<|endoftext|>'])
    config = getattr(transformers, spec['config_cls'])(
        text_config=text_config,
        vision_config=copy.deepcopy(spec['vision_config'] if vision_config is None
                                    else vision_config),
        image_token_id=ids['<|image_pad|>'],
        video_token_id=ids['<|video_pad|>'],
        vision_start_token_id=ids['<|vision_start|>'],
        vision_end_token_id=ids['<|vision_end|>'],
        tie_word_embeddings=text_config['tie_word_embeddings'],
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


#: The quick start's larger tiny Qwen2.5-VL (:func:`build_tiny_locator`): wide enough to learn where
#: a small object is within minutes on a CPU core. head_dim 32, so mrope_section sums to 16.
LOCATOR_TEXT_CONFIG: Dict[str, Any] = dict(
    TINY_TEXT_CONFIG, hidden_size=128, intermediate_size=256, num_hidden_layers=4,
    max_window_layers=4, num_attention_heads=4, num_key_value_heads=2,
    rope_parameters=dict(rope_type='default', rope_theta=1000000.0, mrope_section=[4, 6, 6]))
LOCATOR_VISION_CONFIG: Dict[str, Any] = dict(
    _VLM_FAMILIES['qwen2_5_vl']['vision_config'], hidden_size=64, intermediate_size=128,
    num_heads=2, out_hidden_size=128)
#: its default pixel budget: up to 12 x 12 merged tokens (a 336 x 336 view, 14-px patches), so a
#: 256 x 256 refiner crop is seen at 252 x 252 and a 960 x 540 explorer frame at 448 x 252
LOCATOR_MIN_PIXELS = 4 * 28 * 28
LOCATOR_MAX_PIXELS = 144 * 28 * 28


def build_tiny_locator(out_dir: str, seed: int = 0, min_pixels: int = LOCATOR_MIN_PIXELS,
                       max_pixels: int = LOCATOR_MAX_PIXELS) -> str:
    """Write the quick start's larger tiny Qwen2.5-VL (random weights) to ``out_dir``.

    The default tiny models stay the tests' (:func:`build_tiny_models`); this one has a 128-wide,
    4-layer decoder, a 64-wide vision tower and a pixel budget under which a small object of a
    960 x 540 synthetic image covers a patch or more (:data:`LOCATOR_TEXT_CONFIG`,
    :data:`LOCATOR_VISION_CONFIG`, :data:`LOCATOR_MAX_PIXELS`). Deterministic in ``seed``; not
    cached (about 1 s).

    Args:
        out_dir (str): the Hugging Face model directory to write (model and processor).
        seed (int): seed of the random weights; the global RNG state is left untouched.
        min_pixels (int): smallest image budget in pixels.
        max_pixels (int): largest image budget in pixels.

    Returns:
        str: ``out_dir``.
    """
    tokenizer = build_tiny_tokenizer()
    _build_qwen_vl_model('qwen2_5_vl', tokenizer, seed, LOCATOR_TEXT_CONFIG,
                         LOCATOR_VISION_CONFIG).save_pretrained(out_dir)
    _build_qwen_vl_processor('qwen2_5_vl', tokenizer, min_pixels,
                             max_pixels).save_pretrained(out_dir)
    return out_dir


#: the adapter type of each tiny family (Qwen3-VL from :func:`build_tiny_qwen3_vl`)
ADAPTER_TYPES = dict(qwen2_5_vl='Qwen25VLAdapter', qwen2_vl='Qwen2VLAdapter',
                     qwen3_vl='Qwen3VLAdapter')


#: the tests' tiny Qwen3-VL (:func:`build_tiny_qwen3_vl`): head_dim 16, an 8 x 8 position table
_QWEN3_TEXT: Dict[str, Any] = dict(
    {k: TINY_TEXT_CONFIG[k] for k in ('hidden_size', 'intermediate_size', 'num_hidden_layers',
                                      'num_attention_heads', 'num_key_value_heads')},
    head_dim=16, rope_parameters=dict(rope_type='default', rope_theta=5e5,
                                      mrope_section=[2, 3, 3], mrope_interleaved=True))
_QWEN3_VISION: Dict[str, Any] = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                                     out_hidden_size=64, num_position_embeddings=64,
                                     deepstack_visual_indexes=[0])
#: the locating Qwen3-VL (:func:`build_tiny_qwen3_locator`): the locator's decoder (4 layers of
#: 128, head_dim 32), a 64-wide tower with a 16 x 16 absolute position table
QWEN3_LOCATOR_TEXT: Dict[str, Any] = dict(
    {k: LOCATOR_TEXT_CONFIG[k] for k in ('hidden_size', 'intermediate_size', 'num_hidden_layers',
                                         'num_attention_heads', 'num_key_value_heads')},
    head_dim=32, rope_parameters=dict(rope_type='default', rope_theta=5e5,
                                      mrope_section=[4, 6, 6], mrope_interleaved=True))
QWEN3_LOCATOR_VISION: Dict[str, Any] = dict(_QWEN3_VISION, hidden_size=64, intermediate_size=128,
                                            out_hidden_size=128, num_position_embeddings=256)
#: its pixel budget: up to 12 x 12 merged 32-px tokens, as the Qwen2.5-VL locator's 28-px ones
QWEN3_LOCATOR_MIN_PIXELS = 4 * 32 * 32
QWEN3_LOCATOR_MAX_PIXELS = 144 * 32 * 32


def sincos_position_table(grid: int, dim: int) -> torch.Tensor:
    """A 2-D sin/cos position table over a ``grid`` x ``grid`` square, row-major: features
    ``4k .. 4k + 3`` are sin and cos of x and of y at frequency ``(k + 1) * pi / 2`` over the unit
    square (x, y in [0, 1]), so nearby positions get nearby codes and every position its own.

    Args:
        grid (int): positions per side.
        dim (int): features per position; those past ``4 * (dim // 4)`` are zero.

    Returns:
        torch.Tensor: (grid * grid, dim) float32; row ``i * grid + j`` is row i, column j.
    """
    r = torch.arange(grid, dtype=torch.float32) / max(1, grid - 1)
    yy, xx = torch.meshgrid(r, r, indexing='ij')
    feats = []
    for k in range(dim // 4):
        w = math.pi * (k + 1) / 2
        feats += [torch.sin(w * xx), torch.cos(w * xx), torch.sin(w * yy), torch.cos(w * yy)]
    table = torch.zeros(grid * grid, dim)
    if feats:
        table[:, :len(feats)] = torch.stack(feats, -1).reshape(grid * grid, len(feats))
    return table


def build_tiny_qwen3_vl(out_dir: str, seed: int = 0,
                        text_config: Optional[Dict[str, Any]] = None,
                        vision_config: Optional[Dict[str, Any]] = None,
                        min_pixels: int = 4 * 32 * 32, max_pixels: int = 32 * 32 * 32,
                        position_table: str = 'random', attention_sharpness: float = 1.0) -> str:
    """Write a tiny Qwen3-VL (16 px patches, 0-1000 relative coordinates) to ``out_dir``.

    Not part of :func:`build_tiny_models` (the adapter tests and the locating chain need it); not
    cached. Unlike Qwen2.5-VL, whose image tokens know their place only through rotary
    embeddings, Qwen3-VL's vision tower adds an absolute position table (``pos_embed``, bilinearly
    resampled to the patch grid).

    Args:
        out_dir (str): the Hugging Face model directory to write (model and processor).
        seed (int): seed of the random weights; the global RNG state is left untouched.
        text_config (dict, optional): decoder settings; default the tests' (4 heads of 16).
        vision_config (dict, optional): tower settings without the patching; default the tests'.
        min_pixels (int): smallest image budget in pixels.
        max_pixels (int): largest image budget in pixels.
        position_table (str): ``'random'`` (transformers' init) or ``'sincos'``
            (:func:`sincos_position_table`: the place of every patch is in its features from the
            first step).
        attention_sharpness (float): factor of every decoder attention logit at init: the
            decoder's q and k norms (RMSNorm after the projections, so scaling the projections
            would do nothing) start at its square root instead of 1.

    Returns:
        str: ``out_dir``.
    """
    import transformers
    from transformers import GenerationConfig, Qwen2VLImageProcessor, Qwen3VLProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    if position_table not in ('random', 'sincos'):
        raise ValueError(f"position_table must be 'random' or 'sincos', not {position_table!r}")
    if not attention_sharpness > 0:
        raise ValueError(f'attention_sharpness must be > 0, not {attention_sharpness!r}')
    tokenizer = build_tiny_tokenizer()
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in QWEN_SPECIAL_TOKENS}
    size = dict(shortest_edge=min_pixels, longest_edge=max_pixels)
    patching = dict(patch_size=16, temporal_patch_size=2, merge_size=2)
    Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size, **patching), tokenizer=tokenizer,
        video_processor=Qwen3VLVideoProcessor(size=size, **patching),
        chat_template=QWEN_VL_CHAT_TEMPLATE).save_pretrained(out_dir)
    config = transformers.Qwen3VLConfig(
        text_config=dict(copy.deepcopy(_QWEN3_TEXT if text_config is None else text_config),
                         vocab_size=len(tokenizer), pad_token_id=ids['<|endoftext|>'],
                         eos_token_id=ids['<|im_end|>']),
        vision_config=dict(copy.deepcopy(_QWEN3_VISION if vision_config is None else vision_config),
                           **{k: v for k, v in patching.items() if k != 'merge_size'}),
        image_token_id=ids['<|image_pad|>'], video_token_id=ids['<|video_pad|>'],
        vision_start_token_id=ids['<|vision_start|>'], vision_end_token_id=ids['<|vision_end|>'])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.Qwen3VLForConditionalGeneration(config)
    if position_table == 'sincos':
        table = model.model.visual.pos_embed.weight
        grid = int(round(math.sqrt(table.shape[0])))
        with torch.no_grad():
            table.copy_(sincos_position_table(grid, table.shape[1]))
    if attention_sharpness != 1.0:
        with torch.no_grad():
            for layer in model.model.language_model.layers:
                layer.self_attn.q_norm.weight.mul_(math.sqrt(attention_sharpness))
                layer.self_attn.k_norm.weight.mul_(math.sqrt(attention_sharpness))
    model.generation_config = GenerationConfig(
        eos_token_id=[ids['<|im_end|>'], ids['<|endoftext|>']], pad_token_id=ids['<|endoftext|>'])
    model.save_pretrained(out_dir)
    return out_dir


def build_tiny_qwen3_locator(out_dir: str, seed: int = 0, attention_sharpness: float = 1.0) -> str:
    """Write the locating tiny Qwen3-VL (random weights) to ``out_dir``.

    The candidate for the quick start's locating chain (issue 16). Measured with
    ``benchmarks/bench_tiny_vision_probe.py``-style runs (which of 16 cells of a 112 x 112 image
    holds a 30-60 px square, batch 8, lr 1e-3, 32 held-out images): the Qwen2.5-VL locator
    (:func:`build_tiny_locator`), whose image tokens know their place only through rotary
    embeddings, answers one fixed cell after 2000 steps; this one reaches 59 % at 1000 steps and
    97 % at 2000, because Qwen3-VL's tower adds an absolute position table to every patch.
    transformers' random table learnt faster than a 2-D sin/cos one (53 % at 2000 steps; its
    +-1 codes outweigh the patches' pixels), so the table is left as initialised. Sizes:
    :data:`QWEN3_LOCATOR_TEXT`, :data:`QWEN3_LOCATOR_VISION`, up to 12 x 12 merged 32-px tokens.

    Args:
        out_dir (str): the Hugging Face model directory to write (model and processor).
        seed (int): seed of the random weights; the global RNG state is left untouched.
        attention_sharpness (float): factor of the decoder's attention logits at init (see
            :func:`build_tiny_qwen3_vl`; tools/misc/train_tiny_locator.py's ``ATTENTION_SHARPNESS``).

    Returns:
        str: ``out_dir``.
    """
    return build_tiny_qwen3_vl(out_dir, seed, QWEN3_LOCATOR_TEXT, QWEN3_LOCATOR_VISION,
                               QWEN3_LOCATOR_MIN_PIXELS, QWEN3_LOCATOR_MAX_PIXELS,
                               attention_sharpness=attention_sharpness)


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
