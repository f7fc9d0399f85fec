# Copyright (c) finers_mm contributors. All rights reserved.
"""The family-independent part of a VLM adapter: the interface every adapter honours.

An adapter wraps one Hugging Face image-text-to-text model (``.model``) and its processor
(``.processor``), both loaded from a LOCAL directory (:mod:`.loading`), and gives the FineRS stages
what they need:

- :meth:`BaseVLMAdapter.build_inputs` / :meth:`~BaseVLMAdapter.generate`: batched chat prompts of
  one image + one text each, left-padded, decoded completions (:mod:`.generation`);
- :meth:`~BaseVLMAdapter.repeat_prompt_inputs` / :meth:`~BaseVLMAdapter.select_prompts`: a batch
  of encoded prompts repeated per sample or cut into chunks (family-specific: how image tensors
  are laid out);
- :meth:`~BaseVLMAdapter.completion_logprobs`: per-token log-probs of given completions (GRPO's
  policy, old-policy and reference log-probs, :mod:`.logprobs`), under
  :meth:`~BaseVLMAdapter.reference_policy` for the LoRA-disabled base model;
- the model's coordinate convention (:mod:`.coordinates`): :meth:`~BaseVLMAdapter.model_to_frame`
  and :meth:`~BaseVLMAdapter.frame_to_model` between what the model writes and the pixels of the
  image it was fed.

Family differences live in the subclasses' class attributes (:mod:`.qwen_vl`).
"""
from contextlib import contextmanager
from typing import TYPE_CHECKING, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.model import BaseModule

from .coordinates import MODEL_IMAGE, CoordinateConventionMixin, check_coordinates
from .generation import (DEFAULT_GENERATION, GenerationResult, build_generation_config,
                         completion_mask_after_eos, masked_mean)
from .loading import DTYPES, check_pretrained, load_model, load_processor, wrap_lora
from .logprobs import completion_token_logprobs
from .shared_generation import can_share_generation, shared_prompt_generate
from .shared_prefix import shared_prompt_logprobs

if TYPE_CHECKING:
    from transformers import BatchFeature, GenerationConfig


def check_image_prompt_pairs(images: Sequence[np.ndarray], prompts: Sequence[str]) -> None:
    """Refuse a batch that is not B >= 1 (image, prompt) pairs of (H, W, 3) uint8 RGB images.

    Raises:
        ValueError: as many images as prompts, none, or an image of another shape or dtype.
    """
    if len(images) != len(prompts) or not prompts:
        raise ValueError(f'need as many images as prompts (at least one), got {len(images)} '
                         f'images and {len(prompts)} prompts')
    for image in images:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError('images must be (H, W, 3) uint8 RGB arrays, got '
                             f'{image.shape} {image.dtype}')


class BaseVLMAdapter(CoordinateConventionMixin, BaseModule):
    """A Hugging Face image-text-to-text model and its processor, built from an mmengine config.

    Subclasses set the family's class attributes:

    - ``model_class`` (str): the transformers class to load (e.g.
      ``'Qwen2_5_VLForConditionalGeneration'``);
    - ``model_type`` (str): the ``model_type`` the checkpoint's ``config.json`` must declare;
    - ``relative_scale`` (int | None): the coordinate convention. None: ABSOLUTE pixels of the
      image as the model saw it, i.e. after the processor's resize (:meth:`model_image_size`);
      an int ``s``: coordinates relative to the image, ``0..s`` along each axis.

    and implement :meth:`model_image_size`, :meth:`repeat_prompt_inputs` and
    :meth:`select_prompts`.

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
        generation (dict, optional): Generation settings, merged over
            :data:`~finers_mm.models.vlm.generation.DEFAULT_GENERATION` (``max_new_tokens``,
            ``do_sample``, ``temperature``, ``top_p``, ``top_k`` (0: off),
            ``num_return_sequences``; any other ``transformers.GenerationConfig`` field too).
            Overridable per call of :meth:`generate`. Defaults to None.
        lora (dict, optional): LoRA via peft: ``r`` (default 8), ``alpha`` (16), ``dropout`` (0)
            and ``target_modules`` (a list of module names or a full-match regex; default: every
            linear layer of the language model,
            :data:`~finers_mm.models.vlm.loading.DEFAULT_LORA_TARGETS`); further keys go to
            ``peft.LoraConfig``. Defaults to None (full fine-tune).
        freeze (bool): Freeze every weight and keep the model in eval mode (inference only,
            e.g. a frozen refiner). Defaults to False.
        coordinates (str): what an absolute-pixel family's numbers are
            (:data:`~finers_mm.models.vlm.coordinates.COORDINATES`): ``'model_image'`` (default,
            the pixels of the processor-resized image the model sees) or ``'frame'`` (the pixels
            of the image as given, the authors' convention; set by the stage's ``protocol``).
            Ignored by relative families (Qwen2-VL, Qwen3-VL: 0..1000 either way).
        share_prompt (bool): each prompt (and its image) is computed once for its n samples:
            :meth:`generate_from_inputs` prefills it once and decodes the n samples from its
            repeated keys/values (:mod:`.shared_generation`), :meth:`completion_logprobs` runs
            the n completions against its keys/values (:mod:`.shared_prefix`); both equal to
            the repeated-prompt computation, with n times less prompt work. False: one prompt
            copy per sample (HF ``generate``, :mod:`.logprobs`). Defaults to True.
    """

    model_class: str
    model_type: str

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
                 freeze: bool = False,
                 coordinates: str = MODEL_IMAGE,
                 share_prompt: bool = True) -> None:
        super().__init__()
        self.share_prompt = share_prompt
        owner = type(self).__name__
        self.coordinates = check_coordinates(coordinates, owner)
        if lora is not None and freeze:
            raise ValueError(f'{owner}: `lora` and `freeze=True` exclude each other (a frozen '
                             'model has no trainable LoRA weights).')
        if dtype not in DTYPES:
            raise ValueError(f'{owner}: unknown `dtype` {dtype!r}; expected one of '
                             f'{sorted(DTYPES)}.')
        self.pretrained = check_pretrained(pretrained, owner)
        self.freeze = freeze
        self.processor = load_processor(self.pretrained, min_pixels, max_pixels, owner)
        self.model = load_model(self.pretrained, self.model_class, self.model_type,
                                self.processor, dtype, attn_implementation, owner)
        self.generation = dict(DEFAULT_GENERATION, **(generation or {}))
        self._generation_config()  # fail at build time on a bad setting
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs=dict(use_reentrant=False))
        self.use_lora = lora is not None
        if self.use_lora:
            self.model = wrap_lora(self.model, lora)
        if freeze:
            self.model.requires_grad_(False)
            self.model.eval()
        if device is not None:
            self.model.to(device)

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
    # Prompts (the layout of the image tensors is the family's)
    # --------------------------------------------------------------------------------------------

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
        check_image_prompt_pairs(images, prompts)
        return self.processor(
            text=self.chat_texts(prompts), images=list(images), padding=True,
            padding_side='left', input_data_format='channels_last', return_tensors='pt')

    def chat_texts(self, prompts: Sequence[str]) -> List[str]:
        """The chat-templated text of each prompt (one user turn: the image, then the text),
        before the processor expands the image placeholder: what :meth:`build_inputs` encodes
        and what a rollout engine that tokenises on its own (vLLM) is given.

        Args:
            prompts (Sequence[str]): B user texts.

        Returns:
            list[str]: B texts, the generation prompt (assistant turn) opened.
        """
        conversations = [[dict(role='user', content=[dict(type='image'),
                                                     dict(type='text', text=prompt)])]
                         for prompt in prompts]
        return self.processor.apply_chat_template(
            conversations, add_generation_prompt=True, tokenize=False)

    def repeat_prompt_inputs(self, prompt_inputs: 'BatchFeature',
                             n: int) -> Dict[str, torch.Tensor]:
        """Repeat every prompt ``n`` times, prompt-major (as ``generate`` orders samples).

        Args:
            prompt_inputs (transformers.BatchFeature): B prompts from :meth:`build_inputs`.
            n (int): Repeats per prompt.

        Returns:
            dict[str, torch.Tensor]: The model inputs of the B*n prompts: per-prompt tensors
            (B*n, ...), prompt ``i``'s rows at ``i * n .. i * n + n - 1``.
        """
        raise NotImplementedError(
            f'{type(self).__name__} must implement repeat_prompt_inputs (repeat each encoded '
            "prompt n times, its image tensors included, in the family's layout)")

    def select_prompts(self, prompt_inputs: 'BatchFeature', first: int,
                       last: int) -> 'BatchFeature':
        """Prompts ``first`` to ``last - 1`` of a batch from :meth:`build_inputs`, e.g. to score
        a batch's completions in chunks (GRPO's reference log-probs).

        Args:
            prompt_inputs (transformers.BatchFeature): B prompts of one image each:
                ``input_ids`` / ``attention_mask`` (B, P) and the family's image tensors.
            first (int): first prompt kept, ``0 <= first < last``.
            last (int): one past the last prompt kept, ``last <= B``.

        Returns:
            transformers.BatchFeature: the inputs of the ``last - first`` prompts (with the
            batch's left padding): per-prompt tensors ``(last - first, ...)`` and the image
            tensors of those prompts' images only.
        """
        raise NotImplementedError(
            f'{type(self).__name__} must implement select_prompts (cut prompts first:last out '
            "of an encoded batch, their image tensors included, in the family's layout)")

    # --------------------------------------------------------------------------------------------
    # Generation
    # --------------------------------------------------------------------------------------------

    def _generation_config(self, **overrides) -> 'GenerationConfig':
        """The generation config of a call: the config's settings, then ``overrides``
        (:func:`~finers_mm.models.vlm.generation.build_generation_config`)."""
        return build_generation_config(self.model.generation_config,
                                       dict(self.generation, **overrides), type(self).__name__)

    @torch.no_grad()
    def generate_from_inputs(self, prompt_inputs: 'BatchFeature', with_scores: bool = False,
                             **overrides) -> GenerationResult:
        """Generate completions for prompts built by :meth:`build_inputs`.

        The model runs in eval mode (restored afterwards), so generation keeps its KV cache when
        gradient checkpointing is on. With ``share_prompt`` and n > 1 sampled completions per prompt
        each prompt and its image are prefilled once and the n samples decoded from its
        repeated keys/values (:mod:`.shared_generation`: HF's logits processors and stopping
        criteria, the same tokens under the same seed); otherwise (n = 1, beam search)
        ``model.generate`` runs on the prompts repeated n times.

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
            if self.share_prompt and can_share_generation(self.model, config):
                completion_ids = shared_prompt_generate(self.model, dict(prompt_inputs), config)
            else:
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
        """Per-token log-probs of completions under the current model: one forward pass, or
        with ``share_prompt`` one over the B prompts and one over the completions against them.

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
        num_prompts = prompt_inputs['input_ids'].shape[0]
        if completion_ids.shape[0] % num_prompts or completion_ids.shape != completion_mask.shape:
            raise ValueError(f'completions {tuple(completion_ids.shape)} (mask '
                             f'{tuple(completion_mask.shape)}) do not match {num_prompts} prompts')
        device = self.device
        n = completion_ids.shape[0] // num_prompts
        if self.share_prompt and n > 1:  # one completion per prompt: nothing to share
            return shared_prompt_logprobs(self.model, dict(prompt_inputs.to(device)),
                                          completion_ids.to(device), completion_mask.to(device),
                                          temperature=temperature, return_entropy=return_entropy)
        inputs = self.repeat_prompt_inputs(prompt_inputs.to(device), n)
        return completion_token_logprobs(self.model, inputs, completion_ids.to(device),
                                         completion_mask.to(device), temperature=temperature,
                                         return_entropy=return_entropy)

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
