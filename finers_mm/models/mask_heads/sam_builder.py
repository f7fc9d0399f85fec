# Copyright (c) finers_mm contributors. All rights reserved.
"""Build a segment-anything ``Sam`` from a json-style build config (the ``'tiny'`` model type of
:class:`~finers_mm.models.mask_heads.SAMMaskHead`).

Meta's released vit_b / vit_l / vit_h are built with ``segment_anything.sam_model_registry``; this
builds any other size from the arguments ``segment_anything.build_sam._build_sam`` takes plus the
sizes it hard-codes, e.g. the 256-pixel SAM of the tests (:data:`TINY_SAM_CONFIG`).
"""
import copy
from functools import partial
from typing import Any, Dict, Optional

import torch
from segment_anything.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder, Sam,
                                       TwoWayTransformer)

#: Build config of the tiny SAM: the arguments of ``segment_anything.build_sam._build_sam`` plus the
#: sizes it hard-codes. The image embedding is ``img_size // patch_size`` = 16 cells a side.
TINY_SAM_CONFIG: Dict[str, Any] = dict(
    img_size=256,
    patch_size=16,
    encoder_embed_dim=64,
    encoder_depth=2,
    encoder_num_heads=2,
    encoder_global_attn_indexes=[1],
    encoder_window_size=8,
    encoder_mlp_ratio=2.0,
    prompt_embed_dim=64,
    mask_in_chans=16,
    decoder_depth=2,
    decoder_mlp_dim=128,
    decoder_num_heads=2,
    iou_head_depth=3,
    iou_head_hidden_dim=64,
    num_multimask_outputs=3,
    pixel_mean=[123.675, 116.28, 103.53],
    pixel_std=[58.395, 57.12, 57.375],
)


def build_sam_from_config(config: Dict[str, Any], checkpoint: Optional[str] = None) -> 'Sam':
    """Build a segment-anything ``Sam`` from a json-style build config.

    Only for configs like :data:`TINY_SAM_CONFIG`; the released vit_b/l/h models are built with
    ``segment_anything.sam_model_registry``.

    Args:
        config (dict): Build config. Missing keys take the values of :data:`TINY_SAM_CONFIG`;
            unknown keys raise ``KeyError``.
        checkpoint (str, optional): A ``state_dict`` file to load strictly. Defaults to None
            (random weights).

    Returns:
        segment_anything.modeling.Sam: The model in eval mode.
    """
    unknown = sorted(set(config) - set(TINY_SAM_CONFIG))
    if unknown:
        raise KeyError(f'Unknown SAM build config keys {unknown}; expected a subset of '
                       f'{sorted(TINY_SAM_CONFIG)}.')
    cfg = dict(copy.deepcopy(TINY_SAM_CONFIG), **config)
    if cfg['img_size'] % cfg['patch_size']:
        raise ValueError(f"SAM img_size {cfg['img_size']} must be a multiple of patch_size "
                         f"{cfg['patch_size']}.")
    embed_size = cfg['img_size'] // cfg['patch_size']
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=cfg['img_size'],
            patch_size=cfg['patch_size'],
            embed_dim=cfg['encoder_embed_dim'],
            depth=cfg['encoder_depth'],
            num_heads=cfg['encoder_num_heads'],
            mlp_ratio=cfg['encoder_mlp_ratio'],
            out_chans=cfg['prompt_embed_dim'],
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=cfg['encoder_window_size'],
            global_attn_indexes=tuple(cfg['encoder_global_attn_indexes']),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=cfg['prompt_embed_dim'],
            image_embedding_size=(embed_size, embed_size),
            input_image_size=(cfg['img_size'], cfg['img_size']),
            mask_in_chans=cfg['mask_in_chans'],
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=cfg['num_multimask_outputs'],
            transformer=TwoWayTransformer(
                depth=cfg['decoder_depth'],
                embedding_dim=cfg['prompt_embed_dim'],
                mlp_dim=cfg['decoder_mlp_dim'],
                num_heads=cfg['decoder_num_heads'],
            ),
            transformer_dim=cfg['prompt_embed_dim'],
            iou_head_depth=cfg['iou_head_depth'],
            iou_head_hidden_dim=cfg['iou_head_hidden_dim'],
        ),
        pixel_mean=cfg['pixel_mean'],
        pixel_std=cfg['pixel_std'],
    )
    if checkpoint is not None:
        sam.load_state_dict(torch.load(checkpoint, map_location='cpu', weights_only=True))
    return sam.eval()
