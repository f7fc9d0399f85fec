# Copyright (c) finers_mm contributors. All rights reserved.
"""Retrospective best-region search: write ``best_region`` into a FineRS-4k annotation file.

A trained refiner (LPR) localises each record's target in candidate crop windows around regions
that contain it; the region of the window where it does best becomes the record's ``best_region``
(ORIGINAL pixels), the explorer's (GSE) region target. Rules: :mod:`finers_mm.rl.region_search`.

Examples::

    python tools/search_best_region.py CONFIG LPR_CKPT data/FineRS-4k/annotations/train.json \\
        --out data/FineRS-4k/annotations/train_best_region.json
    bash tools/dist_launch.sh 8 tools/search_best_region.py CONFIG LPR_CKPT ANN_JSON --out NEW_JSON
    python tools/search_best_region.py configs/finers/region_search_tiny.py none \\
        finers_mm/data/synthetic/annotations/train.json --out work_dirs/region_search/train.json

``CONFIG`` builds the refiner: ``model = dict(type='LocalRefiner', ...)``, or a ``FineRSDetector``
config whose ``model.refiner`` is used. It also holds the dataset config's ``frames``
(``explorer_size``, ``region_size``, ``crop_min_side``), optionally ``protocol`` (``'finers_mm'``
by default, or ``'authors'``) and optionally a ``region_search`` section (defaults shown)::

    region_search = dict(
        num_candidates=None,   # candidate regions per record, the centred one included;
                               # None: the protocol's (finers_mm 8, authors 5 = 4 random + centred)
        rule='random',         # or 'grid' (num_candidates = 1 + g * g)
        seed=0,                # 'random' draws from np.random.default_rng((seed, record index))
        tie_rule=None,         # equal scores: 'first' (finers_mm) or 'centred_then_last'
                               # (authors); None: the protocol's
        batch_size=1,          # records per refiner call (x num_candidates windows); --batch-size
        save_interval=16,      # records between saves of the resumable state
        dist_timeout=86400)    # seconds ranks may wait for each other (--launcher pytorch)

``LPR_CKPT`` is an mmengine checkpoint of that refiner (every weight must match, ``strict``), or
``none`` for the weights the config loads (its local Hugging Face directories).

The output is the input JSON with ``best_region`` set in every record (nothing else changes; an
existing ``best_region`` is replaced), written atomically. Progress is saved to
``NEW_JSON.partial.rank<r>.json`` (one per rank); rerunning the same command resumes, a state from
other settings is refused, and the state files are deleted once the output is written (the
resumable job: ``tools/region_search_job.py``).
"""
import argparse
import datetime
import hashlib
import json
import os.path as osp
import sys
from typing import List, Optional, Tuple

TOOLS_DIR = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, osp.dirname(TOOLS_DIR))
# the job runner is a sibling module: a script's folder is on sys.path, but not when the file is
# loaded by its path (tests); appended, so that tools/test.py never shadows the stdlib's `test`
if TOOLS_DIR not in sys.path:
    sys.path.append(TOOLS_DIR)

import finers_mm  # noqa: E402,F401  (applies the checkpoint-loading fix before any loading)
import torch  # noqa: E402
from finers_mm.datasets import FineRS4kDataset, FineRSAnnotationError  # noqa: E402
from finers_mm.registry import MODELS  # noqa: E402
from finers_mm.rl.region_search import CandidateRegions  # noqa: E402
from finers_mm.structures.protocols import DEFAULT_PROTOCOL  # noqa: E402
from finers_mm.utils.fileio import write_atomic  # noqa: E402
from finers_mm.utils.run_config import (  # noqa: E402
    init_cpu_distributed, load_run_config, process_group_scope, set_local_rank_env)
from mmengine.config import Config, ConfigDict, DictAction  # noqa: E402
from mmengine.device import get_device  # noqa: E402
from mmengine.dist import barrier, get_dist_info, init_dist  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.runner import load_checkpoint  # noqa: E402
from region_search_job import (RegionSearchStateError, SearchState,  # noqa: E402
                               add_best_regions, run_search, summarize)

#: ``region_search`` keys of the tool (the others configure the candidates)
RUN_DEFAULTS = dict(batch_size=1, save_interval=16, dist_timeout=86400)
#: ``region_search`` keys of the candidates (:class:`CandidateRegions` arguments)
CANDIDATE_KEYS = ('num_candidates', 'rule', 'seed', 'tie_rule')


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Search the best explorer region of every record with a trained refiner')
    parser.add_argument('config', help='refiner (LocalRefiner) or FineRSDetector config file')
    parser.add_argument('checkpoint', help='mmengine checkpoint of the refiner, or "none"')
    parser.add_argument('ann_file', help='FineRS-4k annotation JSON to search')
    parser.add_argument('--out', required=True, help='the annotation JSON to write')
    parser.add_argument(
        '--img-dir', help="images folder of the records' image_path (default: the annotation "
        "file's ../images)")
    parser.add_argument('--batch-size', type=int, help='records per refiner call (overrides '
                        'region_search.batch_size)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs')
    parser.add_argument('--launcher', choices=['none', 'pytorch'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f'--batch-size must be >= 1, got {args.batch_size}')
    set_local_rank_env(args.local_rank)
    return args


def refiner_config(cfg: Config) -> ConfigDict:
    """The refiner's model config: ``cfg.model``, or ``cfg.model.refiner`` of a detector config."""
    if 'model' not in cfg:
        raise ValueError(f'{cfg.filename}: no `model`; give a LocalRefiner or FineRSDetector '
                         'config')
    return cfg.model.refiner if 'refiner' in cfg.model else cfg.model


def search_settings(cfg: Config) -> Tuple[CandidateRegions, dict]:
    """The candidate rule and the run options of a config.

    The candidates follow the config's ``protocol`` (``'finers_mm'`` when it has none) where its
    ``region_search`` section does not set ``num_candidates`` or ``tie_rule``.

    Args:
        cfg (Config): the loaded config.

    Returns:
        tuple[CandidateRegions, dict]: the candidates and ``batch_size``, ``save_interval``,
        ``dist_timeout`` (:data:`RUN_DEFAULTS` where the config does not say).
    """
    frames = cfg.get('frames')
    if not frames:
        raise ValueError(f'{cfg.filename}: no `frames` dict; inherit '
                         'configs/_base_/datasets/finers4k.py or set frames = dict('
                         'explorer_size=..., region_size=..., crop_min_side=...)')
    options = dict(cfg.get('region_search') or {})
    run = {key: options.pop(key, default) for key, default in RUN_DEFAULTS.items()}
    unknown = set(options) - set(CANDIDATE_KEYS)
    if unknown:
        raise ValueError(f'{cfg.filename}: unknown region_search keys {sorted(unknown)}; known: '
                         f"{', '.join(CANDIDATE_KEYS)}, {', '.join(RUN_DEFAULTS)}")
    candidates = CandidateRegions(frames['explorer_size'], frames['region_size'],
                                  frames['crop_min_side'],
                                  protocol=cfg.get('protocol') or DEFAULT_PROTOCOL, **options)
    return candidates, run


def load_annotations(ann_file: str, img_dir: str) -> Tuple[dict, List[dict], str]:
    """Read and validate the annotation file (fails early, naming the file and the record).

    Args:
        ann_file (str): the FineRS-4k annotation JSON.
        img_dir (str): the images folder.

    Returns:
        tuple[dict, list[dict], str]: the JSON content, one data info per record (in file order)
        and the file's SHA-256.
    """
    dataset = FineRS4kDataset(ann_file=ann_file, data_prefix=dict(img=img_dir), test_mode=True,
                              pipeline=[])
    with open(ann_file, 'rb') as f:
        raw = f.read()
    content = json.loads(raw)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    assert [info['ann_index'] for info in infos] == list(range(len(content['annotations'])))
    return content, infos, hashlib.sha256(raw).hexdigest()


def init_distributed(launcher: str, cfg: Config, timeout_s: float) -> None:
    """Join the process group of a ``torchrun`` launch (``--launcher pytorch``).

    Without a GPU this is :func:`~finers_mm.utils.run_config.init_cpu_distributed` (the path of
    tools/train.py and tools/test.py), always with gloo: the search has no Runner, and a CPU run of
    a config written for GPUs (``dist_cfg.backend='nccl'``) still runs.

    Args:
        launcher (str): ``'none'`` (nothing to do) or ``'pytorch'``.
        cfg (Config): its ``env_cfg.dist_cfg.backend`` is used on GPUs (default nccl).
        timeout_s (float): how long a rank may wait for the others (``dist_timeout``).
    """
    if launcher == 'none':
        return
    timeout = datetime.timedelta(seconds=float(timeout_s))
    if torch.cuda.is_available():
        backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend', 'nccl')
        init_dist(launcher, backend=backend, timeout=timeout)
    else:  # mmengine's init_dist pins a CUDA device
        init_cpu_distributed(Config(dict(launcher=launcher, env_cfg=cfg.get('env_cfg', {}))),
                             timeout=timeout, backend='gloo')


def build_refiner(model_cfg: ConfigDict, checkpoint: Optional[str]) -> torch.nn.Module:
    """Build the refiner, load the checkpoint (strict) and put it on this rank's device.

    Args:
        model_cfg (ConfigDict): the refiner's config.
        checkpoint (str, optional): mmengine checkpoint; None keeps the config's weights.

    Returns:
        torch.nn.Module: the refiner, in eval mode.
    """
    refiner = MODELS.build(model_cfg)
    if checkpoint is not None:
        load_checkpoint(refiner, checkpoint, map_location='cpu', strict=True)
    return refiner.to(get_device()).eval()


def main(argv=None) -> Optional[dict]:
    """Run the search.

    Args:
        argv (list[str], optional): the command line without the program; ``sys.argv`` if None.

    Returns:
        dict, optional: :func:`region_search_job.summarize` of every record on rank 0,
        None on the other ranks.
    """
    args = parse_args(argv)
    with process_group_scope():  # a launch's group ends before the interpreter does
        return _search(args)


def _search(args: argparse.Namespace) -> Optional[dict]:
    """:func:`main` after its command line."""
    cfg = load_run_config(args.config, args.cfg_options, args.launcher)
    init_default_scope(cfg.get('default_scope', 'finers_mm'))
    candidates, run = search_settings(cfg)
    checkpoint = None if args.checkpoint.lower() == 'none' else osp.abspath(args.checkpoint)
    if checkpoint is not None and not osp.isfile(checkpoint):
        sys.exit(f'search_best_region: the checkpoint {checkpoint} does not exist (give a file '
                 'or "none")')
    img_dir = args.img_dir or osp.join(osp.dirname(osp.dirname(osp.abspath(args.ann_file))),
                                       'images')
    try:
        content, infos, ann_digest = load_annotations(args.ann_file, img_dir)
    except FineRSAnnotationError as error:
        sys.exit(f'search_best_region: {error}')

    init_distributed(args.launcher, cfg, run['dist_timeout'])
    rank, world_size = get_dist_info()
    model_cfg = refiner_config(cfg)
    settings = dict(candidates=candidates.settings, refiner=model_cfg.to_dict(),
                    checkpoint=checkpoint, annotations_sha256=ann_digest)
    try:
        state = SearchState(args.out, settings, rank)
    except RegionSearchStateError as error:
        sys.exit(f'search_best_region: {error}')
    barrier()  # every rank has read the shards before any rank writes its own

    refiner = build_refiner(model_cfg, checkpoint)
    run_search(refiner, infos, candidates, state, batch_size=args.batch_size or run['batch_size'],
               save_interval=run['save_interval'], rank=rank, world_size=world_size,
               progress=rank == 0)
    barrier()
    if rank != 0:
        return None
    merged = SearchState(args.out, settings)
    write_atomic(args.out, json.dumps(add_best_regions(content, merged.done),
                                      ensure_ascii=False) + '\n')
    merged.remove()
    summary = summarize(merged.done)
    print_log(
        f"region search: wrote best_region for {summary['num_records']} records to {args.out}; "
        f"mean best IoU {summary['mean_best_iou']:.4f} (centred region "
        f"{summary['mean_centred_iou']:.4f}); improved on the centred region: "
        f"{summary['num_improved']} of {summary['num_records']}", logger='current')
    return summary


if __name__ == '__main__':
    main()
