# Copyright (c) finers_mm contributors. All rights reserved.
"""VLMStageModel: what GlobalExplorer (GSE) and LocalRefiner (LPR) share.

A stage is one VLM, one prompt per (stage, question type), and two ways to train:

- ``train_mode='sft'``: supervised warm-up (cold start). The loss is the cross-entropy of a
  GT-formatted answer (:meth:`target_answer`, written in the model's own coordinates) after the
  prompt.
- ``train_mode='grpo'``: :class:`~finers_mm.rl.GRPOHook` samples completions before each iteration,
  scores them and puts a :class:`~finers_mm.rl.Rollout` in the batch; the loss is the GRPO loss
  (:class:`~finers_mm.models.losses.GRPOLoss`) of those completions under the current policy.

mmengine's OptimWrapper (AMP, gradient accumulation, clipping), schedulers, checkpointing and DDP do
the rest; one mmengine iteration is one optimiser step (or one accumulation step).

Subclasses set ``stage`` and implement the stage's frames: :meth:`views` (the images the model reads
in training), :meth:`reward_sample` (the GT of a view in its frame) and :meth:`target_answer`.
"""
import copy
import json
import logging
import re
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmengine.logging import MMLogger, print_log
from mmengine.model import BaseModel
from mmengine.runner.checkpoint import _load_checkpoint, load_state_dict

from finers_mm.registry import MODELS
from finers_mm.structures import image_size
from finers_mm.structures.answers import FOUND_RESPONSE, extract_option_letter
from finers_mm.structures.authors_prompts import TEST, TRAIN
from finers_mm.structures.frames import Size
from finers_mm.structures.protocols import (AUTHORS, DEFAULT_PROTOCOL, check_protocol,
                                            protocol_setting)
from finers_mm.structures.reward_sample import RewardSample
from finers_mm.structures.vocabulary import MULTIPLE_CHOICE, SEGMENTATION
from .prompts import PromptBuilder
from .stages import Query

TRAIN_MODES = ('sft', 'grpo')



def digit_token_mask(tokenizer, ids: torch.Tensor) -> torch.Tensor:
    """Which token ids are digits (``'0'``..``'9'``, a byte-level leading space allowed).

    Args:
        tokenizer: a Hugging Face tokenizer.
        ids (torch.Tensor): (B, L) token ids.

    Returns:
        torch.Tensor: (B, L) bool, on the CPU.
    """
    vocab = {int(i) for i in ids.unique().tolist()}
    digit_ids = [i for i in vocab if tokenizer.decode([i]).strip().isdigit()]
    return torch.isin(ids.cpu(), torch.as_tensor(digit_ids, dtype=ids.dtype))


def leading_digits(digits: torch.Tensor) -> torch.Tensor:
    """The first digit of each run of digits (of each number, one token per digit).

    Args:
        digits (torch.Tensor): (B, L) bool, e.g. :func:`digit_token_mask`.

    Returns:
        torch.Tensor: (B, L) bool, True where a digit follows a non-digit or starts a row.
    """
    return digits & ~torch.nn.functional.pad(digits[:, :-1], (1, 0), value=False)


class VLMStageModel(BaseModel):
    """Base of the two FineRS stages; see the module docstring.

    Args:
        vlm (dict): config of a VLM adapter (:mod:`finers_mm.models.vlm`).
        prompt (dict, optional): :class:`~finers_mm.models.prompts.PromptBuilder` arguments.
        train_mode (str): ``'grpo'`` (default) or ``'sft'``.
        grpo_loss (dict, optional): config of the GRPO loss; ``type`` defaults to
            :class:`~finers_mm.models.losses.GRPOLoss` (the authors' settings as its defaults), so
            ``dict(kl_coef=0.0)`` changes one setting.
        think_template (str): the ``<think>`` text of SFT targets; ``{question}`` is filled in.
        choice_think (str, optional): the ``<think>`` text of multiple-choice SFT targets instead
            of ``think_template``; ``{question}``, ``{choice}`` (the text of the right option,
            e.g. ``'top-right'`` for ``B``) and ``{letter}`` (``'B'``) are filled in, so the
            target names what was seen before the letter that stands for it. Defaults to None:
            ``think_template``.
        protocol (str): ``'finers_mm'`` (default) or ``'authors'``
            (:mod:`finers_mm.structures.protocols`): the prompts (the authors' training prompts in
            training, their evaluation prompts at inference) and the VLM's coordinate convention
            (``coordinates`` of the adapter, unless ``vlm`` sets it). A config sets
            ``protocol = ...`` once and finers_mm's config loader hands it here.
        data_preprocessor (dict): defaults to ``FineRSDataPreprocessor``.
        init_cfg (dict, optional): mmengine init config.
    """

    stage: str

    def __init__(self, vlm: dict, prompt: Optional[dict] = None, train_mode: str = 'grpo',
                 grpo_loss: Optional[dict] = None,
                 think_template: str = 'The question is: {question} I compare the candidate '
                 'objects and locate the one it refers to.',
                 choice_think: Optional[str] = None,
                 protocol: str = DEFAULT_PROTOCOL,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor or dict(type='FineRSDataPreprocessor'),
                         init_cfg=init_cfg)
        if train_mode not in TRAIN_MODES:
            raise ValueError(f'train_mode must be one of {TRAIN_MODES}, got {train_mode!r}')
        self.protocol = check_protocol(protocol)
        self.loss_grpo = _build_grpo_loss(grpo_loss, self.protocol)
        vlm = dict(vlm)
        vlm.setdefault('coordinates', protocol_setting(protocol, 'coordinates'))
        self.vlm_cfg = copy.deepcopy(vlm)
        self.vlm = MODELS.build(vlm)
        self.prompts = PromptBuilder(**dict(prompt or {}, protocol=protocol))
        if self.protocol == AUTHORS and self.vlm.relative_scale is not None:
            # their prompts state the region in frame pixels ("256*256"): Qwen2.5-VL's convention
            print_log(f'{type(self).__name__}: protocol "authors" asks the authors\' Qwen2.5-VL '
                      f'prompts, but {type(self.vlm).__name__} answers in 0..'
                      f'{self.vlm.relative_scale} coordinates; use protocol "finers_mm" with it',
                      logger='current', level=logging.WARNING)
        self.train_mode = train_mode
        self.think_template = think_template
        self.choice_think = choice_think

    # --- the stage's frames (subclasses) ------------------------------------------------------

    def views(self, inputs: dict, data_samples: Sequence[DetDataSample]) -> List[np.ndarray]:
        """The (h, w, 3) uint8 RGB images this stage reads in training, one per sample."""
        raise NotImplementedError

    def reward_sample(self, data_sample: DetDataSample, view: np.ndarray,
                      with_mask: bool = False):
        """The :class:`~finers_mm.rl.rewards.RewardSample` of a view: its GT in the view's frame.

        Args:
            data_sample (DetDataSample): a packed training sample.
            view (np.ndarray): the (h, w, 3) image this stage read for it.
            with_mask (bool): also fill ``image`` and ``gt_mask`` (for mask-based rewards).
        """
        raise NotImplementedError

    def target_answer(self, data_sample: DetDataSample, view: np.ndarray) -> dict:
        """The GT answer as the stage's JSON object, coordinates in the model's convention."""
        raise NotImplementedError

    # --- shared ---------------------------------------------------------------------------------

    def _reward_sample(self, data_sample: DetDataSample, view: np.ndarray, **stage_fields):
        """A :class:`~finers_mm.rl.rewards.RewardSample` of ``view`` with the fields every stage
        fills (stage, frame and model coordinate sizes, question, answer, options) and the
        stage's own ``stage_fields``."""
        frame = image_size(view)
        return RewardSample(
            stage=self.stage, frame_size=frame, model_coord_size=self.vlm.model_coord_size(frame),
            question_type=data_sample.question_type, answer=data_sample.answer,
            options=Query.from_data_sample(data_sample).options, **stage_fields)

    def build_prompt(self, query: Query, frame_size: Optional[Size] = None,
                     phase: str = TEST) -> str:
        """This stage's prompt for one query: the one place that builds it, in training
        (:meth:`build_prompts`) and at inference alike.

        Args:
            query (Query): what the sample asks.
            frame_size (tuple[int, int], optional): ``(W, H)`` of the image the model reads with
                it (the explorer states its region size in the model's units of that image).
            phase (str): ``'test'`` (inference, default) or ``'train'``; only the authors'
                protocol prompts differently in the two.

        Returns:
            str: the prompt.
        """
        return self.prompts.build(self.stage, query.question, query.question_type,
                                  query.prompt_options, coordinate_scale=self.vlm.relative_scale,
                                  phase=phase)

    def build_prompts(self, data_samples: Sequence[DetDataSample],
                      views: Sequence[np.ndarray]) -> List[str]:
        """This stage's TRAINING prompt for each sample's query on its view (:meth:`build_prompt`
        with ``phase='train'``): SFT and GRPO rollouts read these.

        Args:
            data_samples (Sequence[DetDataSample]): the samples.
            views (Sequence[np.ndarray]): the (h, w, 3) images the model reads with them
                (:meth:`views`), for their sizes.

        Returns:
            list[str]: one prompt per sample.
        """
        if len(views) != len(data_samples):
            raise ValueError(f'{len(views)} views for {len(data_samples)} samples')
        return [self.build_prompt(Query.from_data_sample(sample), image_size(view), phase=TRAIN)
                for sample, view in zip(data_samples, views)]

    def target_text(self, data_sample: DetDataSample, view: np.ndarray) -> str:
        """The full SFT target: ``<think>…</think><answer>{JSON}</answer>``."""
        if self.choice_think is not None and data_sample.question_type == MULTIPLE_CHOICE:
            letter = self.target_response(data_sample)
            choice = Query.from_data_sample(data_sample).options[letter]
            think = self.choice_think.format(question=data_sample.question, choice=choice,
                                             letter=letter)
        else:
            think = self.think_template.format(question=data_sample.question)
        answer = json.dumps(self.target_answer(data_sample, view))
        return f'<think>{think}</think><answer>{answer}</answer>'

    @staticmethod
    def target_response(data_sample: DetDataSample) -> str:
        """The ``response`` an SFT target gives: the found-sentence, the option letter or the answer.

        Raises:
            ValueError: a multiple-choice GT answer that names no single option.
        """
        if data_sample.question_type == SEGMENTATION:
            return FOUND_RESPONSE
        if data_sample.question_type == MULTIPLE_CHOICE:
            letter = extract_option_letter(data_sample.answer, data_sample.get('options', None))
            if letter is None:
                raise ValueError(f'record {data_sample.get("ann_index")}: the multiple-choice '
                                 f'answer {data_sample.answer!r} names no single option')
            return letter
        return str(data_sample.answer)

    def build_reference(self, source: str = 'policy'):
        """A frozen copy of the initial policy, for the KL term of a full fine-tune; with LoRA the
        reference is free (the adapter disabled) and this is not needed.

        The reference is the policy as it stands when training starts, i.e. after mmengine loaded
        ``load_from`` (an SFT warm-up), not the ``pretrained`` model of the config.

        Args:
            source (str): ``'policy'`` (default): a deep copy of the stage's VLM as it is now (call
                it when training starts, after ``load_from`` was loaded). ``'pretrained'``: the
                adapter config (``pretrained``) alone. Any other value: the path of an mmengine
                checkpoint whose ``vlm.`` weights are loaded over the config's model, as mmengine's
                ``load_from`` loads them (non-strict, ``module.`` prefixes stripped): the initial
                policy of a run that started from that checkpoint, rebuilt when it resumes.

        Returns:
            BaseVLMAdapter: the reference adapter, in eval mode, every weight frozen, on the
            policy's device. It is not a submodule of the stage (not in its ``state_dict``).
        """
        if source == 'policy':
            reference = copy.deepcopy(self.vlm)
            if getattr(reference.model, 'is_gradient_checkpointing', False):
                reference.model.gradient_checkpointing_disable()
        else:
            cfg = copy.deepcopy(self.vlm_cfg)
            cfg.pop('lora', None)
            cfg.update(freeze=True, gradient_checkpointing=False)
            reference = MODELS.build(cfg)
            if source != 'pretrained':
                self._load_reference_weights(reference, source)
        reference.freeze = True  # BaseVLMAdapter.train() keeps a frozen adapter in eval mode
        reference.requires_grad_(False)
        reference.eval()
        return reference.to(self.vlm.device)

    @staticmethod
    def _load_reference_weights(reference, checkpoint: str) -> None:
        """Load the ``vlm.`` weights of a stage checkpoint into ``reference`` (like load_from)."""
        loaded = _load_checkpoint(checkpoint, map_location='cpu')
        state_dict = loaded.get('state_dict', loaded)
        state_dict = {re.sub(r'^module\.', '', key): value for key, value in state_dict.items()}
        prefix = 'vlm.'
        weights = {key[len(prefix):]: value for key, value in state_dict.items()
                   if key.startswith(prefix)}
        if not weights:
            raise RuntimeError(f'the checkpoint {checkpoint!r} holds no weights of a stage VLM '
                               f'(no "{prefix}" keys), so it cannot be the GRPO reference')
        load_state_dict(reference, weights, strict=False, logger=MMLogger.get_current_instance())

    def sft_loss(self, inputs: dict, data_samples: Sequence[DetDataSample]) -> Dict[str, torch.Tensor]:
        """Token-mean cross-entropy of the GT-formatted answers after the prompts.

        Returns:
            dict: ``loss``, and logged: ``target_tokens`` (mean target length), ``digit_nll``
            (the mean NLL of the targets' digit tokens alone, 0 without any: the coordinates,
            which a stage must find in the image, while the layout around them is learnt at once
            and dominates ``loss``) and ``lead_digit_nll`` (that of each number's leading digit:
            where a coordinate is to a tenth of the view; ``digit_nll`` also falls as a stage
            learns the digits that follow from others, e.g. x2 = x1 + the asked width).
        """
        views = self.views(inputs, data_samples)
        prompt_inputs = self.vlm.build_inputs(views, self.build_prompts(data_samples, views))
        tokenizer = self.vlm.processor.tokenizer
        targets = [tokenizer(self.target_text(s, v), add_special_tokens=False)['input_ids']
                   + [tokenizer.eos_token_id] for s, v in zip(data_samples, views)]
        length = max(len(t) for t in targets)
        ids = torch.full((len(targets), length), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, target in enumerate(targets):
            ids[row, :len(target)] = torch.as_tensor(target)
            mask[row, :len(target)] = 1
        logps = self.vlm.completion_logprobs(prompt_inputs, ids, mask)
        mask = mask.to(logps.device)
        loss = -(logps * mask).sum() / mask.sum()
        digits = digit_token_mask(tokenizer, ids).to(logps.device) & mask.bool()
        leading = leading_digits(digits)
        logps = logps.detach()
        return dict(loss=loss, target_tokens=mask.sum(1).float().mean().detach(),
                    digit_nll=-(logps * digits).sum() / digits.sum().clamp(min=1),
                    lead_digit_nll=-(logps * leading).sum() / leading.sum().clamp(min=1))

    def grpo_loss(self, rollout) -> Dict[str, torch.Tensor]:
        """The GRPO loss of a rollout's completions under the current policy.

        Args:
            rollout (finers_mm.rl.Rollout): completions, advantages and reference log-probs.

        Returns:
            dict: ``loss`` and the logged ``kl``, ``clip_fraction``, ``entropy``.
        """
        logps, entropies = self.vlm.completion_logprobs(
            rollout.prompt_inputs, rollout.completion_ids, rollout.completion_mask,
            temperature=rollout.temperature, return_entropy=True)
        device = logps.device
        old_logps = logps.detach() if rollout.old_logps is None else rollout.old_logps.to(device)
        ref_logps = rollout.ref_logps
        out = self.loss_grpo(
            logps, old_logps, rollout.advantages.to(device), rollout.completion_mask.to(device),
            ref_logps=None if ref_logps is None else ref_logps.to(device), entropies=entropies,
            max_completion_length=rollout.max_completion_length)
        logged = dict(loss=out.loss, clip_fraction=out.clip_fraction.detach(),
                      entropy=out.entropy.detach())
        if out.kl is not None:
            logged['kl'] = out.kl.detach()
        return logged

    def loss(self, inputs: dict, data_samples: Sequence[DetDataSample],
             rollout=None) -> Dict[str, torch.Tensor]:
        """The training loss of ``train_mode``.

        Raises:
            RuntimeError: GRPO training without a rollout (``GRPOHook`` missing from
                ``custom_hooks``).
        """
        if self.train_mode == 'sft':
            return self.sft_loss(inputs, data_samples)
        if rollout is None:
            raise RuntimeError(
                f"{type(self).__name__}(train_mode='grpo') got no rollout: add "
                "custom_hooks=[dict(type='GRPOHook', reward=...)] to the config, or train with "
                "train_mode='sft'")
        return self.grpo_loss(rollout)

    def predict(self, inputs: dict, data_samples: List[DetDataSample]) -> List[DetDataSample]:
        """Stage-specific prediction (see the subclasses)."""
        raise NotImplementedError

    def forward(self, inputs: dict, data_samples: Optional[list] = None, mode: str = 'predict',
                rollout=None):
        """mmengine's entry point: ``'loss'`` (SFT or GRPO) or ``'predict'``."""
        if mode == 'loss':
            return self.loss(inputs, data_samples, rollout)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise ValueError(f"{type(self).__name__} supports mode 'loss' and 'predict', got {mode!r}")


def _build_grpo_loss(cfg: Optional[dict], protocol: str) -> torch.nn.Module:
    """The stage's GRPO loss module from its ``grpo_loss`` config (``type`` GRPOLoss by default,
    running by the stage's protocol unless the config says otherwise)."""
    cfg = dict(cfg or {})
    cfg.setdefault('type', 'GRPOLoss')
    if cfg['type'] in ('GRPOLoss', 'finers_mm.GRPOLoss'):
        cfg.setdefault('protocol', protocol)
    try:
        return MODELS.build(cfg)
    except TypeError as error:
        raise ValueError(f'grpo_loss={cfg!r}: {error}') from error
