# Copyright (c) finers_mm contributors. All rights reserved.
"""Qwen-VL adapters: Qwen2-VL, Qwen2.5-VL and Qwen3-VL differ only in the table below.

Swap the family with the ``type`` line (and ``pretrained`` pointing at a checkpoint of that
family, which is checked); every other setting carries over::

    vlm = dict(type='Qwen25VLAdapter', pretrained='checkpoints/Qwen2.5-VL-7B-Instruct',
               dtype='bfloat16', gradient_checkpointing=True, max_pixels=1920 * 1080)
    vlm = dict(type='Qwen2VLAdapter', ...)   # or 'Qwen3VLAdapter'

Coordinate conventions (what the model writes in its answer):

=============  =================================================  ==============================
family         coordinates                                        source
=============  =================================================  ==============================
Qwen2-VL       relative to the image, 0..1000 on each axis        Qwen-VL/Qwen2-VL grounding
                                                                  format, ``(x, y)`` in
                                                                  [0, 1000) (QwenLM/Qwen3-VL
                                                                  issue 189, ms-swift 2235)
Qwen2.5-VL     ABSOLUTE pixels of the image the model saw, i.e.   maintainer's answer in
               after the processor's smart resize (sides          QwenLM/Qwen3-VL issue 940;
               multiples of ``patch_size * merge_size`` = 28,     the Qwen2.5-VL grounding
               area within min/max pixels)                        cookbook
Qwen3-VL       relative to the image, 0..1000 on each axis        QwenLM/Qwen3-VL issue 1927
=============  =================================================  ==============================

All three feed images as patches of ``image_processor.patch_size`` merged ``merge_size`` x
``merge_size`` (14 x 2 = 28 px for Qwen2/2.5-VL, 16 x 2 = 32 px for Qwen3-VL), resized by the
image processor's ``smart_resize``.
"""
import sys
from typing import TYPE_CHECKING, Dict

import torch

from finers_mm.registry import MODELS
from finers_mm.structures.frames import Size
from .base import BaseVLMAdapter

if TYPE_CHECKING:
    from transformers import BatchFeature


class QwenVLAdapter(BaseVLMAdapter):
    """The part shared by the Qwen-VL families: image size after the processor, prompt repeats
    and chunks.

    See :class:`~finers_mm.models.vlm.base.BaseVLMAdapter` for the arguments.
    """

    def model_image_size(self, frame_size: Size) -> Size:
        """Size of an image of ``frame_size`` after the processor's smart resize.

        Computed with the ``smart_resize`` of the image processor's own module, with its factor
        (``patch_size * merge_size``) and pixel budget (``size``).

        Args:
            frame_size (tuple[int, int]): ``(W, H)`` of the image fed to :meth:`generate`.

        Returns:
            tuple[int, int]: ``(W, H)`` of the model's input image.
        """
        image_processor = self.processor.image_processor
        smart_resize = sys.modules[type(image_processor).__module__].smart_resize
        height, width = smart_resize(
            int(frame_size[1]), int(frame_size[0]),
            factor=image_processor.patch_size * image_processor.merge_size,
            min_pixels=image_processor.size['shortest_edge'],
            max_pixels=image_processor.size['longest_edge'])
        return int(width), int(height)

    def repeat_prompt_inputs(self, prompt_inputs, n: int) -> Dict[str, torch.Tensor]:
        """Repeat every prompt ``n`` times, prompt-major.

        Per-prompt tensors (B, ...) are repeated row by row; ``pixel_values`` holds the patches of
        all B images concatenated (``image_grid_thw[i].prod()`` rows for image i), so it is
        repeated image by image.

        Args:
            prompt_inputs (transformers.BatchFeature): B prompts of one image each.
            n (int): Repeats per prompt.

        Returns:
            dict[str, torch.Tensor]: The inputs of the B*n prompts.
        """
        grid = prompt_inputs['image_grid_thw']
        num_prompts = prompt_inputs['input_ids'].shape[0]
        if grid.shape[0] != num_prompts:
            raise ValueError(f'expected one image per prompt, got {grid.shape[0]} images for '
                             f'{num_prompts} prompts')
        repeated = {key: value.repeat_interleave(n, dim=0)
                    for key, value in prompt_inputs.items() if key != 'pixel_values'}
        patches = prompt_inputs['pixel_values'].split(grid.prod(dim=-1).tolist())
        repeated['pixel_values'] = torch.cat([p for p in patches for _ in range(n)])
        return repeated

    def select_prompts(self, prompt_inputs, first: int, last: int) -> 'BatchFeature':
        """Prompts ``first`` to ``last - 1`` of a batch (e.g. to score a batch in chunks).

        Per-prompt tensors (B, ...) are sliced by row; ``pixel_values`` (all B images' patches
        concatenated) by each image's ``image_grid_thw[i].prod()`` patch rows.

        Args:
            prompt_inputs (transformers.BatchFeature): B prompts of one image each.
            first (int): first prompt kept.
            last (int): one past the last prompt kept.

        Returns:
            transformers.BatchFeature: the inputs of prompts ``first:last``: per-prompt tensors
            ``(last - first, ...)``, ``pixel_values`` of their images only.
        """
        from transformers import BatchFeature
        patches = prompt_inputs['image_grid_thw'].prod(dim=-1)
        start, stop = int(patches[:first].sum()), int(patches[:last].sum())
        selected = {key: value[first:last] for key, value in prompt_inputs.items()
                    if key != 'pixel_values'}
        selected['pixel_values'] = prompt_inputs['pixel_values'][start:stop]
        return BatchFeature(selected)


@MODELS.register_module()
class Qwen2VLAdapter(QwenVLAdapter):
    """Qwen2-VL: coordinates relative to the image, 0..1000."""
    model_class = 'Qwen2VLForConditionalGeneration'
    model_type = 'qwen2_vl'
    relative_scale = 1000


@MODELS.register_module()
class Qwen25VLAdapter(QwenVLAdapter):
    """Qwen2.5-VL: absolute pixels of the smart-resized image (the paper's model)."""
    model_class = 'Qwen2_5_VLForConditionalGeneration'
    model_type = 'qwen2_5_vl'
    relative_scale = None


@MODELS.register_module()
class Qwen3VLAdapter(QwenVLAdapter):
    """Qwen3-VL: coordinates relative to the image, 0..1000."""
    model_class = 'Qwen3VLForConditionalGeneration'
    model_type = 'qwen3_vl'
    relative_scale = 1000
