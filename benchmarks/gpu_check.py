# Copyright (c) finers_mm contributors. All rights reserved.
"""A GPU check: one GSE GRPO iteration of a 7B training config at real shapes on one GPU, with
Qwen2.5-VL-7B at its full width and reduced depth (random weights).

What it does, in one process:

1. writes a Qwen2.5-VL checkpoint with random weights: the widths, vocabulary (152,064) and
   vision tower (32 blocks) of Qwen2.5-VL-7B's public ``config.json``, ``--layers`` of its 28
   decoder layers (default 4), drawn on the GPU in the config's dtype; the tiny local tokenizer and
   a processor with 7B's pixel budget (``benchmarks/gpu_check_build.py``);
2. trains ``--iters`` GRPO iterations (default 2: the first warms up and allocates the optimiser
   state) of ``--config`` (default ``configs/finers/gse_qwen7b.py``) through mmengine's runner,
   exactly as ``tools/train.py`` builds it, with the config's precision, optimiser, gradient
   checkpointing, reward, runner and strategy (one process, world size 1: a FlexibleRunner strategy
   is launched as ``pytorch`` with one rank). Changed for the check: the model directory, the data
   (the 12 bundled 1920x1080 records, each given a ``best_region`` so the retrospective reward
   terms run), ``--new-tokens`` per completion (default 256, every completion that long:
   ``min_new_tokens``), no checkpoint saving, in-process data loading;
3. measures each phase of every iteration (``benchmarks/gpu_check_probes.py``): the rollout
   (prefill and decode apart: decode tokens/s), the reference log-probs, the policy forward,
   backward and optimiser step (their sum: the update time), wall time and
   ``torch.cuda.max_memory_allocated``;
4. compares the decode rate with the HBM bound (bandwidth / bytes a decode step reads: the weights
   outside the vision tower and embeddings, plus the KV cache at the mean context), the card's
   bandwidth from a table by name (``benchmarks/gpu_check_math.py``) or a measured copy
   bandwidth, at the reduced and the full depth;
5. compares the measured memory with ``finers_mm.apis.memory_plan_config.plan_config`` at the
   reduced depth, and extrapolates it to the full 28 layers by the plan's difference;
6. prints mmdet-style tables and writes the numbers to ``--out`` (JSON, atomically).

vLLM: with a GPU and ``vllm`` importable, after the GRPO iterations (their memory released) the
same checkpoint, prompt and group are sampled through ``VLLMRolloutEngine``
(``benchmarks/gpu_check_vllm.py``); otherwise the table says why not ("not installed").

    python benchmarks/gpu_check.py --out work_dirs/gpu_check.json          # on one GPU
    python benchmarks/gpu_check.py --tiny --out /tmp/gpu_check_tiny.json   # on CPU, seconds

``--tiny``: the tiny local Qwen2.5-VL's config (1 of its 2 layers), its small pixel budget, 8 new
tokens, on CPU unless ``--device cuda``; AmpOptimWrapper (GPU only) becomes OptimWrapper off a GPU.

On the lent GPU machine (no network; Python 3.12 with torch 2.11.0+cu130 but no OpenMMLab stack):
prepare here once, ``bash tools/misc/device_bundle.sh`` (writes ``.whl/``: mmcv 2.1.0 compiled with
its ops for that torch, and the other wheels the machine lacks; see docs/dependencies.md, "The GPU
machine's bundle"), then make the one call ``run(command='bash benchmarks/gpu_check_device.sh',
carry=['.whl'], timeout_s=360)``: it installs the wheels into ``/tmp/site``, fails fast if the
stack does not import, then runs this script; ``gpu_check.json``, ``gpu_check.log`` and
``versions.txt`` come back in ``$OUT``.
"""
import argparse
import copy
import gc
import os
import os.path as osp
import platform
import shutil
import socket
import sys
import tempfile
import time
import uuid
from typing import Dict, List, Optional

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')

import torch  # noqa: E402

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from gpu_check_math import (card_bandwidth, decode_weight_bytes,  # noqa: E402
                            extrapolate_to_depth, fraction, gb, hbm_bound_tokens_per_s,
                            kv_bytes_per_token, max_present, phase_totals)
from gpu_check_probes import (PHASES, UPDATE_PHASES, PhaseMeter, PhaseProbeHook,  # noqa: E402
                              measure_copy_bandwidth)
from gpu_check_vllm import measure_vllm, vllm_unavailable  # noqa: E402

DEFAULT_CONFIG = osp.join(REPO_ROOT, 'configs', 'finers', 'gse_qwen7b.py')
#: bytes of the KV cache's elements and the weights, by the config's dtype name
ELEMENT_BYTES = dict(bfloat16=2, float16=2, float32=4)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='the GSE/LPR GRPO training config (default gse_qwen7b.py)')
    parser.add_argument('--tiny', action='store_true',
                        help='the tiny local Qwen2.5-VL on CPU (checks the script in seconds)')
    parser.add_argument('--layers', type=int,
                        help='decoder layers kept (default 4 of 28; --tiny: 1 of 2)')
    parser.add_argument('--model-config',
                        help="the config.json whose widths are kept (default Qwen2.5-VL-7B's "
                        'shipped in finers_mm/data/model_configs)')
    parser.add_argument('--device', choices=['auto', 'cuda', 'cpu'], default='auto',
                        help='auto: cuda when available (--tiny: cpu)')
    parser.add_argument('--iters', type=int, default=2, help='GRPO iterations (default 2)')
    parser.add_argument('--new-tokens', type=int,
                        help='tokens of every completion (default 256; --tiny: 8)')
    parser.add_argument('--num-generations', type=int,
                        help="samples per prompt (default: the config's GRPOHook)")
    parser.add_argument('--launcher', choices=['auto', 'none', 'pytorch'], default='auto',
                        help="auto: 'pytorch' (one rank) for a FlexibleRunner strategy, else none")
    parser.add_argument('--vllm-memory', type=float, default=0.5,
                        help="vLLM's gpu_memory_utilization (default 0.5)")
    parser.add_argument('--vllm-eager', action='store_true', help='vLLM without CUDA graphs')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads on CPU (default 1: a loaded CPU box runs the tiny '
                        'model far slower with more)')
    parser.add_argument('--work-dir', help='keep the checkpoint and the run here (default: a '
                        'temporary folder, removed)')
    parser.add_argument('--out', help='write the numbers to this JSON file (atomically)')
    args = parser.parse_args(argv)
    if args.iters < 1:
        parser.error(f'--iters must be >= 1, got {args.iters}')
    if args.new_tokens is not None and args.new_tokens < 2:
        parser.error(f'--new-tokens must be >= 2 (one decode step at least), got '
                     f'{args.new_tokens}')
    return args


def resolve_device(requested: str, tiny: bool) -> str:
    """The device of the run; ``'cpu'`` hides the GPUs before CUDA is initialised.

    Raises:
        RuntimeError: ``--device cuda`` without a GPU.
    """
    if requested == 'auto':
        requested = 'cpu' if tiny or not torch.cuda.is_available() else 'cuda'
    if requested == 'cpu':
        os.environ['CUDA_VISIBLE_DEVICES'] = ''
    elif not torch.cuda.is_available():
        raise RuntimeError('--device cuda: no GPU is visible (torch.cuda.is_available() is False)')
    return requested


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def choose_launcher(cfg, requested: str) -> str:
    """``'pytorch'`` (one rank) when the config's runner applies a sharding strategy (FSDP and
    DeepSpeed need a process group), else ``'none'`` (mmengine's plain single-device run)."""
    if requested != 'auto':
        return requested
    return ('pytorch' if cfg.get('runner_type') == 'FlexibleRunner' and cfg.get('strategy')
            else 'none')


def run_config(args, model_dir: str, data: Dict[str, str], work_dir: str, cuda: bool):
    """The config the check trains with: ``--config`` with the check's changes (module doc).

    Returns:
        tuple[mmengine.Config, list[str]]: the config and notes on what was changed beyond the
        model, the data and the lengths.
    """
    from finers_mm.utils.run_config import load_config

    cfg = load_config(args.config)
    cfg.launcher = choose_launcher(cfg, args.launcher)
    cfg.work_dir = work_dir
    # a visualizer of its own: mmengine hands a runner the existing instance of the same name,
    # saving into that earlier run's (perhaps deleted) work dir, when the check runs in a process
    # that built a runner before (a test after another benchmark)
    cfg.visualizer.name = f'gpu_check_{uuid.uuid4().hex}'
    notes = []
    vlm = cfg.model.vlm
    vlm.pretrained = model_dir
    vlm.generation = dict(vlm.get('generation') or {}, max_new_tokens=args.new_tokens,
                          min_new_tokens=args.new_tokens)
    grpo = [h for h in cfg.get('custom_hooks') or []
            if str(h.get('type', '')).split('.')[-1] == 'GRPOHook']
    if len(grpo) != 1:
        raise ValueError(f'{args.config}: the GPU check runs a GRPO training config (one GRPOHook '
                         f'in custom_hooks), found {len(grpo)}')
    grpo[0].max_new_tokens = args.new_tokens
    if args.num_generations is not None:
        grpo[0].num_generations = args.num_generations
    loader = cfg.train_dataloader
    loader.num_workers, loader.persistent_workers = 0, False
    loader.dataset.data_root = data['data_root']
    loader.dataset.ann_file = data['ann_file']
    loader.dataset.data_prefix = dict(img=data['img'])
    cfg.train_cfg.max_iters = args.iters
    cfg.train_cfg.val_interval = 10**9
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10**9, save_last=False)
    cfg.default_hooks.logger.interval = 1
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=0)
    if not cuda:
        if cfg.optim_wrapper.get('type') == 'AmpOptimWrapper':
            cfg.optim_wrapper.type = 'OptimWrapper'
            for key in ('dtype', 'loss_scale'):
                cfg.optim_wrapper.pop(key, None)
            notes.append('CPU: AmpOptimWrapper (GPU only) -> OptimWrapper, same optimiser')
        cfg.env_cfg.dist_cfg.backend = 'gloo'
    return cfg, notes


def build_runner(cfg):
    """The runner as tools/train.py builds it (one rank of a ``pytorch`` launch if asked)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from finers_mm.utils.run_config import init_cpu_distributed
    if cfg.launcher == 'pytorch':
        for key, value in (('RANK', '0'), ('LOCAL_RANK', '0'), ('WORLD_SIZE', '1'),
                           ('MASTER_ADDR', '127.0.0.1'), ('MASTER_PORT', str(_free_port()))):
            os.environ.setdefault(key, value)
        init_cpu_distributed(cfg)
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def device_facts(device: str) -> dict:
    """The card's name and memory, and the bandwidth the HBM bound uses (and where it is from)."""
    if device == 'cuda':
        name = torch.cuda.get_device_name(0)
        memory = torch.cuda.get_device_properties(0).total_memory
    else:
        name, memory = f'CPU ({platform.processor() or platform.machine()})', None
    bandwidth = card_bandwidth(name) if device == 'cuda' else None
    source = 'datasheet'
    if bandwidth is None:
        bandwidth = measure_copy_bandwidth(device, 1024 if device == 'cuda' else 64)
        source = 'measured copy'
    return dict(name=name, memory_bytes=memory, bandwidth=bandwidth, bandwidth_source=source)


def rollout_numbers(rollout: dict, model: dict, device: dict, element_bytes: int) -> dict:
    """The measured decode rate of one rollout against the HBM bound, at both depths."""
    rows = rollout['rows'] or rollout['sequences']
    hidden = model['hidden']
    weights = decode_weight_bytes(model['named_bytes'], rows, hidden, element_bytes)
    weights_full = weights + (model['full_layers'] - model['layers']) * model['layer_bytes']
    out = dict(rollout, weight_bytes_per_step=weights, weight_bytes_per_step_full=weights_full)
    new_tokens = rollout['max_completion_length']
    for suffix, layers, weight in (('', model['layers'], weights),
                                   ('_full', model['full_layers'], weights_full)):
        kv = kv_bytes_per_token(layers, model['kv_heads'], model['head_dim'], element_bytes)
        out['hbm_bound_tokens_per_s' + suffix] = (
            hbm_bound_tokens_per_s(weight, kv, rows, rollout['prompt_tokens'], new_tokens,
                                   device['bandwidth']) if new_tokens >= 2 else None)
    out['fraction_of_bound'] = fraction(rollout['decode_tokens_per_s'],
                                        out['hbm_bound_tokens_per_s'])
    return out


def memory_numbers(plan_cfg, config: str, model: dict, source_config: str, probe, meter,
                   prompt_text_tokens: int, gpu_memory_gb: float) -> dict:
    """Measured memory against the plan at the reduced depth, extrapolated to the full depth."""
    from finers_mm.apis.memory_plan import MODEL_STATES
    from finers_mm.apis.memory_plan_config import plan_config

    plans = {}
    for key, model_config in (('reduced', osp.join(model['dir'], 'config.json')),
                              ('full', source_config)):
        plan = plan_config(copy.deepcopy(plan_cfg), 1, config, model_config, gpu_memory_gb,
                           prompt_text_tokens).plan
        parts = {c.name: c.bytes for c in plan.components}
        plans[key] = dict(
            weights_and_reference=parts.get('weights', 0) + sum(
                c.bytes for c in plan.components
                if c.phase == MODEL_STATES and c.name.startswith('KL reference')),
            model_states=plan.model_states, peak=plan.peak, table=plan.to_dict())
    last = meter.iterations[-1]
    measured = dict(
        weights_and_reference=probe.setup_bytes,
        model_states=(last.get('optimizer_step') or {}).get('end_bytes'),
        peak=max_present([p['peak_bytes'] for it in meter.iterations for p in it.values()]))
    rows = {}
    for key in ('weights_and_reference', 'model_states', 'peak'):
        value = measured[key]
        rows[key] = dict(
            measured=value, plan=plans['reduced'][key], plan_full=plans['full'][key],
            extrapolated_full=None if value is None else extrapolate_to_depth(
                value, plans['reduced'][key], plans['full'][key]))
    return dict(rows=rows, plans={k: v['table'] for k, v in plans.items()})


def _fmt(value, spec: str = '.2f', missing: str = 'n/a') -> str:
    return missing if value is None else format(value, spec)


def report_text(result: dict) -> str:
    """The printed report: four mmdet-style tables (AsciiTable)."""
    from terminaltables import AsciiTable

    model, dev, run = result['model'], result['device'], result['run']
    lines = [
        f"device: {dev['name']}; bandwidth {dev['bandwidth'] / 1e9:.0f} GB/s "
        f"({dev['bandwidth_source']})",
        f"model: {model['source']} at {model['layers']} of {model['full_layers']} decoder layers, "
        f"{model['parameters'] / 1e9:.2f} B parameters, random weights ({model['dtype']}), built "
        f"and written in {model['seconds']:.1f} s",
        f"config: {run['config']} (runner {run['runner']}, launcher {run['launcher']}, optimiser "
        f"wrapper {run['optim_wrapper']}); {run['iterations']} iteration(s), the last one below"]
    lines += [f'  note: {note}' for note in run['notes']]
    last = result['iterations'][-1]
    rows = [['phase', 'seconds', 'peak GB', 'start GB', 'end GB']]
    for name in PHASES:
        p = last['phases'].get(name)
        rows.append([name] + (['did not run', '', '', ''] if p is None else [
            f"{p['seconds']:.3f}", _fmt(gb(p['peak_bytes'])), _fmt(gb(p['start_bytes'])),
            _fmt(gb(p['end_bytes']))]))
    for name, total in (('update (fwd+bwd+step)', last['update']),
                        ('iteration (all phases)', last['total'])):
        rows.append([name, _fmt(total['seconds'], '.3f'), _fmt(gb(total['peak_bytes'])), '', ''])
    table = AsciiTable(rows, title=' GRPO iteration by phase ')
    table.justify_columns = {i: 'right' for i in range(1, 5)}
    lines += ['', table.table]

    hf = result['rollout']['hf']
    rows = [['engine', 'seq', 'prompt', 'new', 'prefill s', 'decode s', 'decode tok/s',
             'HBM bound tok/s', 'of bound']]
    for name, r in (('HF (adapter)', hf), ('vLLM', result['rollout']['vllm'])):
        if r.get('status', 'measured') != 'measured':
            rows.append([name, r['status'], '', '', '', '', '', '', ''])
            continue
        share = r['fraction_of_bound']
        rows.append([name, r['rows'], r['prompt_tokens'], r['max_completion_length'],
                     _fmt(r['prefill_seconds'], '.3f'), _fmt(r['decode_seconds'], '.3f'),
                     _fmt(r['decode_tokens_per_s'], '.0f'),
                     _fmt(r['hbm_bound_tokens_per_s'], '.0f'),
                     _fmt(None if share is None else 100 * share, '.1f') + ' %'])
    table = AsciiTable(rows, title=f" rollout decode, {model['layers']} layers ")
    table.justify_columns = {i: 'right' for i in range(1, 9)}
    lines += ['', table.table,
              f"  HBM bound at {model['full_layers']} layers: "
              f"{_fmt(hf['hbm_bound_tokens_per_s_full'], '.0f')} tok/s "
              f"({hf['weight_bytes_per_step_full'] / 1e9:.2f} GB of weights per step)"]

    names = dict(weights_and_reference='policy + reference (before step 1)',
                 model_states='model states (end of optimiser step)', peak='peak allocated')
    rows = [['GB', 'measured', f"plan ({model['layers']} layers)",
             f"plan ({model['full_layers']} layers)", f"extrapolated ({model['full_layers']})"]]
    for key, label in names.items():
        r = result['memory']['rows'][key]
        rows.append([label, _fmt(gb(r['measured'])), _fmt(gb(r['plan'])),
                     _fmt(gb(r['plan_full'])), _fmt(gb(r['extrapolated_full']))])
    table = AsciiTable(rows, title=' memory vs tools/analysis_tools/memory_plan.py (1 GPU) ')
    table.justify_columns = {i: 'right' for i in range(1, 5)}
    lines += ['', table.table, f"total wall time {result['seconds']:.1f} s"]
    return '\n'.join(lines)


def iteration_records(meter: PhaseMeter) -> List[dict]:
    """Each iteration's phases with the update and iteration totals."""
    return [dict(phases=phases, update=phase_totals(phases, UPDATE_PHASES),
                 total=phase_totals(phases, PHASES)) for phases in meter.iterations]


def main(argv: Optional[List[str]] = None) -> dict:
    """Run the check; print the tables; write ``--out``; return the numbers."""
    start = time.perf_counter()
    args = parse_args(argv)
    device = resolve_device(args.device, args.tiny)
    cuda = device == 'cuda'
    if not cuda:
        torch.set_num_threads(args.threads)
    layers = args.layers if args.layers is not None else (1 if args.tiny else 4)
    args.new_tokens = args.new_tokens or (8 if args.tiny else 256)

    import transformers
    from mmengine.registry import init_default_scope

    import finers_mm  # noqa: F401  (registers the modules, the checkpoint-loading fix)
    from finers_mm.utils.fileio import check_writable, write_json_atomic
    from finers_mm.utils.run_config import load_config
    from gpu_check_build import (QWEN25_VL_7B_CONFIG, QWEN25_VL_PIXELS, write_annotations,
                                 write_random_checkpoint)
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    if args.out:
        check_writable(args.out)
    init_default_scope('finers_mm')

    work_dir = args.work_dir or tempfile.mkdtemp(prefix='finers_gpu_check_')
    try:
        if args.tiny:
            from finers_mm.testing.tiny_models import (TINY_MAX_PIXELS, TINY_MIN_PIXELS,
                                                       build_tiny_models)
            tiny = build_tiny_models(osp.join(tempfile.gettempdir(), 'finers_bench_tiny_models'))
            source = args.model_config or osp.join(tiny['qwen2_5_vl'], 'config.json')
            pixels = (TINY_MIN_PIXELS, TINY_MAX_PIXELS)
        else:
            source = args.model_config or QWEN25_VL_7B_CONFIG
            pixels = QWEN25_VL_PIXELS
        base = load_config(args.config)
        dtype_name = base.model.vlm.get('dtype', 'float32')
        model = write_random_checkpoint(osp.join(work_dir, 'model'), source, layers, pixels,
                                        device, getattr(torch, dtype_name))
        model.update(source=source, dtype=dtype_name)
        data = write_annotations(osp.join(work_dir, 'annotations.json'),
                                 float(base.frames.region_size))
        cfg, notes = run_config(args, model['dir'], data, osp.join(work_dir, 'run'), cuda)
        plan_cfg = copy.deepcopy(cfg)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        runner = build_runner(cfg)
        meter = PhaseMeter(cuda)
        probe = PhaseProbeHook(meter)
        runner.register_hook(probe, priority='HIGHEST')
        runner.train()
        run = dict(config=args.config, runner=type(runner).__name__, launcher=cfg.launcher,
                   optim_wrapper=type(runner.optim_wrapper).__name__, iterations=args.iters,
                   new_tokens=args.new_tokens, notes=notes)
        vlm_cfg, request = copy.deepcopy(plan_cfg.model.vlm), meter.last_request
        # the training's model, optimiser and reference go before vLLM takes its share
        del runner
        probe.meter = meter.clock = None
        if cuda:
            gc.collect()
            torch.cuda.empty_cache()
        dev = device_facts(device)
        element_bytes = ELEMENT_BYTES[dtype_name]
        hf = rollout_numbers(meter.rollouts[-1], model, dev, element_bytes)
        vllm = dict(status=vllm_unavailable(cuda) or 'measured')
        if vllm['status'] == 'measured':
            try:
                measured = measure_vllm(vlm_cfg, *request, hf['rows'] // hf['prompts'],
                                        args.new_tokens, args.vllm_memory, args.vllm_eager)
                vllm = rollout_numbers(measured, model, dev, element_bytes)
            except Exception as error:  # report the HF numbers whatever vLLM does
                vllm = dict(status=f'failed: {type(error).__name__}: {error}'[:300])
        text_tokens = hf['prompt_tokens'] - hf['image_tokens'] - 2
        memory = memory_numbers(plan_cfg, args.config, model, source, probe, meter, text_tokens,
                                (dev['memory_bytes'] or 80e9) / 1e9)
        result = dict(
            device=dict(dev, kind=device),
            model={k: v for k, v in model.items() if k != 'named_bytes'},
            run=run, iterations=iteration_records(meter), logged=probe.hub,
            rollout=dict(hf=hf, vllm=vllm), memory=memory,
            seconds=time.perf_counter() - start)
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        if args.work_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)
    print(report_text(result))
    if args.out:
        write_json_atomic(args.out, result, indent=2)
        print(f'written: {args.out}')
    return result


if __name__ == '__main__':
    main()
