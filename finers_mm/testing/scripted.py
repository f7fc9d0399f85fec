# Copyright (c) finers_mm contributors. All rights reserved.
"""Scripted VLM adapters and oracle completions: test scaffolding that pins the frame chain down.

The real Qwen2.5-VL adapter, prompts, parser and frame maps, with ``generate`` replaced by text the
test decides. An ORACLE completion names the ground truth in the model's coordinates of the view
it was given, so the chain must bring it back as the ground truth in ORIGINAL pixels; any wrong
frame, crop or convention between them breaks that.

Importing this module registers :class:`ScriptedQwen25VLAdapter`, :class:`OracleQwen25VLAdapter`
and :class:`BlankingOracleAdapter` in finers_mm's ``MODELS`` (a config run in a subprocess gets
them with ``custom_imports=dict(imports=['finers_mm', 'finers_mm.testing.scripted'])``).
"""
import json
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from finers_mm.models.vlm import GenerationResult, Qwen25VLAdapter
from finers_mm.registry import MODELS
from finers_mm.structures import (crop_window_from_region, explorer_to_original,
                                  original_to_explorer, region_around_box, window_to_frame)
from finers_mm.structures.answers import FOUND_RESPONSE

#: the reasoning of every scripted completion
THINK = '<think>The target is small; I compare the candidates one by one.</think>'
EXPLORER_SIZE = (1920, 1080)
REGION_SIZE = 256


def completion(data: dict) -> str:
    """A well-formed completion whose answer is the JSON object ``data``."""
    return THINK + '<answer>' + json.dumps(data) + '</answer>'


def _generation(texts: Sequence[str], with_scores: bool = False,
                num_return_sequences: int = 1,
                logprobs: Optional[Sequence[float]] = None) -> GenerationResult:
    """A :class:`GenerationResult` of fixed texts (one token each).

    Args:
        texts (Sequence[str]): the B * n completions, prompt-major.
        with_scores (bool): fill ``mean_logprobs``.
        num_return_sequences (int): n, the completions per prompt.
        logprobs (Sequence[float], optional): the B * n mean log-probs; None: all 0.

    Returns:
        GenerationResult: without ``prompt_inputs``.
    """
    ids = torch.zeros(len(texts), 1, dtype=torch.long)
    extra = {}
    if with_scores:
        extra['mean_logprobs'] = (torch.zeros(len(texts)) if logprobs is None
                                  else torch.tensor(list(logprobs), dtype=torch.float32))
    return GenerationResult(texts=list(texts), completion_ids=ids, completion_mask=ids,
                            prompt_inputs=None, num_return_sequences=num_return_sequences,
                            **extra)


def halves_points(gt_bbox) -> np.ndarray:
    """(2, 2) two points inside a box: the centres of its left and right halves."""
    x1, y1, x2, y2 = (float(v) for v in gt_bbox)
    return np.array([[(3 * x1 + x2) / 4, (y1 + y2) / 2], [(x1 + 3 * x2) / 4, (y1 + y2) / 2]])


def oracle_record(info: dict, crop_min_side: int, explorer_size: Tuple[int, int] = EXPLORER_SIZE,
                  region_size: int = REGION_SIZE, points=None) -> dict:
    """What the oracle answers for one data info, JSON-ready.

    Args:
        info (dict): a :class:`~finers_mm.datasets.FineRS4kDataset` data info (``gt_bbox``,
            ``width``, ``height``).
        crop_min_side (int): the chain's smallest crop-window side (ORIGINAL pixels).
        explorer_size (tuple[int, int]): ``(fw, fh)`` of the explorer frame.
        region_size (int): side of the explorer's region (EXPLORER pixels).
        points: (2, 2) the refiner's points in ORIGINAL pixels; None: :func:`halves_points`.

    Returns:
        dict: ``explorer_size``, ``region`` (EXPLORER pixels, centred on the GT box and shifted
        into the frame), ``window`` (ORIGINAL pixels, the detector's window of that region),
        ``gt_bbox`` and ``points`` (ORIGINAL pixels).
    """
    size = (info['width'], info['height'])
    region = region_around_box(original_to_explorer(info['gt_bbox'], size, explorer_size),
                               explorer_size, region_size)
    window = crop_window_from_region(explorer_to_original(region, size, explorer_size), size,
                                     crop_min_side)
    points = halves_points(info['gt_bbox']) if points is None else np.asarray(points)
    return dict(explorer_size=list(explorer_size), region=region.tolist(), window=window.tolist(),
                gt_bbox=[float(v) for v in info['gt_bbox']], points=points.tolist())


def oracle_completion(vlm, record: dict, role: str, image: np.ndarray) -> str:
    """The completion naming ``record``'s answer in ``vlm``'s coordinates of ``image``.

    Args:
        vlm (BaseVLMAdapter): gives the model's coordinate convention (``frame_to_model``).
        record (dict): from :func:`oracle_record`.
        role (str): ``'explorer'`` (the region) or ``'refiner'`` (box and points in the window).
        image (np.ndarray): (h, w, 3) the view the stage reads.

    Returns:
        str: the completion.
    """
    frame = (image.shape[1], image.shape[0])
    if role == 'explorer':
        assert list(frame) == list(record['explorer_size']), frame
        data = dict(bbox=vlm.frame_to_model(np.asarray(record['region']), frame).tolist())
    else:
        window = record['window']
        box = vlm.frame_to_model(window_to_frame(np.asarray(record['gt_bbox']), window, frame),
                                 frame)
        points = vlm.frame_to_model(window_to_frame(np.asarray(record['points']), window, frame),
                                    frame)
        data = dict(bbox=box.tolist(), points_1=points[0].tolist(), points_2=points[1].tolist())
    data['response'] = FOUND_RESPONSE
    return completion(data)


def record_for(infos: Sequence[dict], prompt: str) -> dict:
    """The data info whose question ``prompt`` asks (questions quoted, as the prompts quote them;
    the bundled questions are unique)."""
    matches = [info for info in infos if f"'{info['question']}'" in prompt]
    assert len(matches) == 1, prompt
    return matches[0]


@MODELS.register_module(force=True)
class ScriptedQwen25VLAdapter(Qwen25VLAdapter):
    """The Qwen2.5-VL adapter with a scripted ``generate``: ``script(image, prompt) -> text``.

    ``generate(..., num_return_sequences=n)`` calls the script n times per prompt (rows
    prompt-major, as the real adapter's), so a multi-region explorer can be scripted too. With
    ``with_scores``, each completion's mean log-prob is ``logprob(text)`` (0 when ``logprob`` is
    None). ``seen_sizes`` records the ``(w, h)`` of the images of every call.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.script: Optional[Callable[[np.ndarray, str], str]] = None
        self.logprob: Optional[Callable[[str], float]] = None
        self.seen_sizes = []

    def generate(self, images, prompts, **overrides) -> GenerationResult:
        self.seen_sizes.append([(image.shape[1], image.shape[0]) for image in images])
        n = int(overrides.get('num_return_sequences', 1))
        texts = [self.script(image, prompt) for image, prompt in zip(images, prompts)
                 for _ in range(n)]
        logprobs = None if self.logprob is None else [self.logprob(text) for text in texts]
        return _generation(texts, overrides.get('with_scores', False), n, logprobs)


class OracleScripts:
    """In-process oracle scripts for a detector whose VLMs are :class:`ScriptedQwen25VLAdapter`.

    Args:
        detector (FineRSDetector): gives the VLMs' conventions and ``crop_min_side``.
        dataset (FineRS4kDataset): the questions asked.
        explorer_frame (tuple[int, int]): ``(fw, fh)`` of the explorer frame.
        region_size (int): side of the explorer's region.
    """

    def __init__(self, detector, dataset, explorer_frame=EXPLORER_SIZE,
                 region_size=REGION_SIZE) -> None:
        self.detector, self.dataset = detector, dataset
        self.explorer_frame, self.region_size = explorer_frame, region_size
        self.infos = [dataset.get_data_info(i) for i in range(len(dataset))]

    def record(self, info: dict, points=None) -> dict:
        """:func:`oracle_record` of ``info`` for this detector."""
        return oracle_record(info, self.detector.crop_min_side, self.explorer_frame,
                             self.region_size, points)

    def region(self, info) -> np.ndarray:
        """The explorer-frame region around the GT box."""
        return np.asarray(self.record(info)['region'], np.float32)

    def window(self, info) -> np.ndarray:
        """The crop window of that region, ORIGINAL pixels."""
        return np.asarray(self.record(info)['window'], np.int64)

    def explorer(self, image, prompt) -> str:
        """Explorer script: the region around the GT."""
        record = self.record(record_for(self.infos, prompt))
        return oracle_completion(self.detector.explorer.vlm, record, 'explorer', image)

    def refiner(self, image, prompt, points: Dict[int, np.ndarray]) -> str:
        """Refiner script: the GT box and ``points[ann_index]`` in the oracle's window."""
        info = record_for(self.infos, prompt)
        record = self.record(info, points[info['ann_index']])
        return oracle_completion(self.detector.refiner.vlm, record, 'refiner', image)


@MODELS.register_module(force=True)
class OracleQwen25VLAdapter(Qwen25VLAdapter):
    """The Qwen2.5-VL adapter answering the ground truth of the question its prompt asks, read
    from an oracle JSON file (question -> :func:`oracle_record`); configurable by config alone,
    for runs of the tools in a subprocess.

    Args:
        oracle (str): path of the oracle JSON.
        role (str): ``'explorer'`` or ``'refiner'``.
        **kwargs: the adapter's arguments.
    """

    def __init__(self, oracle: str, role: str, **kwargs) -> None:
        super().__init__(**kwargs)
        with open(oracle, encoding='utf-8') as f:
            self.oracle = json.load(f)
        self.role = role

    def _record(self, prompt: str) -> dict:
        [record] = [r for q, r in self.oracle.items() if "'" + q + "'" in prompt]
        return record

    def _complete(self, image, prompt) -> str:
        return oracle_completion(self, self._record(prompt), self.role, image)

    def generate(self, images, prompts, **overrides) -> GenerationResult:
        return _generation([self._complete(image, prompt) for image, prompt in zip(images, prompts)],
                           overrides.get('with_scores', False))


@MODELS.register_module(force=True)
class BlankingOracleAdapter(OracleQwen25VLAdapter):
    """The oracle, except that it answers no JSON for the questions in ``blank`` (so the chain
    predicts nothing for them: 0 instances)."""

    def __init__(self, blank: Sequence[str] = (), **kwargs) -> None:
        super().__init__(**kwargs)
        self.blank = list(blank)

    def _complete(self, image, prompt) -> str:
        if any("'" + q + "'" in prompt for q in self.blank):
            return THINK + '<answer>I cannot find it.</answer>'
        return super()._complete(image, prompt)


def write_oracle(dataset, path: str, crop_min_side: int,
                 explorer_size: Tuple[int, int] = EXPLORER_SIZE,
                 region_size: int = REGION_SIZE) -> Dict[int, np.ndarray]:
    """Write the oracle JSON of every question of ``dataset`` for :class:`OracleQwen25VLAdapter`.

    Args:
        dataset (FineRS4kDataset): the questions (unique).
        path (str): the JSON file to write.
        crop_min_side, explorer_size, region_size: as :func:`oracle_record`.

    Returns:
        dict[int, np.ndarray]: the crop window of each sample, by ``sample_idx``.
    """
    records, windows = {}, {}
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        record = oracle_record(info, crop_min_side, explorer_size, region_size)
        records[info['question']] = record
        windows[info['sample_idx']] = np.asarray(record['window'])
    assert len(records) == len(dataset), 'the oracle needs unique questions'
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(records, f)
    return windows
