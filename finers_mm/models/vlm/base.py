# Copyright (c) finers_mm contributors. All rights reserved.
"""The family-independent part of a VLM adapter: load, configure, generate, score completions.

An adapter wraps one Hugging Face image-text-to-text model (``.model``) and its processor
(``.processor``), both loaded from a LOCAL directory, and gives the FineRS stages what they need:

- :meth:`BaseVLMAdapter.build_inputs` / :meth:`~BaseVLMAdapter.generate`: batched chat prompts of
  one image + one text each, left-padded, decoded completions;
- :meth:`~BaseVLMAdapter.completion_logprobs`: per-token log-probs of given completions (GRPO's
  policy, old-policy and reference log-probs), under :meth:`~BaseVLMAdapter.reference_policy` for
  the LoRA-disabled base model;
- the model's coordinate convention: :meth:`~BaseVLMAdapter.model_to_frame` and
  :meth:`~BaseVLMAdapter.frame_to_model` between what the model writes and the pixels of the image
  it was fed (the "frame": the explorer view or the refiner crop).

Family differences live in the subclasses' class attributes (:mod:`.qwen_vl`).

Sampling settings come from this config only: a checkpoint's ``generation_config.json`` keeps just
its special token ids, because its sampling defaults would otherwise leak into every call (the
released Qwen2.5-VL-Instruct ships ``top_k=1, top_p=0.001, repetition_penalty=1.05``: sampling
"with temperature 1" would be greedy, and log-probs would not be those of the sampled tokens).
"""
import copy
import os.path as osp
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.model import BaseModule

from finers_mm.structures.frames import Size, frame_to_model, model_to_frame

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import BatchFeature, GenerationConfig, PreTrainedModel, ProcessorMixin

#: config strings of ``dtype``; 'auto' takes the checkpoint's own dtype
DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16,
          'auto': 'auto'}

#: generation settings of a config; every other ``GenerationConfig`` field may be added too
DEFAULT_GENERATION = dict(max_new_tokens=1024, do_sample=False, temperature=1.0, top_p=1.0,
                          top_k=0, num_return_sequences=1)
#: model-config keys of the vision placeholder tokens, which generation must never emit
VISION_TOKEN_ID_KEYS = ('image_token_id', 'video_token_id', 'vision_start_token_id',
                        'vision_end_token_id')
#: settings that only apply when sampling (dropped for greedy decoding)
SAMPLING_KEYS = ('temperature', 'top_p', 'top_k')

#: LoRA on every linear layer of the language model (not the vision tower), a full-match regex
DEFAULT_LORA_TARGETS = (r'.*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|'
                        r'down_proj)')


@dataclass
class GenerationResult:
    """Completions of a batch of prompts, ``n = num_return_sequences`` per prompt, prompt-major.

    Row ``i * n + j`` is sample ``j`` of prompt ``i``.

    Attributes:
        texts (list[str]): (B*n) decoded completions, special tokens skipped.
        completion_ids (torch.LongTensor): (B*n, T) completion token ids (the prompt excluded),
            right-padded with the pad id after the first end-of-sequence token (kept).
        completion_mask (torch.LongTensor): (B*n, T) 1 for the completion's tokens up to and
            including its first end-of-sequence token, 0 for padding.
        prompt_inputs (transformers.BatchFeature): the B prompts as fed to the model (left-padded
            ``input_ids``/``attention_mask`` (B, P), ``pixel_values``, ``image_grid_thw`` ...),
            for :meth:`BaseVLMAdapter.completion_logprobs`.
        num_return_sequences (int): n.
        mean_logprobs (torch.Tensor, optional): (B*n,) float32 mean per-token log-prob of each
            completion under the model (temperature 1, the completion's masked tokens, eos
            included): the completion's confidence score. Only with ``generate(...,
            with_scores=True)``, else None.
    """
    texts: List[str]
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    prompt_inputs: 'BatchFeature'
    num_return_sequences: int
    mean_logprobs: Optional[torch.Tensor] = None


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-row mean of ``values`` (N, T) over ``mask`` (N, T) (a row without tokens gives 0).

    Args:
        values (torch.Tensor): (N, T) e.g. per-token log-probs.
        mask (torch.Tensor): (N, T) 1 on the tokens to average.

    Returns:
        torch.Tensor: (N,) float32.
    """
    mask = mask.to(torch.float32)
    return (values.to(torch.float32) * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def completion_mask_after_eos(completion_ids: torch.Tensor,
                              eos_token_ids: Sequence[int]) -> torch.Tensor:
    """Mask of the tokens up to and including each row's first end-of-sequence token.

    Args:
        completion_ids (torch.Tensor): (N, T) token ids.
        eos_token_ids (Sequence[int]): ids that end a completion.

    Returns:
        torch.LongTensor: (N, T) 1 up to and including the first eos (everywhere if none), else 0.
    """
    is_eos = torch.isin(completion_ids, torch.as_tensor(list(eos_token_ids),
                                                        device=completion_ids.device)).long()
    eos_before = is_eos.cumsum(dim=1) - is_eos
    return (eos_before == 0).long()


class BaseVLMAdapter(BaseModule):
    """A Hugging Face image-text-to-text model and its processor, built from an mmengine config.

    Subclasses set the family's class attributes:

    - ``model_class`` (str): the transformers class to load (e.g.
      ``'Qwen2_5_VLForConditionalGeneration'``);
    - ``model_type`` (str): the ``model_type`` the checkpoint's ``config.json`` must declare;
    - ``relative_scale`` (int | None): the coordinate convention. None: ABSOLUTE pixels of the
      image as the model saw it, i.e. after the processor's resize (:meth:`model_image_size`);
      an int ``s``: coordinates relative to the image, ``0..s`` along each axis.

    and implement :meth:`model_image_size` and :meth:`repeat_prompt_inputs`.

    Args:
        pretrained (str): LOCAL directory with the model and its processor (``save_pretrained``
            layout). Nothing is downloaded.
        dtype (str): 'float32', 'bfloat16', 'float16' or 'auto' (the checkpoint's). Defaults to
            'float32'.
        attn_implementation (str): 'sdpa', 'eager', 'flash_attention_2', ... Defaults to 'sdpa'.
        device (str, optional): Device to move the model to after loading. Defaults to None
            (leave placement to mmengine's runner).
        gradient_checkpointing (bool): Checkpoint activations (non-reentrant) in training.
            Defaults to False.
        min_pixels (int, optional): Smallest image budget of the processor in pixels (transformers
            5: ``size['shortest_edge']``). Defaults to None (the checkpoint's).
        max_pixels (int, optional): Largest image budget (``size['longest_edge']``). Defaults to
            None (the checkpoint's).
        generation (dict, optional): Generation settings, merged over :data:`DEFAULT_GENERATION`
            (``max_new_tokens``, ``do_sample``, ``temperature``, ``top_p``, ``top_k`` (0: off),
            ``num_return_sequences``; any other ``transformers.GenerationConfig`` field too).
            Overridable per call of :meth:`generate`. Defaults to None.
        lora (dict, optional): LoRA via peft: ``r`` (default 8), ``alpha`` (16), ``dropout`` (0)
            and ``target_modules`` (a list of module names or a full-match regex; default: every
            linear layer of the language model, :data:`DEFAULT_LORA_TARGETS`); further keys go to
            ``peft.LoraConfig``. Defaults to None (full fine-tune).
        freeze (bool): Freeze every weight and keep the model in eval mode (inference only,
            e.g. a frozen refiner). Defaults to False.
    """

    model_class: str
    model_type: str
    relative_scale: Optional[int]

    def __init__(self,
                 pretrained: str,
                 dtype: str = 'float32',
                 attn_implementation: str = 'sdpa',
                 device: Optional[str] = None,
                 gradient_checkpointing: bool = False,
                 min_pixels: Optional[int] = None,
                 max_pixels: Optional[int] = None,
                 generation: Optional[dict] = None,
                 lora: Optional[dict] = None,
                 freeze: bool = False) -> None:
        super().__init__()
        if lora is not None and freeze:
            raise ValueError(f'{type(self).__name__}: `lora` and `freeze=True` exclude each other '
                             '(a frozen model has no trainable LoRA weights).')
        if dtype not in DTYPES:
            raise ValueError(f'{type(self).__name__}: unknown `dtype` {dtype!r}; expected one of '
                             f'{sorted(DTYPES)}.')
        self.pretrained = self._check_pretrained(pretrained)
        self.freeze = freeze
        self.processor = self._load_processor(min_pixels, max_pixels)
        self.model = self._load_model(dtype, attn_implementation)
        self.generation = dict(DEFAULT_GENERATION, **(generation or {}))
        self._generation_config()  # fail at build time on a bad setting
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs=dict(use_reentrant=False))
        self.use_lora = lora is not None
        if self.use_lora:
            self.model = self._wrap_lora(self.model, lora)
        if freeze:
            self.model.requires_grad_(False)
            self.model.eval()
        if device is not None:
            self.model.to(device)

    # --------------------------------------------------------------------------------------------
    # Loading
    # --------------------------------------------------------------------------------------------

    def _check_pretrained(self, pretrained: str) -> str:
        """Return the absolute ``pretrained`` directory, or raise naming the path and config key."""
        path = osp.abspath(osp.expanduser(str(pretrained)))
        if not osp.isfile(osp.join(path, 'config.json')):
            what = 'has no config.json' if osp.isdir(path) else 'does not exist'
            raise FileNotFoundError(
                f'{type(self).__name__}: the model directory {path!r} (config key `pretrained`) '
                f'{what}. Set `pretrained` to a local directory saved with save_pretrained '
                '(model + processor); nothing is downloaded.')
        return path

    def _load_processor(self, min_pixels: Optional[int],
                        max_pixels: Optional[int]) -> 'ProcessorMixin':
        """Load the processor and apply the image budget to its image processor.

        Args:
            min_pixels (int, optional): ``size['shortest_edge']``, None keeps the checkpoint's.
            max_pixels (int, optional): ``size['longest_edge']``, None keeps the checkpoint's.

        Returns:
            transformers.ProcessorMixin: The processor.
        """
        from transformers import AutoProcessor
        from transformers.image_utils import SizeDict

        processor = AutoProcessor.from_pretrained(self.pretrained, local_files_only=True)
        size = processor.image_processor.size
        min_pixels = size['shortest_edge'] if min_pixels is None else int(min_pixels)
        max_pixels = size['longest_edge'] if max_pixels is None else int(max_pixels)
        if not 0 < min_pixels <= max_pixels:
            raise ValueError(f'{type(self).__name__}: need 0 < min_pixels <= max_pixels, got '
                             f'{min_pixels} and {max_pixels}.')
        processor.image_processor.size = SizeDict(shortest_edge=min_pixels,
                                                  longest_edge=max_pixels)
        return processor

    def _load_model(self, dtype: str,
                    attn_implementation: str) -> 'PreTrainedModel':
        """Load the model with this family's class, after checking the checkpoint's family.

        The token ids of the checkpoint's generation config are kept, its sampling settings are
        dropped (see the module docstring).

        Args:
            dtype (str): A key of :data:`DTYPES`.
            attn_implementation (str): The attention implementation.

        Returns:
            transformers.PreTrainedModel: The model, in eval mode if ``freeze``.
        """
        import transformers
        from transformers import AutoConfig, GenerationConfig

        found = AutoConfig.from_pretrained(self.pretrained, local_files_only=True).model_type
        if found != self.model_type:
            raise ValueError(
                f'{type(self).__name__} expects a {self.model_type!r} checkpoint, but '
                f'`pretrained` {self.pretrained!r} holds a {found!r} one; pick the adapter `type` '
                "of that family (their coordinate conventions differ).")
        model = getattr(transformers, self.model_class).from_pretrained(
            self.pretrained, local_files_only=True, dtype=DTYPES[dtype],
            attn_implementation=attn_implementation)
        tokenizer = self.processor.tokenizer
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

    @staticmethod
    def _wrap_lora(model: 'PreTrainedModel', lora: dict) -> 'PeftModel':
        """Add LoRA adapters with peft; only their weights stay trainable.

        Args:
            model (transformers.PreTrainedModel): The base model.
            lora (dict): ``r``, ``alpha``, ``dropout``, ``target_modules`` and further
                ``peft.LoraConfig`` keys.

        Returns:
            peft.PeftModel: The wrapped model.
        """
        from peft import LoraConfig, get_peft_model

        cfg = dict(lora)
        config = LoraConfig(
            r=cfg.pop('r', 8), lora_alpha=cfg.pop('alpha', 16),
            lora_dropout=cfg.pop('dropout', 0.0),
            target_modules=cfg.pop('target_modules', DEFAULT_LORA_TARGETS), **cfg)
        return get_peft_model(model, config)

    def init_weights(self) -> None:
        """Keep the loaded weights: mmengine's weight initialisation does not apply.

        Without this, mmengine would call the Hugging Face model's own ``init_weights``, which
        re-initialises modules that do not come from the checkpoint, e.g. zero-initialised LoRA
        ``B`` matrices.
        """

    def train(self, mode: bool = True) -> 'BaseVLMAdapter':
        """Set training mode; a frozen adapter stays in eval mode."""
        super().train(mode)
        if self.freeze:
            self.model.eval()
        return self

    @property
    def device(self) -> torch.device:
        """The device of the model's weights."""
        return next(self.model.parameters()).device

    # --------------------------------------------------------------------------------------------
    # Coordinate convention
    # --------------------------------------------------------------------------------------------

    def model_image_size(self, frame_size: Size) -> Size:
        """Size of an image of ``frame_size`` after the processor's resize (what the model sees).

        Args:
            frame_size (tuple[int, int]): ``(W, H)`` of the image fed to :meth:`generate`.

        Returns:
            tuple[int, int]: ``(W, H)`` of the model's input image.
        """
        raise NotImplementedError

    def model_coord_size(self, frame_size: Size) -> Size:
        """Extent of the model's coordinate space over an image of ``frame_size``.

        Args:
            frame_size (tuple[int, int]): ``(W, H)`` of the image fed to the model.

        Returns:
            tuple[int, int]: ``(sx, sy)``: the image's right/bottom edge is at ``x = sx`` /
            ``y = sy`` in model coordinates.
        """
        if self.relative_scale is None:
            return self.model_image_size(frame_size)
        return (self.relative_scale, self.relative_scale)

    def model_to_frame(self, coords, frame_size: Size) -> np.ndarray:
        """Map coordinates as the model writes them to pixels of the image it was fed.

        Args:
            coords: boxes (..., 4) ``[x1, y1, x2, y2]`` or points (..., 2) in model coordinates.
            frame_size (tuple[int, int]): ``(W, H)`` of the image fed to the model.

        Returns:
            np.ndarray: float32, same shape, in frame pixels (continuous, not clipped).
        """
        return model_to_frame(coords, frame_size,
                              self.model_coord_size(frame_size)).astype(np.float32)

    def frame_to_model(self, coords, frame_size: Size) -> np.ndarray:
        """Map pixels of the fed image to the model's coordinates (inverse of
        :meth:`model_to_frame`), e.g. to write target answers.

        Args:
            coords: boxes (..., 4) or points (..., 2) in frame pixels.
            frame_size (tuple[int, int]): ``(W, H)`` of the image fed to the model.

        Returns:
            np.ndarray: float32, same shape, in model coordinates.
        """
        return frame_to_model(coords, frame_size,
                              self.model_coord_size(frame_size)).astype(np.float32)

    def region_size_in_model(self, region_size: int, frame_size: Size) -> Tuple[int, int]:
        """Width and height, in the model's coordinates, of a ``region_size`` square of the frame:
        the region size the explorer prompt states (the one place that knows it).

        - Relative conventions (``relative_scale`` an int, Qwen2-VL / Qwen3-VL): the square mapped
          with :meth:`frame_to_model` and rounded, e.g. 256 in a 1920 x 1080 frame is
          ``(133, 237)`` on a 0..1000 scale (at least 1 unit each).
        - Absolute pixels (``relative_scale`` None, Qwen2.5-VL): ``(region_size, region_size)``
          unchanged, the authors' prompt ("a 256*256 bounding box"). Strictly the model's pixels
          are those of the smart-resized image, but for the explorer frame the resize changes each
          side by less than 2 % (1920 x 1080 becomes 1932 x 1092 with the checkpoint's pixel
          budget, 1904 x 1064 with ``max_pixels=1920 * 1080``), so the size is stated in frame
          pixels, as in the authors' prompt. The rewards and the SFT targets still convert the
          model's boxes exactly (:meth:`model_to_frame`, :meth:`frame_to_model`).

        Args:
            region_size (int): side of the region in frame pixels.
            frame_size (tuple[int, int]): ``(W, H)`` of the image fed to the model.

        Returns:
            tuple[int, int]: ``(width, height)`` in model coordinates.
        """
        if self.relative_scale is None:
            return int(region_size), int(region_size)
        side = float(region_size)
        box = self.frame_to_model(np.array([0.0, 0.0, side, side], np.float32), frame_size)
        return (max(1, int(round(float(box[2] - box[0])))),
                max(1, int(round(float(box[3] - box[1])))))

    # --------------------------------------------------------------------------------------------
    # Prompts and generation
    # --------------------------------------------------------------------------------------------

    def repeat_prompt_inputs(self, prompt_inputs: 'BatchFeature',
                             n: int) -> Dict[str, torch.Tensor]:
        """Repeat every prompt ``n`` times, prompt-major (as ``generate`` orders samples).

        Args:
            prompt_inputs (transformers.BatchFeature): B prompts from :meth:`build_inputs`.
            n (int): Repeats per prompt.

        Returns:
            dict[str, torch.Tensor]: The model inputs of the B*n prompts.
        """
        raise NotImplementedError

    def build_inputs(self, images: Sequence[np.ndarray],
                     prompts: Sequence[str]) -> 'BatchFeature':
        """Batch chat prompts of one image and one text each, left-padded for generation.

        Args:
            images (Sequence[np.ndarray]): B images (H, W, 3) uint8 RGB; sizes may differ.
            prompts (Sequence[str]): B user texts.

        Returns:
            transformers.BatchFeature: On CPU: ``input_ids`` and ``attention_mask`` (B, P)
            left-padded, the processor's image tensors (for Qwen: ``pixel_values`` (num_patches,
            patch_dim) over the whole batch, ``image_grid_thw`` (B, 3)) and ``mm_token_type_ids``
            (B, P).
        """
        if len(images) != len(prompts) or not prompts:
            raise ValueError(f'need as many images as prompts (at least one), got {len(images)} '
                             f'images and {len(prompts)} prompts')
        for image in images:
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError('images must be (H, W, 3) uint8 RGB arrays, got '
                                 f'{image.shape} {image.dtype}')
        conversations = [[dict(role='user', content=[dict(type='image'),
                                                     dict(type='text', text=prompt)])]
                         for prompt in prompts]
        texts = self.processor.apply_chat_template(
            conversations, add_generation_prompt=True, tokenize=False)
        return self.processor(
            text=texts, images=list(images), padding=True, padding_side='left',
            input_data_format='channels_last', return_tensors='pt')

    def _generation_config(self, **overrides) -> 'GenerationConfig':
        """The generation config of a call: the config's settings, then ``overrides``.

        Args:
            **overrides: ``GenerationConfig`` fields for this call.

        Returns:
            transformers.GenerationConfig: Validated; sampling-only fields dropped when greedy.
        """
        settings = dict(self.generation, **overrides)
        if not settings.get('do_sample'):
            for key in SAMPLING_KEYS:
                settings.pop(key, None)
        config = copy.deepcopy(self.model.generation_config)
        unknown = config.update(**settings)
        if unknown:
            raise ValueError(f'{type(self).__name__}: unknown generation settings '
                             f'{sorted(unknown)}')
        config.validate(strict=True)
        return config

    @torch.no_grad()
    def generate_from_inputs(self, prompt_inputs: 'BatchFeature', with_scores: bool = False,
                             **overrides) -> GenerationResult:
        """Generate completions for prompts built by :meth:`build_inputs`.

        The model runs in eval mode (restored afterwards), so generation keeps its KV cache when
        gradient checkpointing is on.

        Args:
            prompt_inputs (transformers.BatchFeature): B prompts.
            with_scores (bool): Also fill ``mean_logprobs``: one extra forward pass of
                :meth:`completion_logprobs` (temperature 1) over the completions, exact whatever
                the decoding (greedy, sampling, beam search). Defaults to False.
            **overrides: Generation settings of this call (see ``generation`` in the class doc).

        Returns:
            GenerationResult: B*n completions, prompt-major.
        """
        config = self._generation_config(**overrides)
        prompt_inputs = prompt_inputs.to(self.device)
        was_training = self.model.training
        self.model.eval()
        try:
            sequences = self.model.generate(**prompt_inputs, generation_config=config)
            completion_ids = sequences[:, prompt_inputs['input_ids'].shape[1]:]
            eos = config.eos_token_id
            mask = completion_mask_after_eos(completion_ids,
                                             eos if isinstance(eos, list) else [eos])
            completion_ids = completion_ids.masked_fill(mask == 0, config.pad_token_id)
            mean_logprobs = None
            if with_scores:
                mean_logprobs = masked_mean(
                    self.completion_logprobs(prompt_inputs, completion_ids, mask), mask).cpu()
        finally:
            self.model.train(was_training)
        texts = self.processor.batch_decode(completion_ids, skip_special_tokens=True)
        return GenerationResult(texts=texts, completion_ids=completion_ids, completion_mask=mask,
                                prompt_inputs=prompt_inputs,
                                num_return_sequences=config.num_return_sequences,
                                mean_logprobs=mean_logprobs)

    def generate(self, images: Sequence[np.ndarray], prompts: Sequence[str],
                 with_scores: bool = False, **overrides) -> GenerationResult:
        """Generate completions for B (image, prompt) pairs in one batch.

        Args:
            images (Sequence[np.ndarray]): B images (H, W, 3) uint8 RGB; sizes may differ.
            prompts (Sequence[str]): B user texts.
            with_scores (bool): Also fill ``GenerationResult.mean_logprobs`` (see
                :meth:`generate_from_inputs`). Defaults to False.
            **overrides: Generation settings of this call, e.g. ``do_sample=True,
                num_return_sequences=8``.

        Returns:
            GenerationResult: B*n completions, prompt-major.
        """
        return self.generate_from_inputs(self.build_inputs(images, prompts),
                                         with_scores=with_scores, **overrides)

    # --------------------------------------------------------------------------------------------
    # Scoring
    # --------------------------------------------------------------------------------------------

    def completion_logprobs(self, prompt_inputs: 'BatchFeature',
                            completion_ids: torch.Tensor,
                            completion_mask: torch.Tensor,
                            temperature: float = 1.0,
                            return_entropy: bool = False
                            ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """Per-token log-probs of completions under the current model, in one forward pass.

        Gradients flow (wrap in ``torch.no_grad()`` for old-policy or reference log-probs), through
        the entropies too (for an entropy bonus).

        Args:
            prompt_inputs (transformers.BatchFeature): The B prompts (``GenerationResult
                .prompt_inputs``).
            completion_ids (torch.Tensor): (B*n, T) completions, n per prompt, prompt-major.
            completion_mask (torch.Tensor): (B*n, T) 1 on the completions' tokens.
            temperature (float): Divides the logits (the sampling temperature). Defaults to 1.0.
            return_entropy (bool): Also return the entropy of each step's next-token distribution
                (of the tempered logits, the distribution the tokens were sampled from), computed
                from the same float32 logits by trl's ``selective_log_softmax_and_entropy``
                (``entropy_from_logits``; one fused pass with the log-probs on GPU). Defaults to
                False.

        Returns:
            torch.Tensor | tuple[torch.Tensor, torch.Tensor]: (B*n, T) float32 log-probs; 0 where
            ``completion_mask`` is 0. With ``return_entropy``: ``(logprobs, entropies)``, the
            entropies (B*n, T) float32 in nats, 0 where ``completion_mask`` is 0.
        """
        from trl.trainer.utils import selective_log_softmax, selective_log_softmax_and_entropy

        num_prompts = prompt_inputs['input_ids'].shape[0]
        if completion_ids.shape[0] % num_prompts or completion_ids.shape != completion_mask.shape:
            raise ValueError(f'completions {tuple(completion_ids.shape)} (mask '
                             f'{tuple(completion_mask.shape)}) do not match {num_prompts} prompts')
        device = self.device
        inputs = self.repeat_prompt_inputs(prompt_inputs.to(device),
                                           completion_ids.shape[0] // num_prompts)
        completion_ids, completion_mask = completion_ids.to(device), completion_mask.to(device)
        length = completion_ids.shape[1]
        inputs['input_ids'] = torch.cat([inputs['input_ids'], completion_ids], dim=1)
        inputs['attention_mask'] = torch.cat(
            [inputs['attention_mask'], completion_mask.to(inputs['attention_mask'].dtype)], dim=1)
        if 'mm_token_type_ids' in inputs:  # completions are text
            types = inputs['mm_token_type_ids']
            inputs['mm_token_type_ids'] = torch.cat([types, types.new_zeros(completion_ids.shape)],
                                                    dim=1)
        logits = self.model(**inputs, use_cache=False, logits_to_keep=length + 1).logits
        logits = logits[:, :-1].float()
        if not return_entropy:
            logprobs = selective_log_softmax(logits, completion_ids, temperature)
            return logprobs * completion_mask.to(logprobs.dtype)
        logprobs, entropies = selective_log_softmax_and_entropy(logits, completion_ids,
                                                                temperature=temperature)
        mask = completion_mask.to(logprobs.dtype)
        return logprobs * mask, entropies * mask

    @contextmanager
    def reference_policy(self) -> Iterator[None]:
        """Run the reference policy (the base model, LoRA disabled) inside the context.

        Raises:
            RuntimeError: Without LoRA there is no free reference policy: keep a frozen copy
                instead (a second adapter built with ``freeze=True``).
        """
        if not self.use_lora:
            raise RuntimeError(
                f'{type(self).__name__}.reference_policy() needs `lora` (it disables the LoRA '
                'adapter); for a full fine-tune build a frozen copy of the initial model as '
                'reference (the same adapter config with freeze=True).')
        with self.model.disable_adapter():
            yield
