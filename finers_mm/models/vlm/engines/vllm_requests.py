# Copyright (c) finers_mm contributors. All rights reserved.
"""What the vLLM engine sends and what it makes of the answer; pure, testable without vLLM.

- :func:`build_requests`: one vLLM prompt per (image, prompt): the chat-templated text our
  processor encodes (vLLM runs the same Hugging Face processor on it and the image) and the
  image as a PIL RGB image;
- :func:`sampling_kwargs` / :func:`request_seed`: the ``vllm.SamplingParams`` fields of a
  request from the adapter's generation settings, seeded per (rollout seed, prompt);
- :func:`check_prompt_tokens`: vLLM's prompt tokens against our processor's (the log-probs of
  the loss are computed on ours);
- :func:`completions_to_result`: vLLM's completion token ids -> the adapter's
  :class:`~finers_mm.models.vlm.GenerationResult`, padded and masked as Hugging Face generate's.
"""
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

import numpy as np
import torch

from ..base import check_image_prompt_pairs
from ..generation import GenerationResult, completion_mask_after_eos

if TYPE_CHECKING:
    from transformers import BatchFeature

    from ..base import BaseVLMAdapter

#: vLLM's most negative logit bias: what keeps a token from being sampled (exp(-100) ~ 4e-44)
BLOCK_BIAS = -100.0


def build_requests(adapter: 'BaseVLMAdapter', images: Sequence[np.ndarray],
                   prompts: Sequence[str]) -> List[dict]:
    """vLLM prompts for B (image, prompt) pairs.

    Args:
        adapter (BaseVLMAdapter): gives the chat template
            (:meth:`~finers_mm.models.vlm.BaseVLMAdapter.chat_texts`).
        images (Sequence[np.ndarray]): B images (H, W, 3) uint8 RGB.
        prompts (Sequence[str]): B user texts.

    Returns:
        list[dict]: B ``{'prompt': text, 'multi_modal_data': {'image': PIL.Image (RGB)}}``.
    """
    from PIL import Image

    check_image_prompt_pairs(images, prompts)
    return [dict(prompt=text,
                 multi_modal_data=dict(image=Image.fromarray(np.ascontiguousarray(image))))
            for text, image in zip(adapter.chat_texts(prompts), images)]


def request_seed(seed: int, prompt_index: int) -> int:
    """The sampling seed of one prompt of a rollout.

    vLLM seeds sample ``j`` of a request seeded ``s`` with ``s + j``, so the seeds of different
    prompts are drawn far apart: a hash (numpy's ``SeedSequence``) of the rollout seed (itself a
    function of the run's seed, the iteration and the rank) and the prompt's index.

    Args:
        seed (int): the rollout's seed.
        prompt_index (int): the prompt's index in the rollout's batch.

    Returns:
        int: a seed in ``[0, 2**31)``.
    """
    state = np.random.SeedSequence([int(seed) % 2**63, int(prompt_index)]).generate_state(1)
    return int(state[0] & 0x7FFFFFFF)


def eos_ids(adapter: 'BaseVLMAdapter') -> List[int]:
    """The adapter's end-of-sequence ids (its generation config's)."""
    eos = adapter.model.generation_config.eos_token_id
    return list(eos) if isinstance(eos, (list, tuple)) else [eos]


def sampling_kwargs(settings: dict, eos_token_ids: Sequence[int],
                    blocked_token_ids: Sequence[int] = (),
                    seed: Optional[int] = None) -> dict:
    """``vllm.SamplingParams`` fields from the adapter's generation settings.

    Args:
        settings (dict): the call's generation settings (the adapter's ``generation`` with the
            call's overrides): ``max_new_tokens``, ``do_sample``, ``temperature``, ``top_p``,
            ``top_k`` (0: off), ``num_return_sequences``. Other keys (beam search, penalties)
            have no equivalent here and are refused.
        eos_token_ids (Sequence[int]): ids that end a completion (kept in its tokens, as
            Hugging Face generate keeps them).
        blocked_token_ids (Sequence[int]): ids never sampled (the vision placeholders, which
            the adapter's ``suppress_tokens`` blocks in Hugging Face generate).
        seed (int, optional): the request's seed (:func:`request_seed`).

    Returns:
        dict: ``n``, ``temperature`` (0 for greedy), ``top_p``, ``top_k`` (-1: off),
        ``max_tokens``, ``stop_token_ids``, ``seed``, ``logit_bias``, and neutral
        ``repetition_penalty``/``min_p`` (no hidden sampling change).

    Raises:
        ValueError: a setting vLLM's sampling cannot reproduce.
    """
    known = {'max_new_tokens', 'do_sample', 'temperature', 'top_p', 'top_k',
             'num_return_sequences'}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f'VLLMRolloutEngine: the generation settings {unknown} have no vLLM '
                         f'equivalent here (supported: {sorted(known)}); drop them or use the '
                         'HFRolloutEngine.')
    sample = bool(settings.get('do_sample', False))
    top_k = int(settings.get('top_k', 0) or 0) if sample else 0
    kwargs = dict(
        n=int(settings.get('num_return_sequences', 1)),
        temperature=float(settings.get('temperature', 1.0)) if sample else 0.0,
        top_p=float(settings.get('top_p', 1.0)) if sample else 1.0,
        top_k=top_k if top_k > 0 else -1,
        max_tokens=int(settings['max_new_tokens']),
        stop_token_ids=[int(i) for i in eos_token_ids],
        repetition_penalty=1.0, min_p=0.0, seed=seed, skip_special_tokens=True)
    if blocked_token_ids:
        kwargs['logit_bias'] = {int(i): BLOCK_BIAS for i in blocked_token_ids}
    return kwargs


def unpadded_prompt_ids(prompt_inputs: 'BatchFeature') -> List[List[int]]:
    """Each prompt's token ids without the batch's left padding."""
    return [ids[mask.bool()].tolist()
            for ids, mask in zip(prompt_inputs['input_ids'], prompt_inputs['attention_mask'])]


def check_prompt_tokens(engine_prompt_ids: Sequence[Sequence[int]],
                        prompt_inputs: 'BatchFeature') -> None:
    """Refuse a rollout whose prompts vLLM tokenised differently from our processor.

    The loss scores the completions against ``prompt_inputs`` (our processor's tokens, image
    placeholders expanded by its image budget); completions sampled against other prompt tokens
    (another image size, another chat template) would be scored off-policy without notice.

    Args:
        engine_prompt_ids (Sequence[Sequence[int]]): B prompts as vLLM saw them
            (``RequestOutput.prompt_token_ids``).
        prompt_inputs (transformers.BatchFeature): the same B prompts from the adapter's
            ``build_inputs``.

    Raises:
        ValueError: naming the first prompt that differs and where.
    """
    ours = unpadded_prompt_ids(prompt_inputs)
    if len(ours) != len(engine_prompt_ids):
        raise ValueError(f'vLLM answered {len(engine_prompt_ids)} prompts for {len(ours)}')
    for index, (theirs, mine) in enumerate(zip(engine_prompt_ids, ours)):
        theirs = list(theirs)
        if theirs != mine:
            at = next((i for i, (a, b) in enumerate(zip(theirs, mine)) if a != b),
                      min(len(theirs), len(mine)))
            raise ValueError(
                f'VLLMRolloutEngine: prompt {index} has {len(theirs)} tokens in vLLM and '
                f'{len(mine)} in our processor, first difference at token {at}. The image '
                'budget (min/max pixels: `mm_processor_kwargs`) or the chat template differ '
                "between vLLM's processor and the adapter's; make them equal.")


def completions_to_result(token_ids: Sequence[Sequence[int]], eos_token_ids: Sequence[int],
                          pad_token_id: int, adapter: 'BaseVLMAdapter',
                          prompt_inputs: 'BatchFeature', n: int) -> GenerationResult:
    """The adapter's generation result from vLLM's completion tokens.

    Args:
        token_ids (Sequence[Sequence[int]]): B*n completions' token ids, prompt-major (a
            completion ends with its eos token, or at the token budget).
        eos_token_ids (Sequence[int]): ids that end a completion.
        pad_token_id (int): the padding id.
        adapter (BaseVLMAdapter): decodes the texts with its processor.
        prompt_inputs (transformers.BatchFeature): the B prompts from ``build_inputs``.
        n (int): completions per prompt.

    Returns:
        GenerationResult: ``completion_ids`` (B*n, T) right-padded with ``pad_token_id``,
        ``completion_mask`` up to and including the first eos (as
        :func:`~finers_mm.models.vlm.completion_mask_after_eos`), texts decoded from the ids with
        special tokens skipped (as the HF path decodes), ``prompt_inputs`` as given.
    """
    if len(token_ids) != prompt_inputs['input_ids'].shape[0] * n:
        raise ValueError(f'{len(token_ids)} completions for '
                         f"{prompt_inputs['input_ids'].shape[0]} prompts x {n}")
    width = max(1, max(len(ids) for ids in token_ids))
    completion_ids = torch.full((len(token_ids), width), int(pad_token_id), dtype=torch.long)
    for row, ids in enumerate(token_ids):
        completion_ids[row, :len(ids)] = torch.as_tensor(list(ids), dtype=torch.long)
    lengths = torch.as_tensor([len(ids) for ids in token_ids])
    mask = completion_mask_after_eos(completion_ids, eos_token_ids)
    mask = mask * (torch.arange(width)[None] < lengths[:, None]).long()
    completion_ids = completion_ids.masked_fill(mask == 0, int(pad_token_id))
    texts = adapter.processor.batch_decode(completion_ids, skip_special_tokens=True)
    return GenerationResult(texts=texts, completion_ids=completion_ids,
                            completion_mask=mask, prompt_inputs=prompt_inputs,
                            num_return_sequences=n)
