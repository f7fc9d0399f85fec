# Copyright (c) finers_mm contributors. All rights reserved.
"""Loading a VLM adapter's model and processor from a LOCAL directory, and adding LoRA.

Sampling settings come from the adapter's config only: a checkpoint's ``generation_config.json``
keeps just its special token ids, because its sampling defaults would otherwise leak into every
call (the released Qwen2.5-VL-Instruct ships ``top_k=1, top_p=0.001, repetition_penalty=1.05``:
sampling "with temperature 1" would be greedy, and log-probs would not be those of the sampled
tokens).
"""
import os.path as osp
from typing import TYPE_CHECKING, Optional

import torch

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel, ProcessorMixin

#: config strings of ``dtype``; 'auto' takes the checkpoint's own dtype
DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16,
          'auto': 'auto'}

#: model-config keys of the vision placeholder tokens, which generation must never emit
VISION_TOKEN_ID_KEYS = ('image_token_id', 'video_token_id', 'vision_start_token_id',
                        'vision_end_token_id')

#: LoRA on every linear layer of the language model (not the vision tower), a full-match regex
DEFAULT_LORA_TARGETS = (r'.*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|'
                        r'down_proj)')


def check_pretrained(pretrained: str, owner: str) -> str:
    """The absolute ``pretrained`` directory, or an error naming the path and the config key.

    Args:
        pretrained (str): the configured model directory (``~`` is expanded).
        owner (str): the adapter's class name, for the message.

    Returns:
        str: the absolute directory, which holds a ``config.json``.

    Raises:
        FileNotFoundError: the directory does not exist or has no ``config.json``.
    """
    path = osp.abspath(osp.expanduser(str(pretrained)))
    if not osp.isfile(osp.join(path, 'config.json')):
        what = 'has no config.json' if osp.isdir(path) else 'does not exist'
        raise FileNotFoundError(
            f'{owner}: the model directory {path!r} (config key `pretrained`) {what}. Set '
            '`pretrained` to a local directory saved with save_pretrained (model + processor); '
            'nothing is downloaded.')
    return path


def load_processor(pretrained: str, min_pixels: Optional[int], max_pixels: Optional[int],
                   owner: str) -> 'ProcessorMixin':
    """Load the processor and apply the image budget to its image processor.

    Args:
        pretrained (str): the local model directory.
        min_pixels (int, optional): ``size['shortest_edge']``, None keeps the checkpoint's.
        max_pixels (int, optional): ``size['longest_edge']``, None keeps the checkpoint's.
        owner (str): the adapter's class name, for the messages.

    Returns:
        transformers.ProcessorMixin: The processor.

    Raises:
        ValueError: the budget is not ``0 < min_pixels <= max_pixels``.
    """
    from transformers import AutoProcessor
    from transformers.image_utils import SizeDict

    processor = AutoProcessor.from_pretrained(pretrained, local_files_only=True)
    size = processor.image_processor.size
    min_pixels = size['shortest_edge'] if min_pixels is None else int(min_pixels)
    max_pixels = size['longest_edge'] if max_pixels is None else int(max_pixels)
    if not 0 < min_pixels <= max_pixels:
        raise ValueError(f'{owner}: need 0 < min_pixels <= max_pixels, got {min_pixels} and '
                         f'{max_pixels}.')
    processor.image_processor.size = SizeDict(shortest_edge=min_pixels, longest_edge=max_pixels)
    return processor


def load_model(pretrained: str, model_class: str, model_type: str, processor: 'ProcessorMixin',
               dtype: str, attn_implementation: str, owner: str) -> 'PreTrainedModel':
    """Load the model with its family's class, after checking the checkpoint's family.

    The token ids of the checkpoint's generation config are kept, its sampling settings are
    dropped (see the module docstring).

    Args:
        pretrained (str): the local model directory.
        model_class (str): the transformers class, e.g. ``'Qwen2_5_VLForConditionalGeneration'``.
        model_type (str): the ``model_type`` the checkpoint's ``config.json`` must declare.
        processor (transformers.ProcessorMixin): its tokenizer gives missing pad / eos ids.
        dtype (str): a key of :data:`DTYPES`.
        attn_implementation (str): the attention implementation.
        owner (str): the adapter's class name, for the message.

    Returns:
        transformers.PreTrainedModel: The model.

    Raises:
        ValueError: the checkpoint is of another family.
    """
    import transformers
    from transformers import AutoConfig, GenerationConfig

    found = AutoConfig.from_pretrained(pretrained, local_files_only=True).model_type
    if found != model_type:
        raise ValueError(
            f'{owner} expects a {model_type!r} checkpoint, but `pretrained` {pretrained!r} holds '
            f"a {found!r} one; pick the adapter `type` of that family (their coordinate "
            'conventions differ).')
    model = getattr(transformers, model_class).from_pretrained(
        pretrained, local_files_only=True, dtype=DTYPES[dtype],
        attn_implementation=attn_implementation)
    tokenizer = processor.tokenizer
    saved = model.generation_config
    pad = saved.pad_token_id if saved.pad_token_id is not None else tokenizer.pad_token_id
    eos = saved.eos_token_id if saved.eos_token_id is not None else tokenizer.eos_token_id
    # never sample a vision placeholder: a completion holding one no longer matches the
    # image features when it is scored again (and means nothing as text)
    vision_tokens = [getattr(model.config, name) for name in VISION_TOKEN_ID_KEYS
                     if getattr(model.config, name, None) is not None]
    model.generation_config = GenerationConfig(
        bos_token_id=saved.bos_token_id, eos_token_id=eos, pad_token_id=pad,
        suppress_tokens=vision_tokens or None)
    return model


def wrap_lora(model: 'PreTrainedModel', lora: dict) -> 'PeftModel':
    """Add LoRA adapters with peft; only their weights stay trainable.

    Args:
        model (transformers.PreTrainedModel): The base model.
        lora (dict): ``r`` (default 8), ``alpha`` (16), ``dropout`` (0), ``target_modules`` (a
            list of module names or a full-match regex; default :data:`DEFAULT_LORA_TARGETS`) and
            further ``peft.LoraConfig`` keys.

    Returns:
        peft.PeftModel: The wrapped model.
    """
    from peft import LoraConfig, get_peft_model

    cfg = dict(lora)
    config = LoraConfig(
        r=cfg.pop('r', 8), lora_alpha=cfg.pop('alpha', 16), lora_dropout=cfg.pop('dropout', 0.0),
        target_modules=cfg.pop('target_modules', DEFAULT_LORA_TARGETS), **cfg)
    return get_peft_model(model, config)
