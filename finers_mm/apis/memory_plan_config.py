# Copyright (c) finers_mm contributors. All rights reserved.
"""What a training config says, for :mod:`.memory_plan`: the strategy and its sharding, the
dtypes, the optimiser and its state size, the GRPO group, the frame the stage reads, the
generation budget; and :func:`plan_config`, the plan of a config from it and the model's
``config.json`` (:mod:`.memory_plan_model`, no weights read).
"""
import inspect
import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch

from finers_mm.models.vlm.generation import DEFAULT_GENERATION
from finers_mm.registry import HOOKS, MODELS, OPTIMIZERS
from finers_mm.structures.protocols import DEFAULT_PROTOCOL
from finers_mm.structures.vocabulary import EXPLORER, REFINER
from .memory_components import plan_memory
from .memory_plan import (GB, MemoryPlan, ParamCounts, Workload, cast_counts, counts_bytes,
                          dtype_bytes)
from .memory_plan_model import (ModelConfigFile, architecture, checkpoint_dtype,
                                count_parameters, find_model_config, image_patches,
                                load_model_config, pixel_budget)
from .memory_strategies import Sharding, ddp, deepspeed_zero, fsdp, single_device

#: tokens of a prompt besides its image: the chat template, the stage's instruction, the
#: question (the GSE prompt of the authors' protocol measured 97; a margin for long questions)
DEFAULT_PROMPT_TEXT_TOKENS = 256
#: tokens around an image's patch tokens (<|vision_start|>, <|vision_end|>)
IMAGE_DELIMITERS = 2


@dataclass
class PlanReport:
    """A plan with what it was computed from.

    Args:
        plan (MemoryPlan): the budget.
        counts (ParamCounts): the parameters.
        model_config (ModelConfigFile): the config.json counted.
        settings (dict): the settings read from the config (JSON-ready).
    """
    plan: MemoryPlan
    counts: ParamCounts
    model_config: ModelConfigFile
    settings: Dict = field(default_factory=dict)


# --- the run -------------------------------------------------------------------------------------

def stage_vlm(cfg, config_name: str) -> dict:
    """The ``model.vlm`` of a stage config.

    Args:
        cfg (mmengine.Config): the config.
        config_name (str): its file, for the message.

    Returns:
        dict: ``model.vlm``.

    Raises:
        ValueError: the model has no ``vlm`` (e.g. the whole chain's test config).
    """
    model = cfg.get('model') or {}
    if 'vlm' not in model:
        raise ValueError(
            f'{config_name}: model {model.get("type")!r} has no `vlm`: memory_plan reads the '
            'training config of one stage (configs/finers/gse_*.py, lpr_*.py).')
    return model['vlm']


def _hook(cfg, type_name: str) -> Optional[dict]:
    for hook in cfg.get('custom_hooks') or []:
        if str(hook.get('type', '')).split('.')[-1] == type_name:
            return hook
    return None


def _default(cls, argument: str):
    return inspect.signature(cls.__init__).parameters[argument].default


def stage_frame(cfg) -> Tuple[int, int]:
    """The frame the stage's images are resized to before the processor.

    Args:
        cfg (mmengine.Config): the config (``model.type`` and ``frames``).

    Returns:
        tuple[int, int]: ``(w, h)``: ``frames.explorer_size`` for GSE, ``refiner_size`` for LPR.

    Raises:
        ValueError: a model type without a stage, or no ``frames``.
    """
    stage = getattr(MODELS.get(cfg.model.type), 'stage', None)
    frames = cfg.get('frames') or {}
    key = {EXPLORER: 'explorer_size', REFINER: 'refiner_size'}.get(stage)
    if key is None or key not in frames:
        raise ValueError(f'model type {cfg.model.type!r}: no frame known for stage {stage!r}; '
                         'memory_plan needs `frames` (configs/_base_/datasets/finers4k.py)')
    return tuple(frames[key])


def uses_reference(model: dict) -> bool:
    """Whether the stage's GRPO loss has a KL term.

    Args:
        model (dict): the config's ``model``; its ``grpo_loss`` is built as the stage builds it
            (GRPOLoss by default, with the stage's protocol).

    Returns:
        bool: the loss's ``uses_reference`` (``kl_coef > 0`` for GRPOLoss).
    """
    loss = dict(model.get('grpo_loss') or {})
    loss.setdefault('type', 'GRPOLoss')
    if loss['type'] in ('GRPOLoss', 'finers_mm.GRPOLoss'):
        loss.setdefault('protocol', model.get('protocol', DEFAULT_PROTOCOL))
    return bool(getattr(MODELS.build(loss), 'uses_reference', True))


def compute_dtype(cfg, weights_dtype: str) -> str:
    """The dtype activations and the KV cache are held in.

    Args:
        cfg (mmengine.Config): the config (strategy, optimiser wrapper).
        weights_dtype (str): the dtype the adapter loads the weights in.

    Returns:
        str: half-precision weights compute in their dtype; otherwise DeepSpeed's bf16 / fp16
        mode, FSDP's ``mixed_precision.param_dtype`` or AmpOptimWrapper's autocast dtype
        decide; else the weights' dtype.
    """
    if weights_dtype in ('bfloat16', 'float16'):
        return weights_dtype
    strategy = _strategy(cfg)
    for mode in ('bf16', 'fp16'):
        if (strategy.get('type') == 'DeepSpeedStrategy'
                and (strategy.get(mode) or {}).get('enabled')):
            return 'bfloat16' if mode == 'bf16' else 'float16'
    mixed = ((strategy.get('model_wrapper') or strategy).get('mixed_precision') or {})
    if mixed.get('param_dtype'):
        return str(mixed['param_dtype']).replace('torch.', '')
    wrapper = cfg.get('optim_wrapper') or {}
    if wrapper.get('type') == 'AmpOptimWrapper':
        # AmpOptimWrapper autocasts; its dtype None means float16
        return str(wrapper.get('dtype') or 'float16').replace('torch.', '')
    return weights_dtype


def read_workload(cfg, hf_config, model_config_path: str,
                  prompt_text_tokens: int = DEFAULT_PROMPT_TEXT_TOKENS,
                  weights_dtype: str = 'bfloat16') -> Tuple[Workload, dict]:
    """One GPU's iteration: the group, the prompt and completion lengths, the image.

    Args:
        cfg (mmengine.Config): the config.
        hf_config (transformers.PretrainedConfig): the model's config (patch and merge sizes).
        model_config_path (str): its file (the processor's budget may sit beside it).
        prompt_text_tokens (int): tokens of a prompt besides the image.
        weights_dtype (str): the dtype the weights are held in.

    Returns:
        tuple[Workload, dict]: the workload and the settings read (for the printout).
    """
    model, vlm = cfg.model, cfg.model.vlm
    vision = hf_config.vision_config
    frame = stage_frame(cfg)
    low, high, budget_source = pixel_budget(vlm, model_config_path)
    patches, image_tokens = image_patches(frame, vision.patch_size, vision.spatial_merge_size,
                                          (low, high))
    prompts = int(cfg.train_dataloader.get('batch_size', 1))
    generation = dict(DEFAULT_GENERATION, **(vlm.get('generation') or {}))
    grpo = model.get('train_mode', 'grpo') == 'grpo'
    hook = _hook(cfg, 'GRPOHook') if grpo else None
    n, new_tokens = 1, int(generation['max_new_tokens'])
    if grpo:
        hook_cls = HOOKS.get('GRPOHook')
        n = int((hook or {}).get('num_generations', _default(hook_cls, 'num_generations')))
        new_tokens = int((hook or {}).get('max_new_tokens') or new_tokens)
    prompt_tokens = image_tokens + IMAGE_DELIMITERS + int(prompt_text_tokens)
    workload = Workload(
        sequences=prompts * n, prompt_tokens=prompt_tokens, new_tokens=new_tokens,
        image_patches=patches, image_copies=prompts * n, rollout=grpo,
        uses_reference=grpo and uses_reference(model),
        gradient_checkpointing=bool(vlm.get('gradient_checkpointing', False)),
        compute_dtype=compute_dtype(cfg, weights_dtype))
    settings = dict(
        train_mode='grpo' if grpo else 'sft', prompts_per_gpu=prompts, num_generations=n,
        frame=list(frame), pixel_budget=[low, high], pixel_budget_source=budget_source,
        image_patches=patches, image_tokens=image_tokens, prompt_text_tokens=prompt_text_tokens,
        prompt_tokens=prompt_tokens, new_tokens=new_tokens)
    return workload, settings


def _strategy(cfg) -> dict:
    """The FlexibleRunner's strategy (mmengine's Runner ignores ``strategy``)."""
    if cfg.get('runner_type', 'Runner') != 'FlexibleRunner':
        return {}
    return dict(cfg.get('strategy') or {})


def _deepspeed_config(strategy: dict) -> dict:
    """DeepSpeedStrategy's settings: its ``config`` (a dict or a JSON file), then its keys."""
    base = strategy.get('config') or {}
    if isinstance(base, str):
        with open(base, encoding='utf-8') as f:
            base = json.load(f)
    merged = dict(base)
    merged.update({k: v for k, v in strategy.items() if k not in ('type', 'config')})
    return merged


def _offloaded(zero: dict, key: str) -> bool:
    return str((zero.get(key) or {}).get('device', 'none')).lower() in ('cpu', 'nvme')


def _deepspeed_sharding(ds: dict, gpus: int, compute_bytes: int) -> Tuple[Sharding, Optional[str]]:
    """DeepSpeed's sharding from its settings, and the dtype its bf16 / fp16 mode casts to."""
    zero = ds.get('zero_optimization') or {}
    stage = int(zero.get('stage', 0))
    cast = ('bfloat16' if (ds.get('bf16') or {}).get('enabled') else
            'float16' if (ds.get('fp16') or {}).get('enabled') else None)
    # DeepSpeed's options for half-precision master weights and gradient partitions
    half_master = cast is not None and zero.get(
        f"{'bf16' if cast == 'bfloat16' else 'fp16'}_master_weights_and_gradients")
    sharding = deepspeed_zero(
        stage, gpus, mixed_precision=cast is not None, compute_bytes=compute_bytes,
        reduce_bucket_size=float(zero.get('reduce_bucket_size', 5e8)),
        # DeepSpeed's defaults: overlap_comm on for stage 3 only, contiguous gradients on
        overlap_comm=bool(zero.get('overlap_comm', stage == 3)),
        contiguous_gradients=bool(zero.get('contiguous_gradients', True)),
        max_live_parameters=float(zero.get('stage3_max_live_parameters', 1e9)),
        offload_optimizer=_offloaded(zero, 'offload_optimizer'),
        offload_params=_offloaded(zero, 'offload_param'),
        master_dtype=cast if half_master else 'float32')
    return sharding, cast


def read_sharding(cfg, gpus: int, counts: ParamCounts, grad_bytes: int,
                  compute_bytes: int) -> Tuple[Sharding, Optional[str], List[str]]:
    """The strategy of a config on ``gpus`` GPUs.

    Args:
        cfg (mmengine.Config): the config.
        gpus (int): GPUs of the run.
        counts (ParamCounts): the parameters (FSDP's block size).
        grad_bytes (int): bytes of the trainable parameters' gradients (DDP's buckets).
        compute_bytes (int): bytes of a low-precision element.

    Returns:
        tuple[Sharding, str | None, list[str]]: the sharding, the dtype the strategy casts the
        policy's weights to (DeepSpeed's bf16 / fp16 mode, FullyShardStrategy's
        ``master_dtype``) or None, and notes.
    """
    notes = []
    runner = cfg.get('runner_type', 'Runner')
    if runner != 'FlexibleRunner' and cfg.get('strategy'):
        notes.append(f"`strategy` is set but runner_type is {runner!r}: mmengine's Runner "
                     "ignores it (runner_type='FlexibleRunner' applies it).")
    strategy = _strategy(cfg)
    kind = str(strategy.get('type', '')).split('.')[-1]
    wrapper = cfg.get('model_wrapper_cfg') or {}
    if kind == 'DeepSpeedStrategy':
        sharding, cast = _deepspeed_sharding(_deepspeed_config(strategy), gpus, compute_bytes)
        return sharding, cast, notes
    if kind == 'FullyShardStrategy':
        # FSDP2: shards held in master_dtype (the cast), gathered in the compute dtype, and
        # gathered whole while the rollout generates (gathered_for_generation)
        resharded = strategy.get('reshard_after_forward', True)
        master = strategy.get('master_dtype', 'float32')
        master = None if master is None else str(master).replace('torch.', '')
        notes.append('FSDP2: not counted, the parameters outside the blocks (embeddings, lm_head, '
                     'norms; ~1.1e9 for Qwen2.5-VL-7B) stay gathered in the compute dtype from '
                     "the loss's forward to its backward (FSDP2's root is not resharded).")
        return fsdp('FULL_SHARD' if resharded else 'SHARD_GRAD_OP', gpus, counts.largest_block,
                    compute_bytes, rollout_gather=True, label='FSDP2'), master, notes
    if kind == 'FSDPStrategy' or str(wrapper.get('type', '')).endswith(
            'MMFullyShardedDataParallel'):
        options = (strategy.get('model_wrapper') or {}) if kind else wrapper
        return fsdp(str(options.get('sharding_strategy', 'FULL_SHARD')), gpus,
                    counts.largest_block, compute_bytes), None, notes
    if gpus <= 1:
        return single_device(), None, notes
    view = (strategy.get('model_wrapper') or wrapper).get('gradient_as_bucket_view', False)
    return ddp(gpus, grad_bytes, bool(view)), None, notes


#: torch optimisers' per-parameter states (tensors the size of the parameter), by class name;
#: a function of the optimiser's config where an option adds one
BUILTIN_STATES = {
    'Adam': lambda c: 3 if c.get('amsgrad') else 2,
    'AdamW': lambda c: 3 if c.get('amsgrad') else 2,
    'NAdam': lambda c: 2,
    'RAdam': lambda c: 2,
    'Adamax': lambda c: 2,
    'Adadelta': lambda c: 2,
    'Adagrad': lambda c: 1,
    'Rprop': lambda c: 2,
    'SGD': lambda c: 1 if c.get('momentum', 0) else 0,
    'RMSprop': lambda c: 1 + bool(c.get('momentum', 0)) + bool(c.get('centered', False)),
}


def optimizer_state_bytes(optimizer: dict, param_dtype: str) -> int:
    """Optimiser state bytes per parameter of ``param_dtype``.

    An optimiser class may say it itself with a static method ``state_bytes_per_param(
    param_dtype: torch.dtype, **options) -> int`` (the optimiser config's keys that are among its
    arguments are passed); torch's keep their states in the parameter's dtype
    (:data:`BUILTIN_STATES` of them).

    Args:
        optimizer (dict): ``optim_wrapper.optimizer``.
        param_dtype (str): the dtype of the parameters it steps.

    Returns:
        int: bytes per parameter.

    Raises:
        ValueError: an optimiser neither known nor saying its state size.
    """
    name = str(optimizer.get('type', '')).split('.')[-1]
    cls = optimizer['type'] if inspect.isclass(optimizer.get('type')) else OPTIMIZERS.get(name)
    if cls is not None and hasattr(cls, 'state_bytes_per_param'):
        method = cls.state_bytes_per_param
        # the optimiser's own options that change its state (e.g. a state dtype) pass through
        options = {key: value for key, value in optimizer.items()
                   if key in inspect.signature(method).parameters and key != 'param_dtype'}
        return int(method(getattr(torch, param_dtype), **options))
    name = cls.__name__ if cls is not None else name
    if name not in BUILTIN_STATES:
        raise ValueError(
            f'optim_wrapper.optimizer type {name!r}: its state size is unknown. Give the class a '
            'static method state_bytes_per_param(param_dtype) -> int, or use one of '
            f'{sorted(BUILTIN_STATES)}.')
    return BUILTIN_STATES[name](optimizer) * dtype_bytes(param_dtype)


def _model_of(vlm: dict, config_name: str, model_config: Optional[str]):
    """The adapter class, the config.json found and the model's config, checked to match."""
    adapter = MODELS.get(vlm['type'])
    if adapter is None or not hasattr(adapter, 'model_class'):
        raise ValueError(f'{config_name}: model.vlm.type {vlm["type"]!r} is not a VLM adapter')
    found = find_model_config(vlm['pretrained'], model_config)
    hf_config = load_model_config(found.path)
    if hf_config.model_type != adapter.model_type:
        raise ValueError(
            f'{found.path} is a {hf_config.model_type!r} model but {config_name} trains a '
            f'{adapter.model_type!r} one ({vlm["type"]}); give its config.json with '
            '--model-config.')
    return adapter, found, hf_config


def held_parameters(counts: ParamCounts, cast: Optional[str]
                    ) -> Tuple[Dict[str, int], Dict[str, int], Dict[str, int]]:
    """The parameters by the dtype each copy holds them in.

    Args:
        counts (ParamCounts): the parameters as the adapter loads them.
        cast (str, optional): the dtype the strategy casts the policy to (DeepSpeed's bf16 /
            fp16 mode casts all of it, LoRA adapters too), or None.

    Returns:
        tuple[dict, dict, dict]: the policy's weights, its trainable parameters, and the frozen
        reference copy (built from the adapter's config, so never cast).
    """
    weights = dict(counts.trainable)
    for dtype, count in counts.frozen.items():
        weights[dtype] = weights.get(dtype, 0) + count
    reference, trainable = dict(weights), dict(counts.trainable)
    if cast is not None:
        weights, trainable = cast_counts(weights, cast), cast_counts(trainable, cast)
    return weights, trainable, reference


def plan_config(cfg, gpus: int, config_name: str = 'config', model_config: Optional[str] = None,
                gpu_memory_gb: float = 80.0,
                prompt_text_tokens: int = DEFAULT_PROMPT_TEXT_TOKENS) -> PlanReport:
    """The per-GPU memory plan of a stage's training config.

    Args:
        cfg (mmengine.Config): the config, read with finers_mm's loader (frames applied).
        gpus (int): GPUs of the run.
        config_name (str): the config file, for messages.
        model_config (str, optional): ``--model-config`` (see :func:`find_model_config`).
        gpu_memory_gb (float): memory of one GPU in GB (1e9 bytes).
        prompt_text_tokens (int): tokens of a prompt besides its image.

    Returns:
        PlanReport: the plan, the counts, the config.json used and the settings read.

    Raises:
        FileNotFoundError: no config.json (the message names it and ``--model-config``).
        ValueError: a config memory_plan cannot read (the message says which key and why).
    """
    if gpus < 1:
        raise ValueError(f'--gpus must be >= 1, got {gpus}')
    vlm = stage_vlm(cfg, config_name)
    adapter, found, hf_config = _model_of(vlm, config_name, model_config)
    dtype = vlm.get('dtype', 'float32')
    counts = count_parameters(hf_config, adapter.model_class, dtype, vlm.get('lora'),
                              bool(vlm.get('freeze', False)))
    arch = architecture(hf_config)
    held = (str(checkpoint_dtype(hf_config)) if dtype == 'auto' else dtype).replace('torch.', '')
    workload, settings = read_workload(cfg, hf_config, found.path, prompt_text_tokens, held)
    compute = dtype_bytes(workload.compute_dtype)
    sharding, cast, notes = read_sharding(cfg, gpus, counts, counts_bytes(counts.trainable),
                                          compute)
    weights, trainable, reference = held_parameters(counts, cast)
    optimizer = dict((cfg.get('optim_wrapper') or {}).get('optimizer') or {})
    stepped = [sharding.master_dtype] if sharding.master_weights else list(trainable)
    state_bytes = {d: optimizer_state_bytes(optimizer, d) for d in stepped}
    name = str(optimizer.get('type', '?')).split('.')[-1]
    plan = plan_memory(counts, arch, workload, sharding, weights, trainable, name, state_bytes,
                       reference=reference, gpu_memory=gpu_memory_gb * GB)
    plan.notes.extend(notes)
    if not workload.rollout:
        plan.notes.append('SFT: the completion length is max_new_tokens, an upper bound on the '
                          'target answers.')
    settings.update(gpus=gpus, strategy=sharding.name, dtype=held, cast=cast,
                    compute_dtype=workload.compute_dtype, optimizer=name,
                    optimizer_state_bytes=state_bytes, lora=vlm.get('lora') is not None,
                    gradient_checkpointing=workload.gradient_checkpointing,
                    uses_reference=workload.uses_reference)
    return PlanReport(plan, counts, found, settings)
