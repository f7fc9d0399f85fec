# Copyright (c) finers_mm contributors. All rights reserved.
"""Print the per-GPU memory budget of a training config, by component (no weights, no GPU).

Examples::

    python tools/analysis_tools/memory_plan.py configs/finers/gse_qwen7b.py --gpus 8
    python tools/analysis_tools/memory_plan.py configs/finers/gse_qwen7b_deepspeed.py --gpus 8 \\
        --json work_dirs/memory_plan.json
    python tools/analysis_tools/memory_plan.py configs/finers/lpr_qwen7b_lora.py --gpus 1 \\
        --gpu-memory 40
    python tools/analysis_tools/memory_plan.py CONFIG --model-config /path/to/config.json

The parameters are counted exactly on the meta device from the model's ``config.json``
(``--model-config``, else the config's ``model.vlm.pretrained`` directory, else the public
config shipped in ``finers_mm/data/model_configs/``); the rest is read from the config:
:mod:`finers_mm.apis.memory_plan` (the arithmetic) and :mod:`finers_mm.apis.memory_plan_config`
(what is read). GB = 1e9 bytes.
"""
import argparse
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmengine.config import DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from finers_mm.apis.memory_plan import format_parameters, format_plan  # noqa: E402
from finers_mm.apis.memory_plan_config import (DEFAULT_PROMPT_TEXT_TOKENS,  # noqa: E402
                                               PlanReport, plan_config)
from finers_mm.utils.fileio import check_writable, write_json_atomic  # noqa: E402
from finers_mm.utils.run_config import load_config  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line (mmdet's analysis tools' flags)."""
    parser = argparse.ArgumentParser(
        description='Per-GPU memory budget of a finers_mm training config (GB = 1e9 bytes)')
    parser.add_argument('config', help='training config file path')
    parser.add_argument('--gpus', type=int, default=1, help='GPUs of the run (default 1)')
    parser.add_argument('--gpu-memory', type=float, default=80.0,
                        help='memory of one GPU in GB (1e9 bytes), default 80')
    parser.add_argument(
        '--model-config',
        help="the model's config.json (or its directory); default: model.vlm.pretrained's, else "
        'the public one shipped in finers_mm/data/model_configs/')
    parser.add_argument(
        '--prompt-text-tokens', type=int, default=DEFAULT_PROMPT_TEXT_TOKENS,
        help='tokens of a prompt besides its image (chat template, instruction, question); '
        f'default {DEFAULT_PROMPT_TEXT_TOKENS}')
    parser.add_argument('--json', help='also write the plan to this JSON file (atomically)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs')
    args = parser.parse_args(argv)
    if args.gpus < 1:
        parser.error(f'--gpus must be >= 1, got {args.gpus}')
    if args.gpu_memory <= 0:
        parser.error(f'--gpu-memory must be > 0 GB, got {args.gpu_memory}')
    return args


def report_text(report: PlanReport, config: str) -> str:
    """The printed report: the config.json used, the settings, the two tables."""
    s = report.settings
    lines = [
        f'config: {config}',
        f'model config: {report.model_config.path} ({report.model_config.source})',
        f"run: {s['strategy']} on {s['gpus']} GPU(s), weights {s['dtype']}"
        + (f" (cast to {s['cast']} by the strategy)" if s['cast'] else '')
        + f", compute {s['compute_dtype']}, optimiser {s['optimizer']}, "
        + ('LoRA' if s['lora'] else 'full fine-tune')
        + (', gradient checkpointing' if s['gradient_checkpointing'] else ''),
        f"iteration per GPU: {s['prompts_per_gpu']} prompt(s) x {s['num_generations']} "
        f"({s['train_mode']}); frame {s['frame'][0]}x{s['frame'][1]} -> {s['image_patches']} "
        f"patches, {s['image_tokens']} image tokens (pixel budget {s['pixel_budget'][0]}-"
        f"{s['pixel_budget'][1]} from {s['pixel_budget_source']}); prompt {s['prompt_tokens']} "
        f"tokens ({s['prompt_text_tokens']} text), {s['new_tokens']} new tokens",
        '',
        format_parameters(report.counts, 'meta device'),
        '',
        format_plan(report.plan, f"{osp.basename(config)}: {s['strategy']}, {s['gpus']} GPU(s), "
                    'GB per GPU'),
    ]
    return '\n'.join(lines)


def report_dict(report: PlanReport, config: str) -> dict:
    """The JSON copy of the report."""
    c = report.counts
    return dict(
        config=config, model_config=report.model_config.path,
        model_config_source=report.model_config.source, settings=report.settings,
        parameters=dict(vision=c.vision, language=c.language, lm_head=c.lm_head,
                        adapters=c.adapters, total=c.total, trainable=c.num_trainable,
                        trainable_by_dtype=c.trainable, frozen_by_dtype=c.frozen),
        **report.plan.to_dict())


def main(argv=None) -> int:
    """Print the plan (and write ``--json``); 1 with a message on a bad input."""
    args = parse_args(argv)
    try:
        if args.json:
            check_writable(args.json)
        cfg = load_config(args.config, args.cfg_options)
        init_default_scope(cfg.get('default_scope', 'finers_mm'))
        with warnings.catch_warnings():
            # peft and transformers warn about meta tensors and deprecated options: noise here
            warnings.simplefilter('ignore')
            report = plan_config(cfg, args.gpus, args.config, args.model_config,
                                 args.gpu_memory, args.prompt_text_tokens)
    except (FileNotFoundError, ValueError, OSError) as error:
        print(f'memory_plan.py: error: {error}', file=sys.stderr)
        return 1
    print(report_text(report, args.config))
    if args.json:
        write_json_atomic(args.json, report_dict(report, args.config), indent=2)
        print(f'written: {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
