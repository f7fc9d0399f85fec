# Copyright (c) finers_mm contributors. All rights reserved.
"""The resumable job of ``tools/search_best_region.py``: state shards, the split of the records over
ranks, progress, saves and the output annotations.

The candidates and the batched scoring are the library's (:mod:`finers_mm.rl.region_search`); this
module runs them over a whole annotation file so that a killed or failed run can be resumed.

**State** (:class:`SearchState`): each rank saves its finished records to its own shard
``<out>.partial.rank<r>.json`` beside the output, written atomically, with the settings that decide
the results and their digest. A run reads every shard of that output first, skips the records any
of them holds and refuses shards written with other settings; with several processes the records
left are split ``pending[rank::world_size]`` (:func:`run_search`).

The tool imports this file as a sibling module (its folder is on ``sys.path``).
"""
import glob
import hashlib
import json
import os
import os.path as osp
from typing import Dict, Iterable, List, Sequence

import numpy as np
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from finers_mm.datasets.transforms import LoadFineRSImage
from finers_mm.rl.region_search import CandidateRegions, SearchResult, search_batch
from finers_mm.utils.fileio import write_atomic

#: format tag of a state shard
STATE_FORMAT = 'finers_mm.region_search.state/v1'


def settings_digest(settings: dict) -> str:
    """SHA-256 of the settings' canonical JSON (sorted keys)."""
    text = json.dumps(settings, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


class RegionSearchStateError(ValueError):
    """A state shard that cannot be resumed from (unreadable, or written with other settings)."""


class SearchState:
    """The resumable progress of one search: a JSON shard per rank beside the output file.

    A shard holds ``{"format", "digest", "settings", "records": {ann_index: SearchResult}}``.
    Creating the state reads every shard of ``out_file`` (any rank, any earlier world size).

    Args:
        out_file (str): the search's output annotation file.
        settings (dict): JSON-ready settings that decide the results; a shard written with other
            settings is refused.
        rank (int): the rank whose shard :meth:`save` writes. Defaults to 0.

    Raises:
        RegionSearchStateError: a shard is unreadable or was written with other settings.
    """

    def __init__(self, out_file: str, settings: dict, rank: int = 0) -> None:
        self.out_file = out_file
        self.settings = json.loads(json.dumps(settings, default=str))
        self.digest = settings_digest(self.settings)
        self.shard_file = f'{out_file}.partial.rank{int(rank)}.json'
        #: results of every shard (all ranks)
        self.done: Dict[int, SearchResult] = {}
        #: results this rank's shard holds and :meth:`save` writes
        self.own: Dict[int, SearchResult] = {}
        for path in self.shard_files():
            records = self._read_shard(path)
            self.done.update(records)
            if path == self.shard_file:
                self.own.update(records)

    def shard_files(self) -> List[str]:
        """Every rank's shard of this output file that exists, sorted."""
        return sorted(glob.glob(glob.escape(self.out_file) + '.partial.rank*.json'))

    def add(self, index: int, result: SearchResult) -> None:
        """Record a finished record (saved by the next :meth:`save`)."""
        self.own[int(index)] = result
        self.done[int(index)] = result

    def save(self) -> None:
        """Write this rank's shard atomically."""
        content = dict(format=STATE_FORMAT, digest=self.digest, settings=self.settings,
                       records={str(i): r.to_dict() for i, r in sorted(self.own.items())})
        write_atomic(self.shard_file, json.dumps(content, ensure_ascii=False))

    def remove(self) -> None:
        """Delete every shard of this output file (after the output is written)."""
        for path in self.shard_files():
            os.remove(path)

    def _read_shard(self, path: str) -> Dict[int, SearchResult]:
        """The records of one shard, after checking its format and settings."""
        try:
            with open(path, encoding='utf-8') as f:
                content = json.load(f)
            if content.get('format') != STATE_FORMAT:
                raise ValueError(f'format is {content.get("format")!r}, not {STATE_FORMAT!r}')
            digest, settings = content['digest'], content['settings']
            records = {int(i): SearchResult.from_dict(r) for i, r in content['records'].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise RegionSearchStateError(f'{path}: unreadable region-search state ({error}). '
                                         'Delete it to start the search over.') from None
        if digest != self.digest:
            changed = sorted(key for key in set(settings) | set(self.settings)
                             if settings.get(key) != self.settings.get(key))
            raise RegionSearchStateError(
                f'{path}: this region-search state was written with other settings (differing: '
                f'{", ".join(changed) or "digest"}). Rerun with the config, checkpoint and '
                f'annotation file it was written with to resume, or delete {path} (and its '
                f'sibling {osp.basename(self.out_file)}.partial.rank*.json files) to start over.')
        return records


def run_search(refiner, infos: Sequence[dict], candidates: CandidateRegions, state: SearchState,
               batch_size: int = 1, save_interval: int = 16, rank: int = 0, world_size: int = 1,
               progress: bool = True) -> None:
    """Search this rank's share of the records that ``state`` does not hold yet, saving as it goes.

    The records no shard holds are split ``pending[rank::world_size]``; every rank must have read
    the same shards (create every rank's state before any rank runs this). The shard is saved once
    at least ``save_interval`` records were added since the last save (checked after each batch)
    and at the end.

    Args:
        refiner: see :func:`~finers_mm.rl.region_search.search_batch`.
        infos (Sequence[dict]): the data infos of every record of the annotation file.
        candidates (CandidateRegions): the candidate rule.
        state (SearchState): where the results go (``state.own``).
        batch_size (int): records per ``refine`` call. Defaults to 1.
        save_interval (int): records between saves. Defaults to 16.
        rank (int): this process's rank. Defaults to 0.
        world_size (int): number of processes. Defaults to 1.
        progress (bool): show an mmengine progress bar. Defaults to True.
    """
    pending = [info for info in infos if info['ann_index'] not in state.done]
    if len(pending) < len(infos):
        print_log(f'region search: resuming, {len(infos) - len(pending)} of {len(infos)} records '
                  f'already done ({", ".join(state.shard_files())})', logger='current')
    pending = pending[rank::world_size]
    loader = LoadFineRSImage()
    bar = ProgressBar(len(pending)) if progress and pending else None
    unsaved = 0
    for batch in _chunks(pending, batch_size):
        images = _load_images(batch, loader)
        for info, result in zip(batch, search_batch(refiner, images, batch, candidates)):
            state.add(info['ann_index'], result)
        unsaved += len(batch)
        if unsaved >= save_interval:
            state.save()
            unsaved = 0
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.file.write('\n')
    state.save()


def _chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    """Consecutive slices of ``size`` items."""
    for start in range(0, len(items), max(int(size), 1)):
        yield items[start:start + size]


def _load_images(infos: Sequence[dict], loader: LoadFineRSImage) -> List[np.ndarray]:
    """The ORIGINAL images of a batch, (H, W, 3) uint8 RGB each, each file decoded once."""
    decoded = {info['img_path']: loader(dict(info))['img'] for info in infos}
    return [decoded[info['img_path']] for info in infos]


def add_best_regions(content: dict, results: Dict[int, SearchResult]) -> dict:
    """Set ``best_region`` (ORIGINAL pixels) in every record of an annotation file's content.

    Args:
        content (dict): the loaded annotation JSON ``{"annotations": [...], ...}``; changed in
            place, nothing else in it is touched.
        results (dict[int, SearchResult]): a result for every record index.

    Returns:
        dict: ``content``.

    Raises:
        ValueError: a record has no result.
    """
    records = content['annotations']
    missing = [i for i in range(len(records)) if i not in results]
    if missing:
        raise ValueError(f'region search: no result for records {missing[:10]} (of '
                         f'{len(records)}); rerun the same command to finish them')
    for index, record in enumerate(records):
        record['best_region'] = list(results[index].best_region)
    return content


def summarize(results: Dict[int, SearchResult]) -> dict:
    """Mean best IoU, mean IoU of the centred region and how many records improved on it.

    Args:
        results (dict[int, SearchResult]): the search's results.

    Returns:
        dict: ``num_records``, ``mean_best_iou``, ``mean_centred_iou``, ``num_improved``.
    """
    values = list(results.values())
    return dict(
        num_records=len(values),
        mean_best_iou=float(np.mean([r.best_iou for r in values])) if values else 0.0,
        mean_centred_iou=float(np.mean([r.ious[0] for r in values])) if values else 0.0,
        num_improved=sum(r.improved for r in values))
