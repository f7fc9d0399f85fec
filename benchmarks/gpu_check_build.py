# Copyright (c) finers_mm contributors. All rights reserved.
"""What ``benchmarks/gpu_check.py`` runs on: a Qwen2.5-VL checkpoint with random weights at a
model's full width and reduced depth, and the bundled records with a ``best_region`` each.

The checkpoint is a ``save_pretrained`` directory, so the training config loads it the way it
loads the real model (``model.vlm.pretrained``). Its tokenizer is the tiny local one
(:mod:`finers_mm.testing.tiny_tokenizer`, 791 tokens; no tokenizer files of the real model are
needed): the embedding and the lm_head keep the model config's ``vocab_size`` (152,064 for
Qwen2.5-VL-7B), the special-token ids of the config (image, vision start/end, eos, pad) are moved
to the tiny tokenizer's ids, and a sampled id the tokenizer does not know decodes to nothing
(the rewards then score the text 0, as they would a garbled completion). The weights are drawn on
the target device in the target dtype (``_from_config`` under ``torch.device``), never on the
CPU in float32.
"""
import copy
import json
import os.path as osp
import time
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from finers_mm.testing import BUNDLED_DATA
from finers_mm.testing.tiny_tokenizer import (QWEN_SPECIAL_TOKENS, QWEN_VL_CHAT_TEMPLATE,
                                              build_tiny_tokenizer)
from finers_mm.utils.fileio import write_json_atomic

#: the public config.json the 7B check reduces (its widths, vocabulary and vision tower)
QWEN25_VL_7B_CONFIG = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'finers_mm',
                               'data', 'model_configs', 'Qwen2.5-VL-7B-Instruct', 'config.json')
#: Qwen2.5-VL-7B-Instruct's processor budget (its preprocessor_config.json): min/max pixels
QWEN25_VL_PIXELS = (3136, 12845056)


def reduced_config(model_config: str, layers: Optional[int], tokenizer) -> Tuple[Any, int]:
    """A Qwen2.5-VL config at its full width with ``layers`` decoder layers, its special-token
    ids those of ``tokenizer``.

    Args:
        model_config (str): a Qwen2.5-VL ``config.json``.
        layers (int, optional): decoder layers to keep (the first ones); None keeps them all.
        tokenizer (transformers.PreTrainedTokenizerFast): the tokenizer the checkpoint ships.

    Returns:
        tuple[transformers.Qwen2_5_VLConfig, int]: the config and the full depth.

    Raises:
        ValueError: not a Qwen2.5-VL config, ``layers`` outside ``1 .. full depth``, or a
            tokenizer larger than the vocabulary.
    """
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_config)
    if config.model_type != 'qwen2_5_vl':
        raise ValueError(f'{model_config}: a {config.model_type!r} config; the GPU check builds '
                         "a 'qwen2_5_vl' model (give Qwen2.5-VL's config.json)")
    text = config.text_config
    full = int(text.num_hidden_layers)
    layers = full if layers is None else int(layers)
    if not 1 <= layers <= full:
        raise ValueError(f'--layers {layers}: {model_config} has {full} decoder layers; keep '
                         f'between 1 and {full}')
    if len(tokenizer) > text.vocab_size:
        raise ValueError(f'the tokenizer has {len(tokenizer)} tokens, more than the vocabulary '
                         f'of {model_config} ({text.vocab_size})')
    text.num_hidden_layers = layers
    text.max_window_layers = min(int(getattr(text, 'max_window_layers', layers) or layers), layers)
    if getattr(text, 'layer_types', None) is not None:
        text.layer_types = list(text.layer_types[:layers])
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in QWEN_SPECIAL_TOKENS}
    config.image_token_id = ids['<|image_pad|>']
    config.video_token_id = ids['<|video_pad|>']
    config.vision_start_token_id = ids['<|vision_start|>']
    config.vision_end_token_id = ids['<|vision_end|>']
    text.bos_token_id = ids['<|endoftext|>']
    text.eos_token_id = ids['<|im_end|>']
    text.pad_token_id = ids['<|endoftext|>']
    return config, full


def build_processor(tokenizer, vision_config, pixels: Tuple[int, int]):
    """The Qwen2.5-VL processor: ``tokenizer``, image and video processors with the model's
    patching and the pixel budget ``pixels``, Qwen's chat template.

    Args:
        tokenizer (transformers.PreTrainedTokenizerFast): the tokenizer.
        vision_config: the model's vision config (patch, temporal patch and merge sizes).
        pixels (tuple[int, int]): ``(min_pixels, max_pixels)``.

    Returns:
        transformers.Qwen2_5_VLProcessor: the processor.
    """
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    size = dict(shortest_edge=int(pixels[0]), longest_edge=int(pixels[1]))
    patching = dict(patch_size=vision_config.patch_size,
                    temporal_patch_size=vision_config.temporal_patch_size,
                    merge_size=vision_config.spatial_merge_size)
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size, **patching), tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(size=size, **patching),
        chat_template=QWEN_VL_CHAT_TEMPLATE)


def write_random_checkpoint(out_dir: str, model_config: str, layers: Optional[int],
                            pixels: Tuple[int, int], device: str, dtype: torch.dtype,
                            seed: int = 0) -> Dict[str, Any]:
    """Write a random-weight Qwen2.5-VL (full width, ``layers`` deep) and its processor.

    Args:
        out_dir (str): the model directory to write (``save_pretrained`` layout).
        model_config (str): the ``config.json`` whose widths are kept.
        layers (int, optional): decoder layers (None: the config's).
        pixels (tuple[int, int]): the processor's ``(min_pixels, max_pixels)``.
        device (str): where the weights are drawn (``'cuda'``: no CPU float32 pass).
        dtype (torch.dtype): the weights' dtype.
        seed (int): seed of the weights; the global RNG state is left untouched.

    Returns:
        dict: ``dir``, ``layers``, ``full_layers``, ``parameters``, ``seconds`` (build and
        write), and the text sizes the HBM bound needs: ``hidden``, ``kv_heads``, ``head_dim``,
        ``vocab_size``, ``layer_bytes`` (one decoder layer), ``named_bytes`` (``(name, bytes)``
        of every parameter).
    """
    import transformers
    from transformers import GenerationConfig

    start = time.perf_counter()
    tokenizer = build_tiny_tokenizer()
    config, full = reduced_config(model_config, layers, tokenizer)
    devices = [torch.device(device)] if torch.device(device).type == 'cuda' else []
    with torch.random.fork_rng(devices=devices), torch.device(device):
        torch.manual_seed(seed)
        model = transformers.Qwen2_5_VLForConditionalGeneration._from_config(config,
                                                                             dtype=dtype)
    text = config.text_config
    model.generation_config = GenerationConfig(
        bos_token_id=text.bos_token_id, pad_token_id=text.pad_token_id,
        eos_token_id=[text.eos_token_id, text.bos_token_id])
    named = [(name, p.numel() * p.element_size()) for name, p in model.named_parameters()]
    layer = model.model.language_model.layers[0]
    info = dict(
        dir=osp.abspath(out_dir), layers=int(text.num_hidden_layers), full_layers=full,
        parameters=sum(p.numel() for p in model.parameters()), hidden=int(text.hidden_size),
        kv_heads=int(text.num_key_value_heads),
        head_dim=int(getattr(text, 'head_dim', None)
                     or text.hidden_size // text.num_attention_heads),
        vocab_size=int(text.vocab_size),
        layer_bytes=sum(p.numel() * p.element_size() for p in layer.parameters()),
        named_bytes=named)
    model.save_pretrained(out_dir)
    del model, layer
    if devices:
        torch.cuda.empty_cache()
    build_processor(tokenizer, config.vision_config, pixels).save_pretrained(out_dir)
    info['seconds'] = time.perf_counter() - start
    return info


def region_around(box: np.ndarray, side: float, width: int, height: int) -> list:
    """A ``side`` x ``side`` square centred on ``box``, shifted (not clipped) into the image.

    Args:
        box (np.ndarray): ``(x1, y1, x2, y2)``.
        side (float): the square's side (at most the image's smaller side).
        width (int): image width.
        height (int): image height.

    Returns:
        list[float]: ``[x1, y1, x2, y2]`` inside ``[0, width] x [0, height]``.
    """
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x1 = min(max(cx - side / 2, 0.0), width - side)
    y1 = min(max(cy - side / 2, 0.0), height - side)
    return [float(x1), float(y1), float(x1 + side), float(y1 + side)]


def write_annotations(out_file: str, region_side: float) -> Dict[str, str]:
    """The bundled records with a ``best_region`` each (a square around the GT polygon), so the
    GSE reward of the training config runs with its retrospective terms.

    Args:
        out_file (str): the annotation JSON to write (atomically).
        region_side (float): the region's side in original pixels.

    Returns:
        dict: ``data_root`` (the bundled data), ``ann_file`` and ``img`` (the image folder)
        for the dataloader.
    """
    from PIL import Image

    with open(osp.join(BUNDLED_DATA, 'annotations', 'train.json'), encoding='utf-8') as f:
        data = json.load(f)
    records = []
    for record in data['annotations']:
        points = np.asarray(record['points'], dtype=np.float64).reshape(-1, 2)
        box = np.concatenate([points.min(0), points.max(0)])
        with Image.open(osp.join(BUNDLED_DATA, 'images', record['image_path'])) as image:
            width, height = image.size
        records.append(dict(copy.deepcopy(record),
                            best_region=region_around(box, region_side, width, height)))
    write_json_atomic(out_file, dict(data, annotations=records))
    return dict(data_root=BUNDLED_DATA, ann_file=osp.abspath(out_file),
                img=osp.join(BUNDLED_DATA, 'images') + '/')
