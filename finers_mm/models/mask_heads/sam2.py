# Copyright (c) finers_mm contributors. All rights reserved.
"""A frozen SAM 2 mask head (Meta's ``sam2`` package): box + points on a crop in, best mask out.

Same interface and coordinate handling as :class:`~finers_mm.models.mask_heads.sam.SAMMaskHead`
(verified against ``sam2`` 1.1.0):

- ``SAM2ImagePredictor`` takes prompts in pixels of the image it was given (here the crop) and,
  with ``normalize_coords=True``, maps them to the model's square input by
  ``x * image_size / w`` and ``y * image_size / h`` (``SAM2Transforms.transform_coords``; the crop
  itself is resized to ``image_size x image_size``, aspect NOT kept).
- The box goes in as two corner points (labels 2 and 3) and ``PromptEncoder._embed_points`` adds
  0.5 ("Shift to center of pixel") to every point, corners included: SAM 2 takes pixel INDICES and
  inclusive index boxes, exactly as SAM 1.

So the prompts are converted with the same :func:`~finers_mm.models.mask_heads.sam.boxes_to_sam`
(``[x1, y1, x2 - 1, y2 - 1]``) and :func:`~finers_mm.models.mask_heads.sam.points_to_sam`
(``p - 0.5``) in CROP pixels and then handed to the predictor (SAM 2's 0.5 shift then happens in
the resized frame: the same sub-pixel approximation as the SAM head's).

Which SAM 2 is one config key, ``config``:

- a config name inside the ``sam2`` package, built with ``sam2.build_sam.build_sam2``, e.g.
  ``'configs/sam2/sam2_hiera_l.yaml'`` (``sam2_hiera_large.pt``, the FineRS authors' model) or
  ``'configs/sam2.1/sam2.1_hiera_l.yaml'`` (``sam2.1_hiera_large.pt``), with ``checkpoint`` the
  LOCAL path of Meta's released file (nothing is downloaded);
- a local yaml file of the same form (its ``model``), or a dict (the ``model`` block, hydra
  ``_target_`` style), instantiated with ``hydra.utils.instantiate`` and ``build_sam2``'s
  post-processing options;
- ``'tiny'``: :data:`TINY_SAM2_CONFIG`, a 256-pixel SAM 2.1 with a minimal Hiera, for tests.
"""
import copy
import os.path as osp
import warnings
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.logging import print_log

from finers_mm.registry import MODELS
from .base import BaseMaskHead
from .sam import boxes_to_sam, points_to_sam

_POS_ENC = 'sam2.modeling.position_encoding.PositionEmbeddingSine'
_ROPE = 'sam2.modeling.sam.transformer.RoPEAttention'

#: The tiny SAM 2 for tests (random weights): the ``model`` block of ``sam2.1_hiera_t.yaml`` with a
#: 5-block Hiera of width 8, width-32 neck, SAM heads and memory modules, and 256-pixel inputs
#: (image embedding 16 x 16). Only the image encoder, prompt encoder and mask decoder run here.
TINY_SAM2_CONFIG: Dict[str, Any] = dict(
    _target_='sam2.modeling.sam2_base.SAM2Base',
    image_encoder=dict(
        _target_='sam2.modeling.backbones.image_encoder.ImageEncoder',
        scalp=1,
        trunk=dict(
            _target_='sam2.modeling.backbones.hieradet.Hiera',
            embed_dim=8,
            num_heads=1,
            stages=[1, 1, 2, 1],
            global_att_blocks=[3],
            window_spec=[8, 4, 4, 2],
            window_pos_embed_bkg_spatial_size=[4, 4]),
        neck=dict(
            _target_='sam2.modeling.backbones.image_encoder.FpnNeck',
            position_encoding=dict(
                _target_=_POS_ENC, num_pos_feats=32, normalize=True, scale=None,
                temperature=10000),
            d_model=32,
            backbone_channel_list=[64, 32, 16, 8],
            fpn_top_down_levels=[2, 3],
            fpn_interp_model='nearest')),
    memory_attention=dict(
        _target_='sam2.modeling.memory_attention.MemoryAttention',
        d_model=32,
        pos_enc_at_input=True,
        layer=dict(
            _target_='sam2.modeling.memory_attention.MemoryAttentionLayer',
            activation='relu',
            dim_feedforward=64,
            dropout=0.0,
            pos_enc_at_attn=False,
            self_attention=dict(
                _target_=_ROPE, rope_theta=10000.0, feat_sizes=[16, 16], embedding_dim=32,
                num_heads=1, downsample_rate=1, dropout=0.0),
            d_model=32,
            pos_enc_at_cross_attn_keys=True,
            pos_enc_at_cross_attn_queries=False,
            cross_attention=dict(
                _target_=_ROPE, rope_theta=10000.0, feat_sizes=[16, 16], rope_k_repeat=True,
                embedding_dim=32, num_heads=1, downsample_rate=1, dropout=0.0, kv_in_dim=16)),
        num_layers=1),
    memory_encoder=dict(
        _target_='sam2.modeling.memory_encoder.MemoryEncoder',
        out_dim=16,
        in_dim=32,
        position_encoding=dict(
            _target_=_POS_ENC, num_pos_feats=16, normalize=True, scale=None, temperature=10000),
        mask_downsampler=dict(
            _target_='sam2.modeling.memory_encoder.MaskDownSampler',
            embed_dim=32, kernel_size=3, stride=2, padding=1),
        fuser=dict(
            _target_='sam2.modeling.memory_encoder.Fuser',
            layer=dict(
                _target_='sam2.modeling.memory_encoder.CXBlock', dim=32, kernel_size=7,
                padding=3, layer_scale_init_value=1e-6, use_dwconv=True),
            num_layers=1)),
    num_maskmem=7,
    image_size=256,
    sigmoid_scale_for_mem_enc=20.0,
    sigmoid_bias_for_mem_enc=-10.0,
    use_mask_input_as_output_without_sam=True,
    directly_add_no_mem_embed=True,
    no_obj_embed_spatial=True,
    use_high_res_features_in_sam=True,
    multimask_output_in_sam=True,
    iou_prediction_use_sigmoid=True,
    use_obj_ptrs_in_encoder=True,
    add_tpos_enc_to_obj_ptrs=True,
    proj_tpos_enc_in_obj_ptrs=True,
    use_signed_tpos_enc_to_obj_ptrs=True,
    only_obj_ptrs_in_the_past_for_eval=True,
    pred_obj_scores=True,
    pred_obj_scores_mlp=True,
    fixed_no_obj_ptr=True,
    multimask_output_for_tracking=True,
    use_multimask_token_for_obj_ptr=True,
    multimask_min_pt_num=0,
    multimask_max_pt_num=1,
    use_mlp_for_obj_ptr_proj=True,
    compile_image_encoder=False,
)

#: What ``sam2.build_sam.build_sam2(apply_postprocessing=True)`` adds to the model config (its
#: hydra overrides), applied to yaml-file and dict configs too.
POSTPROCESSING_OPTIONS = dict(sam_mask_decoder_extra_args=dict(
    dynamic_multimask_via_stability=True,
    dynamic_multimask_stability_delta=0.05,
    dynamic_multimask_stability_thresh=0.98))


def _package_config(name: str) -> Optional[str]:
    """The file of a config name inside the ``sam2`` package (e.g.
    ``'configs/sam2.1/sam2.1_hiera_l.yaml'``), or None if the package has none of that name."""
    if osp.isabs(name) or not name.endswith('.yaml'):
        return None
    import sam2
    path = osp.join(osp.dirname(sam2.__file__), name)
    return path if osp.isfile(path) else None


def _instantiate(model_cfg: Mapping[str, Any], apply_postprocessing: bool,
                 source: str) -> torch.nn.Module:
    """Instantiate a ``model`` block (hydra ``_target_`` style) as ``build_sam2`` does."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(copy.deepcopy(dict(model_cfg)))
    if '_target_' not in cfg:
        raise KeyError(f"SAM2MaskHead: {source} has no '_target_' (expected the 'model' block of a "
                       f"sam2 config, e.g. sam2.modeling.sam2_base.SAM2Base).")
    if apply_postprocessing:
        cfg = OmegaConf.merge(cfg, POSTPROCESSING_OPTIONS)
    OmegaConf.resolve(cfg)
    return instantiate(cfg, _recursive_=True)


def _load_checkpoint(model: torch.nn.Module, checkpoint: str) -> None:
    """Load Meta's checkpoint format (``{'model': state_dict}``) or a bare ``state_dict``,
    strictly; a mismatch names the config key and the file."""
    state = torch.load(checkpoint, map_location='cpu', weights_only=True)
    if isinstance(state, Mapping) and 'model' in state and isinstance(state['model'], Mapping):
        state = state['model']
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise RuntimeError(f"SAM2MaskHead: checkpoint '{checkpoint}' (config key 'checkpoint') "
                           f"does not match the model of config key 'config': {error}") from error


def build_sam2_model(config: Union[str, Mapping[str, Any]] = 'tiny',
                     checkpoint: Optional[str] = None,
                     apply_postprocessing: bool = True) -> torch.nn.Module:
    """Build a SAM 2 model (``SAM2Base``) on CPU, in eval mode.

    Args:
        config (str | Mapping): ``'tiny'`` (:data:`TINY_SAM2_CONFIG`), a config name inside the
            ``sam2`` package (``'configs/sam2.1/sam2.1_hiera_l.yaml'``; built with
            ``sam2.build_sam.build_sam2``), a local yaml file with a ``model`` block, or a dict
            (the ``model`` block itself, or a mapping with a ``model`` key).
        checkpoint (str, optional): LOCAL weights: Meta's ``.pt`` (``{'model': state_dict}``) or
            a bare ``state_dict``, loaded strictly. None keeps random weights (tests only).
        apply_postprocessing (bool): ``build_sam2``'s option of the same name (only changes the
            single-mask output, ``multimask=False``). Defaults to True.

    Returns:
        torch.nn.Module: the ``SAM2Base`` model.

    Raises:
        FileNotFoundError: ``checkpoint`` or the config is missing (the message names the key and
            the path).
    """
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f"SAM2MaskHead: SAM 2 checkpoint not found: '{checkpoint}' "
                                f"(config key 'checkpoint'). Give the local path of the weights "
                                f"(e.g. sam2_hiera_large.pt); nothing is downloaded.")
    if isinstance(config, Mapping):
        block = config['model'] if 'model' in config else config
        model = _instantiate(block, apply_postprocessing, "config key 'config' (a dict)")
    elif config == 'tiny':
        model = _instantiate(TINY_SAM2_CONFIG, apply_postprocessing, "TINY_SAM2_CONFIG")
    elif _package_config(config) is not None:
        from sam2.build_sam import build_sam2
        model = build_sam2(config, ckpt_path=None, device='cpu', mode='eval',
                           apply_postprocessing=apply_postprocessing)
    elif osp.isfile(config):
        from omegaconf import OmegaConf
        loaded = OmegaConf.load(config)
        if 'model' not in loaded:
            raise KeyError(f"SAM2MaskHead: config key 'config' (file '{config}') has no 'model'.")
        model = _instantiate(
            OmegaConf.to_container(loaded.model), apply_postprocessing,
            f"config key 'config' (file '{config}')")
    else:
        raise FileNotFoundError(
            f"SAM2MaskHead: SAM 2 config not found: '{config}' (config key 'config'). Give "
            f"'tiny', a config name inside the sam2 package (e.g. "
            f"'configs/sam2.1/sam2.1_hiera_l.yaml', 'configs/sam2/sam2_hiera_l.yaml'), the local "
            f"path of a sam2 yaml config, or its model dict.")
    if checkpoint is not None:
        _load_checkpoint(model, checkpoint)
    return model.eval()


@MODELS.register_module()
class SAM2MaskHead(BaseMaskHead):
    """Frozen SAM 2 mask head (FineRS step 3, "Mask"), the SAM head's drop-in alternative.

    The mask-head interface of :class:`~finers_mm.models.mask_heads.base.BaseMaskHead`: crops and
    one box (and optional points) per crop in CROP pixels in, one crop-sized mask and a score (SAM
    2's predicted IoU of the kept mask) per crop out. All crops of a call go through SAM 2's image encoder together
    (``SAM2ImagePredictor.set_image_batch``), ``batch_size`` at a time, each crop once; the prompt
    encoder and mask decoder then run per crop (``predict_batch``). With ``multimask`` the 3
    candidates are predicted and the highest-scoring one kept. An all-zero box, a box with no area
    in its crop or a non-finite coordinate gives an empty mask with score 0 without running SAM 2.

    The model is frozen: no parameter requires grad, the head stays in eval mode whatever its
    parent sets. It runs in float32 on the device the head is moved to.

    Args:
        config (str | dict): which SAM 2, see :func:`build_sam2_model`: ``'tiny'`` (tests), a
            ``sam2`` package config name such as ``'configs/sam2/sam2_hiera_l.yaml'`` (the FineRS
            authors' sam2_hiera_large) or ``'configs/sam2.1/sam2.1_hiera_l.yaml'``, a local yaml
            file or a model dict. Defaults to ``'tiny'``.
        checkpoint (str, optional): LOCAL path of the weights (e.g. ``sam2_hiera_large.pt``).
            None builds random weights, only meaningful in tests.
        multimask (bool): Predict 3 candidates and keep the best-scoring one. Defaults to True.
        batch_size (int): Most crops per image-encoder pass. Defaults to 8.
        mask_threshold (float): Logit threshold of the masks (``SAM2ImagePredictor``'s). Defaults
            to 0.
        apply_postprocessing (bool): ``build_sam2``'s option. Defaults to True.
        init_cfg (dict, optional): mmengine init config. Defaults to None.
    """

    def __init__(self,
                 config: Union[str, Mapping[str, Any]] = 'tiny',
                 checkpoint: Optional[str] = None,
                 multimask: bool = True,
                 batch_size: int = 8,
                 mask_threshold: float = 0.0,
                 apply_postprocessing: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if int(batch_size) < 1:
            raise ValueError(f'SAM2MaskHead: batch_size must be >= 1, got {batch_size}.')
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        self.sam2 = build_sam2_model(config, checkpoint, apply_postprocessing)
        if checkpoint is None:
            print_log('SAM2MaskHead: no checkpoint given, SAM 2 has random weights.',
                      logger='current')
        self.multimask = bool(multimask)
        self.batch_size = int(batch_size)
        self.sam2.requires_grad_(False)
        self.sam2.eval()
        # not a submodule: the predictor only holds a reference to self.sam2
        with warnings.catch_warnings():  # SAM2Transforms' torch.jit.script (deprecated)
            warnings.simplefilter('ignore', FutureWarning)
            predictor = SAM2ImagePredictor(self.sam2, mask_threshold=float(mask_threshold))
        # The predictor's feature sizes are those of a 1024 input; the backbone's 3 levels have
        # strides backbone_stride / 4, / 2 and backbone_stride (4, 8, 16 for Hiera with scalp 1).
        size, stride = self.sam2.image_size, self.sam2.backbone_stride
        predictor._bb_feat_sizes = [(size * 4 // stride, ) * 2, (size * 2 // stride, ) * 2,
                                    (size // stride, ) * 2]
        self.predictor = predictor

    def segment(self, crops: List[np.ndarray], boxes: np.ndarray, points: Optional[np.ndarray],
                point_labels: Optional[np.ndarray],
                indices: List[int]) -> Iterator[Tuple[int, np.ndarray, float]]:
        """SAM 2 on the crops ``indices``, ``batch_size`` images per encoder pass; the
        best-scoring candidate kept (see :meth:`BaseMaskHead.segment`)."""
        predictor = self.predictor
        for start in range(0, len(indices), self.batch_size):
            chunk = indices[start:start + self.batch_size]
            predictor.set_image_batch([np.ascontiguousarray(crops[i]) for i in chunk])
            try:
                chunk_masks, chunk_ious, _ = predictor.predict_batch(
                    point_coords_batch=None if points is None else
                    [points_to_sam(points[i]) for i in chunk],
                    point_labels_batch=None if points is None else
                    [point_labels[i] for i in chunk],
                    box_batch=[boxes_to_sam(boxes[i]) for i in chunk],
                    multimask_output=self.multimask,
                    normalize_coords=True)
            finally:
                predictor.reset_predictor()
            for i, crop_masks, ious in zip(chunk, chunk_masks, chunk_ious):
                best = int(np.argmax(ious))
                # the predictor's thresholded masks, as float
                yield i, crop_masks[best] > 0.5, float(ious[best])
