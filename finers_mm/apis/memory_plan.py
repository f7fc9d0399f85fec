# Copyright (c) finers_mm contributors. All rights reserved.
"""The per-GPU memory of a training run, by component: pure arithmetic of counts and settings.

Nothing here reads a config or builds a model (:mod:`finers_mm.apis.memory_plan_config` does,
``tools/analysis_tools/memory_plan.py`` prints the result). This module holds the records and the
tables; each component's arithmetic and :func:`plan_memory` are in
:mod:`finers_mm.apis.memory_components`. Every size is in bytes; tables print
GB = 1e9 bytes.

The components, per GPU (``P`` all parameters, ``T`` the trainable ones, ``N`` the GPUs a
component is sharded over, ``b`` bytes of an element):

================================  ===============================================================
weights                           ``P x b(param dtype) / N`` (N > 1 under ZeRO-3, FSDP FULL_SHARD)
gradients                         ``T x b(param dtype) / N`` (ZeRO-2/3, FSDP), plus DeepSpeed's
                                  fp32 copy of the rank's gradient partition (``T x 4 / N``)
optimiser states                  ``T x state bytes per parameter / N`` (ZeRO-1/2/3, FSDP)
fp32 master weights               ``T x 4 / N`` (DeepSpeed bf16/fp16 mode only)
KL reference                      a frozen full copy ``P x b``; 0 with LoRA (the base with its
                                  adapters disabled is the reference)
activations                       checkpointed layer boundaries: ``sequences x tokens x hidden x b
                                  x layers`` (vision tower: ``images x patches x width x b x
                                  depth`` when it trains)
one layer recomputed              ``sequences x tokens x (10 hidden + 4 intermediate) x b``: the
                                  tensors one decoder layer saves, rebuilt in the backward
logits                            ``sequences x new tokens x vocab x 4`` (float32 log-softmax of
                                  the completion positions only, ``logits_to_keep``)
rollout KV cache                  ``2 x layers x kv_heads x head_dim x (prompt + new) x sequences
                                  x b``
communication buffers             DDP's gradient buckets, DeepSpeed's reduce buckets, FSDP's
                                  gathered blocks (approximate)
================================  ===============================================================

The model states, the buffers and the larger of the two working phases (the training step's
activations and logits, the rollout's KV cache: they never coexist) make the peak.
"""
from dataclasses import asdict, dataclass, field
from typing import Dict, List

from terminaltables import AsciiTable


#: bytes in a GB as printed (decimal, as GPU vendors state memory)
GB = 1e9

#: bytes of one element, by dtype name (torch's names without the ``torch.`` prefix)
DTYPE_BYTES = dict(float64=8, float32=4, bfloat16=2, float16=2, int8=1, uint8=1)

#: the phases a component belongs to
MODEL_STATES = 'model states'
TRAINING = 'training step'
ROLLOUT = 'rollout'
BUFFERS = 'buffers'

#: values a decoder layer saves per token for its backward, in units of hidden / intermediate:
#: two RMSNorms (~3 hidden each: input, fp32 copy, output), q before and after RoPE, the attention
#: output, o_proj's input (~4 hidden), and the MLP's gate, up, act(gate) and product (4 inter.)
LAYER_SAVED_HIDDEN = 10
LAYER_SAVED_INTERMEDIATE = 4


def dtype_bytes(dtype: str) -> int:
    """Bytes of one element of ``dtype``.

    Args:
        dtype (str): a dtype name, e.g. ``'bfloat16'`` (a ``torch.`` prefix is ignored).

    Returns:
        int: the element size.

    Raises:
        ValueError: an unknown dtype.
    """
    name = str(dtype).replace('torch.', '')
    if name not in DTYPE_BYTES:
        raise ValueError(f'unknown dtype {dtype!r}; expected one of {sorted(DTYPE_BYTES)}')
    return DTYPE_BYTES[name]


@dataclass
class ParamCounts:
    """The parameters of a model (each tensor once: a tied lm_head counts 0).

    Args:
        vision (int): parameters of the vision tower (with its merger).
        language (int): parameters of the language model (embeddings, decoder layers, norm).
        lm_head (int): parameters of the output projection not shared with the embeddings.
        adapters (int): LoRA adapter parameters (0 without LoRA).
        trainable (dict[str, int]): trainable parameters by dtype name.
        frozen (dict[str, int]): frozen parameters by dtype name.
        largest_block (int): parameters of the largest repeated block (a decoder layer or a
            vision block): FSDP's unit, gathered whole for its forward and backward.
        vision_trains (bool): the vision tower has trainable parameters (its activations are
            then kept for the backward).
        lm_head_tied (bool): the lm_head is the embedding matrix (``lm_head`` is then 0).
    """
    vision: int
    language: int
    lm_head: int
    adapters: int = 0
    trainable: Dict[str, int] = field(default_factory=dict)
    frozen: Dict[str, int] = field(default_factory=dict)
    largest_block: int = 0
    vision_trains: bool = True
    lm_head_tied: bool = False

    @property
    def total(self) -> int:
        """All parameters."""
        return self.vision + self.language + self.lm_head + self.adapters

    @property
    def num_trainable(self) -> int:
        """Trainable parameters."""
        return sum(self.trainable.values())

    @property
    def num_frozen(self) -> int:
        """Frozen parameters."""
        return sum(self.frozen.values())


def counts_bytes(by_dtype: Dict[str, int]) -> int:
    """Bytes of parameters counted by dtype.

    Args:
        by_dtype (dict[str, int]): element count per dtype name.

    Returns:
        int: their bytes.
    """
    return sum(count * dtype_bytes(dtype) for dtype, count in by_dtype.items())


def cast_counts(by_dtype: Dict[str, int], dtype: str) -> Dict[str, int]:
    """The same parameters held in ``dtype`` (e.g. DeepSpeed casts the module to bf16).

    Args:
        by_dtype (dict[str, int]): element count per dtype name.
        dtype (str): the dtype they are all cast to.

    Returns:
        dict[str, int]: ``{dtype: total}`` (empty when there are none).
    """
    total = sum(by_dtype.values())
    return {dtype: total} if total else {}


@dataclass
class Architecture:
    """The sizes of a VLM that its activations and KV cache scale with (from its config.json).

    Args:
        hidden (int): language model width.
        layers (int): decoder layers.
        intermediate (int): MLP width of a decoder layer.
        kv_heads (int): key/value heads.
        head_dim (int): width of a head.
        vocab (int): vocabulary (logits per position).
        vision_hidden (int): vision tower width.
        vision_depth (int): vision blocks.
        vision_intermediate (int): MLP width of a vision block.
    """
    hidden: int
    layers: int
    intermediate: int
    kv_heads: int
    head_dim: int
    vocab: int
    vision_hidden: int = 0
    vision_depth: int = 0
    vision_intermediate: int = 0


@dataclass
class Workload:
    """What one GPU computes in one training iteration.

    Args:
        sequences (int): completions in one forward: prompts per GPU x samples per prompt (GRPO's
            group of n), or the prompts per GPU (SFT).
        prompt_tokens (int): tokens of one prompt (image tokens included).
        new_tokens (int): tokens of one completion (the generation budget).
        image_patches (int): vision patches of one image (before the 2x2 merge).
        image_copies (int): images through the vision tower in the loss forward (one per
            completion while the prompt is repeated per sample).
        rollout (bool): the iteration generates (GRPO), so the KV cache exists.
        uses_reference (bool): the loss has a KL term to a reference policy.
        gradient_checkpointing (bool): activations are kept at layer boundaries only.
        compute_dtype (str): dtype of activations and KV cache.
    """
    sequences: int
    prompt_tokens: int
    new_tokens: int
    image_patches: int = 0
    image_copies: int = 0
    rollout: bool = True
    uses_reference: bool = True
    gradient_checkpointing: bool = True
    compute_dtype: str = 'bfloat16'

    @property
    def tokens(self) -> int:
        """Tokens of one sequence (prompt and completion)."""
        return self.prompt_tokens + self.new_tokens


@dataclass
class Component:
    """One row of the budget.

    Args:
        name (str): what it is.
        phase (str): :data:`MODEL_STATES`, :data:`TRAINING`, :data:`ROLLOUT` or :data:`BUFFERS`.
        bytes (int): per GPU.
        how (str): the formula with its numbers.
    """
    name: str
    phase: str
    bytes: int
    how: str

    @property
    def gb(self) -> float:
        """Per GPU in GB (1e9 bytes)."""
        return self.bytes / GB


@dataclass
class MemoryPlan:
    """The per-GPU budget.

    Args:
        components (list[Component]): every row.
        gpu_memory (float): memory of one GPU, bytes.
        notes (list[str]): what the numbers leave out.
    """
    components: List[Component]
    gpu_memory: float
    notes: List[str] = field(default_factory=list)

    def phase_bytes(self, phase: str) -> int:
        """Bytes of the components of one phase."""
        return sum(c.bytes for c in self.components if c.phase == phase)

    @property
    def model_states(self) -> int:
        """Weights, gradients, optimiser states, master weights and reference."""
        return self.phase_bytes(MODEL_STATES)

    @property
    def peak(self) -> int:
        """Model states + buffers + the larger working phase (training step or rollout)."""
        return (self.model_states + self.phase_bytes(BUFFERS)
                + max(self.phase_bytes(TRAINING), self.phase_bytes(ROLLOUT)))

    @property
    def fits(self) -> bool:
        """The peak fits the GPU's memory."""
        return self.peak <= self.gpu_memory

    def to_dict(self) -> dict:
        """A JSON-ready copy (bytes and GB)."""
        return dict(
            components=[dict(asdict(c), gb=round(c.gb, 4)) for c in self.components],
            totals={name: dict(bytes=value, gb=round(value / GB, 4)) for name, value in (
                (MODEL_STATES, self.model_states), (BUFFERS, self.phase_bytes(BUFFERS)),
                (TRAINING, self.phase_bytes(TRAINING)), (ROLLOUT, self.phase_bytes(ROLLOUT)),
                ('peak', self.peak))},
            gpu_memory_gb=self.gpu_memory / GB, fits=self.fits, notes=list(self.notes))


# --- tables --------------------------------------------------------------------------------------

def format_parameters(counts: ParamCounts, source: str) -> str:
    """The parameter table (mmdet's AsciiTable style).

    Args:
        counts (ParamCounts): the parameters.
        source (str): where they were counted from, for the title.

    Returns:
        str: the table.
    """
    rows = [['part', 'parameters', 'B']]
    head = 'lm_head (tied to the embeddings)' if counts.lm_head_tied else 'lm_head'
    for name, value in (('vision tower', counts.vision), ('language model', counts.language),
                        (head, counts.lm_head), ('LoRA adapters', counts.adapters)):
        if value or name != 'LoRA adapters':
            rows.append([name, f'{value:,}', f'{value / 1e9:.3f}'])
    rows.append(['total', f'{counts.total:,}', f'{counts.total / 1e9:.3f}'])
    rows.append(['trainable', f'{counts.num_trainable:,}', f'{counts.num_trainable / 1e9:.3f}'])
    table = AsciiTable(rows, title=f' parameters ({source}) ')
    table.inner_footing_row_border = True
    table.justify_columns = {1: 'right', 2: 'right'}
    return table.table


def format_plan(plan: MemoryPlan, title: str) -> str:
    """The budget table (mmdet's AsciiTable style), GB per GPU, with its totals.

    Args:
        plan (MemoryPlan): the budget.
        title (str): the table's title (config, strategy, GPUs).

    Returns:
        str: the table and its notes.
    """
    rows = [['component', 'phase', 'GB / GPU', 'how (bytes)']]
    for c in plan.components:
        rows.append([c.name, c.phase, f'{c.gb:.2f}', c.how])
    rows.append(['model states', '', f'{plan.model_states / GB:.2f}', 'sum of the model states'])
    for phase in (TRAINING, ROLLOUT, BUFFERS):
        rows.append([f'{phase} (sum)', '', f'{plan.phase_bytes(phase) / GB:.2f}', ''])
    verdict = 'fits' if plan.fits else 'does NOT fit'
    rows.append(['peak', '', f'{plan.peak / GB:.2f}',
                 f'{verdict} {plan.gpu_memory / GB:g} GB'])
    table = AsciiTable(rows, title=f' {title} ')
    table.justify_columns = {2: 'right'}
    lines = table.table.split('\n')
    # a rule above the five total rows (the bottom border has the same shape)
    lines.insert(len(lines) - 1 - 5, lines[-1])
    return '\n'.join(lines + [f'  {note}' for note in plan.notes])
