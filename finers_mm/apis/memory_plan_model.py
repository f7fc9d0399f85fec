# Copyright (c) finers_mm contributors. All rights reserved.
"""A VLM from its ``config.json`` alone: its parameters counted on the meta device, its sizes, the
vision patches and tokens of an image, for :mod:`finers_mm.apis.memory_plan`.

No weights are read: the model is built on the meta device (``with torch.device('meta')``) to
count its parameters exactly (vision tower, language model, lm_head; trainable and frozen; the
LoRA adapters of ``model.vlm.lora``, added with peft on the meta model).

The ``config.json`` is looked for in this order: ``--model-config`` (a file or a directory), the
config's ``model.vlm.pretrained`` directory, then the public ``config.json`` files shipped in
``finers_mm/data/model_configs/<name of the pretrained directory>/``.
"""
import json
import os.path as osp
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch

from finers_mm.models.vlm.loading import DTYPES, wrap_lora
from .memory_plan import Architecture, ParamCounts

#: the public config.json files shipped with finers_mm, one folder per checkpoint name
SHIPPED_MODEL_CONFIGS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data',
                                 'model_configs')
#: the pixel budget of the public Qwen2-VL / Qwen2.5-VL checkpoints' preprocessor_config.json
#: (min_pixels, max_pixels), used when neither the config nor the model directory sets one
CHECKPOINT_PIXEL_BUDGET = (3136, 12845056)


@dataclass
class ModelConfigFile:
    """The ``config.json`` a plan counts from.

    Args:
        path (str): the file.
        source (str): how it was found (for the printout).
    """
    path: str
    source: str


# --- the model -----------------------------------------------------------------------------------

def find_model_config(pretrained: str, model_config: Optional[str] = None) -> ModelConfigFile:
    """The ``config.json`` of a model (module docstring: the order it is looked for in).

    Args:
        pretrained (str): the config's ``model.vlm.pretrained``.
        model_config (str, optional): ``--model-config``: a config.json or a directory holding
            one.

    Returns:
        ModelConfigFile: the file and how it was found.

    Raises:
        FileNotFoundError: no config.json; the message names the paths tried and the fix.
    """
    if model_config is not None:
        path = osp.join(model_config, 'config.json') if osp.isdir(model_config) else model_config
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'--model-config {model_config!r}: {path!r} does not exist. Give a config.json '
                "(or a directory holding one) of the model the config trains.")
        return ModelConfigFile(osp.abspath(path), '--model-config')
    local = osp.join(osp.expanduser(str(pretrained)), 'config.json')
    if osp.isfile(local):
        return ModelConfigFile(osp.abspath(local), 'model.vlm.pretrained')
    name = osp.basename(osp.normpath(str(pretrained)))
    shipped = osp.join(SHIPPED_MODEL_CONFIGS, name, 'config.json')
    if osp.isfile(shipped):
        return ModelConfigFile(shipped, f'shipped public config of {name}')
    raise FileNotFoundError(
        f'no config.json for model.vlm.pretrained={pretrained!r}: {osp.abspath(local)!r} does '
        f'not exist and finers_mm ships none for {name!r} (finers_mm/data/model_configs/). Pass '
        "--model-config PATH (the model's config.json, or its directory); no weights are "
        'needed.')


def load_model_config(path: str):
    """Read a Hugging Face ``config.json``.

    Args:
        path (str): the file.

    Returns:
        transformers.PretrainedConfig: the model's config.

    Raises:
        ValueError: not JSON, or not a model config transformers knows; the message names the
            file.
    """
    from transformers import AutoConfig
    try:
        with open(path, encoding='utf-8') as f:
            json.load(f)
        return AutoConfig.from_pretrained(path)
    except (ValueError, KeyError, OSError) as error:
        raise ValueError(f'{path}: not a Hugging Face model config.json ({error}). Give the '
                         "model's own config.json with --model-config.") from error


def _part(name: str) -> str:
    """Which part of a VLM a parameter name belongs to."""
    parts = name.split('.')
    if any(p.startswith('lora_') for p in parts):
        return 'adapters'
    if 'visual' in parts:
        return 'vision'
    if 'lm_head' in parts:
        return 'lm_head'
    return 'language'


def _largest_block(model: torch.nn.Module) -> int:
    """Parameters of the largest member of any ModuleList (a decoder layer, a vision block)."""
    sizes = [sum(p.numel() for p in block.parameters())
             for module in model.modules() if isinstance(module, torch.nn.ModuleList)
             for block in module]
    return max(sizes, default=0)


def _lm_head_tied(model: torch.nn.Module) -> bool:
    """Whether the output projection is the input embedding's tensor."""
    base = model.get_base_model() if hasattr(model, 'get_base_model') else model
    out, inputs = base.get_output_embeddings(), base.get_input_embeddings()
    return out is not None and inputs is not None and out.weight is inputs.weight


def census(model: torch.nn.Module) -> ParamCounts:
    """Count a (meta) model's parameters by part, trainability and dtype.

    Args:
        model (torch.nn.Module): a VLM, maybe wrapped by peft. Each tensor counts once (a tied
            lm_head is the embedding's tensor and counts 0).

    Returns:
        ParamCounts: the counts.
    """
    parts = dict(vision=0, language=0, lm_head=0, adapters=0)
    trainable: Dict[str, int] = {}
    frozen: Dict[str, int] = {}
    vision_trains = False
    for name, param in model.named_parameters():
        part = _part(name)
        parts[part] += param.numel()
        dtype = str(param.dtype).replace('torch.', '')
        bucket = trainable if param.requires_grad else frozen
        bucket[dtype] = bucket.get(dtype, 0) + param.numel()
        vision_trains |= part == 'vision' and param.requires_grad
    return ParamCounts(trainable=trainable, frozen=frozen, largest_block=_largest_block(model),
                       vision_trains=vision_trains, lm_head_tied=_lm_head_tied(model), **parts)


def count_parameters(hf_config, model_class: str, dtype: str = 'bfloat16',
                     lora: Optional[dict] = None, freeze: bool = False) -> ParamCounts:
    """Build the model on the meta device and count its parameters (no memory, no weights).

    Args:
        hf_config (transformers.PretrainedConfig): the model's config.
        model_class (str): the transformers class (the adapter's ``model_class``).
        dtype (str): the adapter's ``dtype`` (``'auto'``: the checkpoint's).
        lora (dict, optional): the adapter's ``lora`` (added with peft, as the adapter does).
        freeze (bool): the adapter's ``freeze``.

    Returns:
        ParamCounts: the counts.
    """
    import transformers
    torch_dtype = DTYPES[dtype] if dtype != 'auto' else checkpoint_dtype(hf_config)
    with torch.device('meta'):
        model = getattr(transformers, model_class)._from_config(hf_config, dtype=torch_dtype)
        if lora is not None:
            model = wrap_lora(model, lora)
    if freeze:
        model.requires_grad_(False)
    return census(model)


def checkpoint_dtype(hf_config) -> torch.dtype:
    """The dtype a checkpoint's config.json declares (float32 when it declares none)."""
    declared = getattr(hf_config, 'dtype', None) or getattr(hf_config, 'torch_dtype', None)
    if isinstance(declared, str):
        declared = getattr(torch, declared)
    return declared or torch.float32


def architecture(hf_config) -> Architecture:
    """The sizes activations and the KV cache scale with, from a VLM's config.

    Args:
        hf_config (transformers.PretrainedConfig): a Qwen-VL config (``text_config`` and
            ``vision_config``).

    Returns:
        Architecture: the sizes.
    """
    text = getattr(hf_config, 'text_config', hf_config)
    vision = getattr(hf_config, 'vision_config', None)
    heads = text.num_attention_heads
    head_dim = getattr(text, 'head_dim', None) or text.hidden_size // heads
    # Qwen2-VL's vision config calls its width embed_dim (its hidden_size is the output's)
    width = (getattr(vision, 'embed_dim', None) or vision.hidden_size) if vision else 0
    vision_mlp = 0
    if vision is not None:
        vision_mlp = getattr(vision, 'intermediate_size', None) or \
            int(width * getattr(vision, 'mlp_ratio', 4))
    return Architecture(
        hidden=text.hidden_size, layers=text.num_hidden_layers,
        intermediate=text.intermediate_size,
        kv_heads=getattr(text, 'num_key_value_heads', None) or heads, head_dim=head_dim,
        vocab=text.vocab_size, vision_hidden=width,
        vision_depth=getattr(vision, 'depth', 0) if vision else 0,
        vision_intermediate=vision_mlp)


# --- the prompt ----------------------------------------------------------------------------------

def saved_image_processor(folder: str) -> Tuple[Optional[dict], Optional[str]]:
    """The image processor settings saved in a model directory, and their file.

    transformers 4 writes ``preprocessor_config.json``; transformers 5 nests them under
    ``image_processor`` in ``processor_config.json``.

    Args:
        folder (str): the model directory.

    Returns:
        tuple[dict | None, str | None]: the settings and their file, or ``(None, None)``.
    """
    for name, key in (('preprocessor_config.json', None), ('processor_config.json',
                                                           'image_processor')):
        path = osp.join(folder, name)
        if osp.isfile(path):
            with open(path, encoding='utf-8') as f:
                saved = json.load(f)
            saved = saved.get(key) if key else saved
            if isinstance(saved, dict):
                return saved, path
    return None, None


def pixel_budget(vlm: dict, model_config_path: str) -> Tuple[int, int, str]:
    """The image processor's pixel budget: the config's ``min_pixels`` / ``max_pixels``, else the
    model directory's saved processor, else the public Qwen-VL checkpoints'.

    Args:
        vlm (dict): the config's ``model.vlm``.
        model_config_path (str): the config.json (its directory may hold the processor's).

    Returns:
        tuple[int, int, str]: ``min_pixels``, ``max_pixels`` and where they come from.
    """
    low, high = CHECKPOINT_PIXEL_BUDGET
    source = "the public Qwen-VL checkpoints' preprocessor_config.json"
    saved, path = saved_image_processor(osp.dirname(model_config_path))
    if saved is not None:
        size = saved.get('size') or {}
        low = size.get('shortest_edge', saved.get('min_pixels', low))
        high = size.get('longest_edge', saved.get('max_pixels', high))
        source = path
    if vlm.get('min_pixels') is not None or vlm.get('max_pixels') is not None:
        low = vlm.get('min_pixels') or low
        high = vlm.get('max_pixels') or high
        source = 'model.vlm.min_pixels / max_pixels'
    return int(low), int(high), source


def image_patches(frame: Tuple[int, int], patch: int, merge: int, budget: Tuple[int, int]
                  ) -> Tuple[int, int]:
    """Vision patches and language-model tokens of one image of ``frame`` (w, h).

    The image processor's ``smart_resize`` (sides multiples of ``patch x merge``, area within the
    budget), then one token per ``merge x merge`` patches.

    Args:
        frame (tuple[int, int]): ``(W, H)`` fed to the processor.
        patch (int): ``vision_config.patch_size``.
        merge (int): ``vision_config.spatial_merge_size``.
        budget (tuple[int, int]): ``(min_pixels, max_pixels)``.

    Returns:
        tuple[int, int]: patches (vision tower sequence) and image tokens (language model).
    """
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize
    height, width = smart_resize(int(frame[1]), int(frame[0]), factor=patch * merge,
                                 min_pixels=budget[0], max_pixels=budget[1])
    patches = (height // patch) * (width // patch)
    return patches, patches // (merge * merge)
