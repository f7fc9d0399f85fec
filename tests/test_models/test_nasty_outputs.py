# Copyright (c) finers_mm contributors. All rights reserved.
"""No model output crashes the chain (issue 12, item 1): a seeded fuzz of nasty completions.

Generated completions (huge, non-finite and other-script numbers, inverted and out-of-image boxes,
unclosed and repeated tags, 100k characters, empty text, JSON of the wrong types) are fed by
scripted adapters (:class:`~finers_mm.testing.scripted.ScriptedQwen25VLAdapter`: the real
Qwen2.5-VL adapter, prompts, parser and frame maps on the tiny models) to the explorer and the
refiner of the default and the multi-hypothesis chains, with the tiny SAM. Every prediction must be
finite and clipped to its image, or empty with an ``invalid_reason``; FineRSMetric gives finite
metrics, ``FineRSInferencer.pred2dict`` strict JSON and FineRSVisualizer a drawing.

The generator is seeded (numpy), so a failure reproduces; the fast test runs a small share of
every kind of completion, the slow one at least 2000 completions per stage and chain.
"""
import itertools
import json
import math
from typing import Callable, Dict, Iterator, List, Optional

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from finers_mm.apis import FineRSInferencer
from finers_mm.evaluation import FineRSMetric
from finers_mm.models.stages import Query
from finers_mm.registry import DATASETS, MODELS
from finers_mm.structures.parsing import MAX_COORDINATE, parse_completion
from finers_mm.testing import config_path
from finers_mm.testing.chains import SAM_CONFIG, chain_config
from finers_mm.testing.scripted import THINK
from finers_mm.visualization import FineRSVisualizer

MULTIHYP_CONFIG = config_path('finers', 'finers_tiny_test_multihyp.py')
#: the tiny Qwen2.5-VL's coordinates span (196, 112) over the explorer frame (1920 x 1080) and
#: (140, 140) over the refiner frame (512 x 512): the scripts aim around them, so boxes fall
#: inside, across and outside the image (checked by test_the_tiny_models_coordinate_extents)
MODEL_EXTENT = {'explorer': (196, 112), 'refiner': (140, 140)}
#: mmengine keeps visualisers by name: one name per instance
_VISUALIZER_NAMES = (f'nasty_outputs_{i}' for i in itertools.count())

# ------------------------------------------------------------------------------------------------
# The generator of nasty completions
# ------------------------------------------------------------------------------------------------

#: number tokens as a model might write them (JSON text): too large, non-finite, other scripts,
#: wrong types, the edges of float32 and of the parser's bound
NASTY_NUMBERS = [
    '1e39', '-1e39', '1e308', '-1e308', '1.7976931348623157e308', '3.4028235e38', '1e999',
    '-1e999', 'NaN', 'Infinity', '-Infinity', '"nan"', '"inf"', '"-Infinity"', '"1e39"',
    '1' + '0' * 400, '9' * 5000, f'{MAX_COORDINATE:.0f}', f'{MAX_COORDINATE + 1:.0f}',
    f'-{MAX_COORDINATE:.1f}', '1e-320', '-0', '0', '0.0', '"١٢٣"', '"１２"', '"۱۲۳.۵"', '"1_000"',
    '"²"', '"½"', '"\\u0661\\u0662"', '"  12  "', '"0x1F"', 'true', 'false', 'null', '"ten"', '[]',
    '{}', '[[1]]', '""',
]
RESPONSES = [
    '"The object is found."', '"No object found"', '"A"', '"B) the red one"', '"A B C D"', '""',
    '"   "', '3', '2.5', 'true', 'null', '["A"]', '{"a": 1}', '"$\\\\frac{1}{2}$ $x"',
    '"\\u0000\\u0007 bell"', '"🚗" ', '"' + 'long answer ' * 900 + '"', '"\\n\\n\\t"',
    '"</answer><answer>"', '"NaN"',
]
FRAGMENTS = [
    '<think>', '</think>', '<answer>', '</answer>', '{', '}', '[', ']', '(', ')', '"', "'", ',',
    ':', '\\', '"bbox"', '"points_1"', '"points_2"', '"response"', 'NaN', '1e39', '-1', '12',
    '3.5', 'true', 'null', '```json', '\n', ' ', 'The object is found.', '🚗', '\x00', '١٢',
]


class NastyCompletions:
    """Seeded generator of nasty completions of one stage.

    Args:
        stage (str): ``'explorer'`` or ``'refiner'``.
        seed (int): numpy seed; the same seed gives the same completions.
    """

    def __init__(self, stage: str, seed: int) -> None:
        self.stage = stage
        self.rng = np.random.default_rng(seed)
        extent = max(MODEL_EXTENT[stage])
        self.low, self.high = -0.3 * extent, 1.3 * extent
        self.kinds: Dict[str, Callable[[], str]] = dict(
            well_formed=self._well_formed, nasty_numbers=self._nasty_numbers,
            geometry=self._geometry, wrong_types=self._wrong_types, tags=self._tags,
            literal=self._literal, fragments=self._fragments, huge=self._huge)

    def __iter__(self) -> Iterator[str]:
        """Completions forever, of every kind in turn (so any prefix covers every kind)."""
        while True:
            for make in self.kinds.values():
                yield make()

    def take(self, count: int) -> List[str]:
        """The next ``count`` completions."""
        iterator = iter(self)
        return [next(iterator) for _ in range(count)]

    # ---------------------------------------------------------------- parts
    def _choice(self, options):
        return options[int(self.rng.integers(len(options)))]

    def _coordinate(self) -> str:
        """A coordinate: mostly a plain number in the frame's span, else a nasty one."""
        if self.rng.random() < 0.3:
            return self._choice(NASTY_NUMBERS)
        value = self.rng.uniform(self.low, self.high)
        return self._choice([f'{value:.0f}', f'{value:.3f}', f'"{value:.1f}"', f'{value:.2e}'])

    def _box(self) -> List[float]:
        """Plain box geometry: inside, across or outside the frame, inverted, degenerate."""
        low, high = self.low, self.high
        x1, y1 = self.rng.uniform(low, high, 2)
        w, h = self.rng.uniform(-0.05, 0.5, 2) * self.high
        kind = self._choice(['box', 'inverted', 'zero', 'outside', 'absent', 'whole', 'tiny'])
        if kind == 'inverted':
            return [x1, y1, x1 - abs(w) - 1, y1 - abs(h) - 1]
        if kind == 'zero':
            return [x1, y1, x1, y1 + abs(h)]
        if kind == 'outside':
            far = self._choice([-1, 1]) * self.rng.uniform(5 * high, MAX_COORDINATE / 2)
            return [far, far, far + abs(w) + 1, far + abs(h) + 1]
        if kind == 'absent':
            return [0, 0, 0, 0]
        if kind == 'whole':
            return [-MAX_COORDINATE, -MAX_COORDINATE, MAX_COORDINATE, MAX_COORDINATE]
        if kind == 'tiny':
            return [x1, y1, x1 + 1e-3, y1 + 1e-3]
        return [x1, y1, x1 + abs(w) + 0.5, y1 + abs(h) + 0.5]

    def _answer(self, bbox: str, points=None, response=None) -> str:
        """The JSON text of an answer with the given field texts (None: a random valid one)."""
        fields = [('bbox', bbox)]
        if self.stage == 'refiner':
            for key in ('points_1', 'points_2'):
                fields.append((key, points if points is not None else
                               f'[{self._coordinate()}, {self._coordinate()}]'))
        fields.append(('response', response if response is not None else
                       self._choice(RESPONSES)))
        if self.rng.random() < 0.2:  # a key dropped, or given twice
            index = int(self.rng.integers(len(fields)))
            fields = (fields[:index] + fields[index + 1:] if self.rng.random() < 0.5
                      else fields + [fields[index]])
        return '{' + ', '.join(f'"{key}": {value}' for key, value in fields) + '}'

    @staticmethod
    def _wrap(answer: str) -> str:
        return f'{THINK}<answer>{answer}</answer>'

    # ---------------------------------------------------------------- kinds
    def _well_formed(self) -> str:
        box = json.dumps([float(v) for v in self._box()])
        return self._wrap(self._answer(box, response='"The object is found."'))

    def _nasty_numbers(self) -> str:
        box = '[' + ', '.join(self._coordinate() for _ in range(4)) + ']'
        return self._wrap(self._answer(box))

    def _geometry(self) -> str:
        box = self._box()
        shape = self._choice(['flat', 'pairs', 'nested', 'strings'])
        if shape == 'pairs':
            text = json.dumps([box[:2], box[2:]])
        elif shape == 'nested':
            text = json.dumps([box])
        elif shape == 'strings':
            text = json.dumps([f'{v}' for v in box])
        else:
            text = json.dumps(box)
        return self._wrap(self._answer(text))

    def _wrong_types(self) -> str:
        bbox = self._choice(['"1, 2, 3, 4"', '{"x1": 1, "y1": 2}', '12', 'true', 'null', '[]',
                             '[1, 2, 3]', '[1, 2, 3, 4, 5]', '[[1, 2], [3, 4], [5, 6]]',
                             '[[[1, 2]], [3, 4]]', '[true, false, true, false]',
                             '["a", "b", "c", "d"]', '[{}, {}, {}, {}]'])
        points = self._choice(['"30, 40"', '[1]', '[1, 2, 3]', '[[1, 2], [3, 4]]', 'null', '{}',
                               '[true, 4]'])
        wrapper = self._choice(['object', 'list', 'string', 'number'])
        answer = self._answer(bbox, points)
        if wrapper == 'list':
            answer = f'[{answer}, {answer}]'
        elif wrapper == 'string':
            answer = json.dumps(answer)
        elif wrapper == 'number':
            answer = '42'
        return self._wrap(answer)

    def _tags(self) -> str:
        answer = self._answer(json.dumps([float(v) for v in self._box()]))
        layouts = [
            '', '   \n\t', answer, f'<answer>{answer}', f'{THINK}<answer>{answer}',
            f'<think>{answer}', f'{THINK}{answer}</answer>', f'<answer><answer>{answer}</answer>',
            f'{THINK}<answer>{answer}</answer>' * 3, f'<answer>{answer}</answer><answer>x',
            f'<ANSWER>{answer}</ANSWER>', f'{THINK}<answer>{answer}</answer><|im_end|>',
            f'<think><answer>{answer}</answer></think>', f'</answer>{answer}<answer>',
            f'{THINK}<answer></answer>', f'{THINK}<answer>{{}}</answer>',
            f'{THINK}<answer>```json\n{answer}\n```</answer>',
        ]
        return self._choice(layouts)

    def _literal(self) -> str:
        """Python-literal answers (single quotes, tuples, trailing commas) the parser reads."""
        box = tuple(float(v) for v in self._box())
        data = dict(bbox=box, response=self._choice(['A', 'The object is found.', '']))
        if self.stage == 'refiner':
            data.update(points_1=tuple(box[:2]), points_2=(box[2], box[3]))
        text = repr(data)
        return self._wrap(text[:-1] + ',}' if self.rng.random() < 0.5 else text)

    def _fragments(self) -> str:
        count = int(self.rng.integers(0, 40))
        return ''.join(self._choice(FRAGMENTS) for _ in range(count))

    def _huge(self) -> str:
        """100k characters, one in eight huge completions (the rest a short random one)."""
        if self.rng.random() < 0.875:
            return self._nasty_numbers()
        answer = self._answer(json.dumps([float(v) for v in self._box()]))
        pad = self._choice(['{', '{"', '[', '{[', ' ', '</think><answer></answer>x', 'a', '1,',
                            '<answer>', '🚗'])
        pad = pad * (100_000 // len(pad))
        return self._choice([
            f'<think>{pad}</think><answer>{answer}</answer>', f'{THINK}<answer>{pad}</answer>',
            f'{THINK}<answer>{answer}{pad}</answer>', f'{THINK}<answer>{pad}{answer}</answer>',
            pad, f'<answer>{pad}'])


def test_generator_is_seeded_and_covers_every_kind():
    first = NastyCompletions('refiner', seed=3).take(400)
    assert first == NastyCompletions('refiner', seed=3).take(400)
    assert first != NastyCompletions('refiner', seed=4).take(400)
    reasons = {parse_completion(text, 'refiner').invalid for text in first}
    assert {None, 'no_answer_tag', 'no_json', 'bad_json', 'bad_bbox', 'bad_points',
            'non_finite', 'out_of_range', 'bad_response', 'empty_response'} <= reasons
    assert any(reason.startswith('missing_key:') for reason in reasons if reason)
    assert max(len(text) for text in first) >= 100_000


# ------------------------------------------------------------------------------------------------
# The chains
# ------------------------------------------------------------------------------------------------

class ScriptedChain:
    """A tiny chain whose explorer and refiner answer completions from two iterators.

    Args:
        config_file (str): :data:`SAM_CONFIG` or :data:`MULTIHYP_CONFIG`.
        tiny_models (dict): the session's tiny models.
    """

    def __init__(self, config_file: str, tiny_models: dict) -> None:
        init_default_scope('finers_mm')
        cfg = chain_config(config_file, tiny_models)
        cfg.model.explorer.vlm.type = 'ScriptedQwen25VLAdapter'
        cfg.model.refiner.vlm.type = 'ScriptedQwen25VLAdapter'
        torch.manual_seed(0)
        self.detector = MODELS.build(cfg.model).eval()
        dataset = DATASETS.build(cfg.test_dataloader.dataset)
        self.items = [dataset[i] for i in range(len(dataset))]  # decoded once, copied per run
        self.fed = {'explorer': 0, 'refiner': 0}

    def run(self, explorer: Iterator[str], refiner: Iterator[str], num_samples: int,
            batch_size: int = 48, logprobs: Optional[Iterator[float]] = None) -> List:
        """Predict ``num_samples`` samples (the bundled ones in turn), ``batch_size`` a step.

        Args:
            explorer (Iterator[str]): the explorer's completions, one per call of its script.
            refiner (Iterator[str]): the refiner's completions.
            num_samples (int): samples to predict.
            batch_size (int): samples per ``test_step``.
            logprobs (Iterator[float], optional): each completion's mean log-prob when a stage
                asks for scores; None: 0.

        Returns:
            list[DetDataSample]: the predictions, with their GT.
        """
        for stage, texts in (('explorer', explorer), ('refiner', refiner)):
            vlm = getattr(self.detector, stage).vlm
            vlm.script = self._feeder(stage, texts)
            vlm.logprob = None if logprobs is None else (lambda text: next(logprobs))
        results = []
        with torch.no_grad():
            for start in range(0, num_samples, batch_size):
                items = [self.items[i % len(self.items)]
                         for i in range(start, min(start + batch_size, num_samples))]
                batch = pseudo_collate([dict(inputs=item['inputs'],
                                             data_samples=item['data_samples'].clone())
                                        for item in items])
                results += self.detector.test_step(batch)
        return results

    def _feeder(self, stage: str, texts: Iterator[str]):
        def script(image, prompt):
            self.fed[stage] += 1
            return next(texts)
        return script


@pytest.fixture(scope='module')
def chains(tiny_models):
    return {'default': ScriptedChain(SAM_CONFIG, tiny_models),
            'multihyp': ScriptedChain(MULTIHYP_CONFIG, tiny_models)}


def _finite(value) -> bool:
    return bool(np.isfinite(np.asarray(value, np.float64)).all())


def _assert_prediction_is_sound(result) -> None:
    """Finite and clipped to the image, or empty with a reason (or the refiner's "absent")."""
    height, width = result.ori_shape[:2]
    pred = result.pred_instances
    for key in ('bboxes', 'scores', 'points'):
        assert _finite(pred[key].numpy()), (key, pred[key])
    assert pred.masks.shape == (len(pred), height, width)
    if len(pred):
        x1, y1, x2, y2 = pred.bboxes[0].tolist()
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height, pred.bboxes
    for key in ('pred_region', 'pred_window'):
        value = result.get(key)
        assert value is None or (np.shape(value) == (4,) and _finite(value)), (key, value)
    window = result.get('pred_window')
    if window is not None:
        assert 0 <= window[0] < window[2] <= width and 0 <= window[1] < window[3] <= height
    reason = result.invalid_reason
    assert reason is None or reason.split(':', 1)[0] in ('explorer', 'refiner'), reason
    if not len(pred) and reason is None:  # nothing found without a reason: "No object found"
        refined = parse_completion(result.refiner_completion, 'refiner')
        assert refined.bbox == (0.0, 0.0, 0.0, 0.0), result.refiner_completion[:200]
    if 'pred_score' in result:
        assert result.pred_score is None or _finite(result.pred_score)
        for record in result.pred_hypotheses:
            for key in ('region', 'window', 'first_window', 'box', 'mask_score', 'score'):
                assert record[key] is None or _finite(record[key]), (key, record)
    json.dumps(FineRSInferencer.pred2dict(result), allow_nan=False)


def _assert_metrics_are_finite(results) -> dict:
    metric = FineRSMetric()
    metric.process(None, results)
    metrics = metric.compute_metrics(metric.results)
    assert metrics['num_samples'] == len(results)
    assert all(math.isfinite(value) for value in metrics.values()), metrics
    return metrics


# ------------------------------------------------------------------------------------------------
# The cases, one by one
# ------------------------------------------------------------------------------------------------

#: a region of about 256 px in the middle of the explorer frame, in the tiny model's coordinates
GOOD_EXPLORER = f'{THINK}<answer>{{"bbox": [85, 43, 111, 69], "response": "A"}}</answer>'


def _refiner_answer(bbox, points=((30, 40), (50, 50))) -> str:
    data = dict(bbox=bbox, points_1=points[0], points_2=points[1],
                response='The object is found.')
    return f'{THINK}<answer>{json.dumps(data)}</answer>'


def _repeat(text: str) -> Iterator[str]:
    return iter(lambda: text, None)


@pytest.mark.parametrize('name', ['default', 'multihyp'])
@pytest.mark.parametrize('huge', ['1e39', '1e308'])
def test_a_coordinate_beyond_float32_is_out_of_range_not_a_crash(chains, name, huge):
    """Issue 12, item 1: it crashed test_step (explorer; the refiner with multi-hypothesis) or
    gave a box [0, 0, inf, inf] without a reason (the refiner in the default chain)."""
    chain = chains[name]
    explorer = f'{THINK}<answer>{{"bbox": [0, 0, {huge}, {huge}], "response": "A"}}</answer>'
    refiner = (f'{THINK}<answer>{{"bbox": [0, 0, {huge}, {huge}], "points_1": [30, 40], '
               '"points_2": [50, 50], "response": "The object is found."}</answer>')
    [from_explorer] = chain.run(_repeat(explorer), _repeat(_refiner_answer([20, 30, 60, 70])), 1)
    [from_refiner] = chain.run(_repeat(GOOD_EXPLORER), _repeat(refiner), 1)
    assert from_explorer.invalid_reason == 'explorer:out_of_range'
    if name == 'default':
        assert len(from_explorer.pred_instances) == 0 and from_explorer.pred_region is None
    else:  # the tiled fallback refines the tiles instead, the explorer's failure still reported
        assert from_explorer.fallback == 'tiled'
    assert from_refiner.invalid_reason == 'refiner:out_of_range'
    assert len(from_refiner.pred_instances) == 0
    for result in (from_explorer, from_refiner):
        _assert_prediction_is_sound(result)


def test_the_refiner_box_is_clipped_to_its_crop(chains):
    """A box across the crop's edge is cut to the crop (the window, ORIGINAL pixels); one with
    nothing inside it is no box ('bbox_outside_frame'), not the "No object found" answer."""
    chain = chains['default']
    across = _refiner_answer([-10, 30, 60, 500])
    [result] = chain.run(_repeat(GOOD_EXPLORER), _repeat(across), 1)
    window = result.pred_window
    x1, y1, x2, y2 = result.pred_instances.bboxes[0].tolist()
    assert result.invalid_reason is None and len(result.pred_instances) == 1
    assert x1 == window[0] and y2 == window[3]  # cut at the crop's left and bottom edges
    assert window[0] < x2 < window[2] and window[1] < y1 < y2
    for outside in ([150, 150, 200, 200], [-30, -30, -1, -1]):
        [result] = chain.run(_repeat(GOOD_EXPLORER), _repeat(_refiner_answer(outside)), 1)
        assert result.invalid_reason == 'refiner:bbox_outside_frame'
        assert len(result.pred_instances) == 0
    # the box is the first key: its problem is reported before a later field's
    no_response = _refiner_answer([150, 150, 200, 200]).replace('The object is found.', '')
    [result] = chain.run(_repeat(GOOD_EXPLORER), _repeat(no_response), 1)
    assert result.invalid_reason == 'refiner:bbox_outside_frame'


def test_a_nan_score_ranks_an_explorer_hypothesis_last(chains):
    explorer = chains['multihyp'].detector.explorer
    regions = iter([f'{THINK}<answer>{{"bbox": [{x}, 40, {x + 26}, 66], "response": "A"}}'
                    '</answer>' for x in (10, 50, 90, 130)])
    scores = {'10': float('nan'), '50': -1.0, '90': -0.5, '130': float('-inf')}
    explorer.vlm.script = lambda image, prompt: next(regions)
    explorer.vlm.logprob = lambda text: scores[text.split('[')[1].split(',')[0]]
    outputs = explorer.explore([np.zeros((1080, 1920, 3), np.uint8)], [(1920, 1080)],
                               [Query('Where is it?', 'segmentation')], num_regions=4)
    assert [round(float(out.region[0]) * 196 / 1920) for out in outputs] == [90, 50, 130, 10]


def test_the_tiny_models_coordinate_extents(chains):
    detector = chains['default'].detector
    assert tuple(detector.explorer.vlm.model_coord_size((1920, 1080))) == MODEL_EXTENT['explorer']
    assert tuple(detector.refiner.vlm.model_coord_size((512, 512))) == MODEL_EXTENT['refiner']


# ------------------------------------------------------------------------------------------------
# The fuzz
# ------------------------------------------------------------------------------------------------

def _fuzz(chain: ScriptedChain, per_stage: int, seed: int, logprobs: bool = False) -> List:
    """At least ``per_stage`` nasty completions for each stage, each with a good partner stage
    (the explorer answering a region in the image, so the refiner runs), then both nasty
    together; every prediction checked (:func:`_assert_prediction_is_sound`).

    Args:
        chain (ScriptedChain): the chain.
        per_stage (int): nasty completions fed to each stage at least.
        seed (int): seeds the completions and the log-probs.
        logprobs (bool): score completions with nasty mean log-probs (NaN, -inf, > 0) too.

    Returns:
        list[DetDataSample]: every prediction.
    """
    rng = np.random.default_rng(seed)
    good_refiner = _refiner_answer([20, 30, 60, 70])
    scores = (iter(lambda: float(rng.choice([0.0, -0.3, -7.0, -np.inf, np.nan, 1e308])), None)
              if logprobs else None)
    fed_before = dict(chain.fed)
    results = []
    k = chain.detector.multi_hypothesis.num_regions if chain.detector.multi_hypothesis else 1
    for stage in ('explorer', 'refiner'):
        nasty = iter(NastyCompletions(stage, seed))
        explorer = nasty if stage == 'explorer' else _repeat(GOOD_EXPLORER)
        refiner = nasty if stage == 'refiner' else _repeat(good_refiner)
        fed = chain.fed[stage]
        while chain.fed[stage] - fed < per_stage:
            needed = per_stage - (chain.fed[stage] - fed)
            results += chain.run(explorer, refiner, max(1, -(-needed // k)), logprobs=scores)
    mixed = chain.run(iter(NastyCompletions('explorer', seed + 1)),
                      iter(NastyCompletions('refiner', seed + 1)), max(1, per_stage // (4 * k)),
                      logprobs=scores)
    for result in results + mixed:
        _assert_prediction_is_sound(result)
    assert chain.fed['explorer'] - fed_before['explorer'] >= per_stage
    assert chain.fed['refiner'] - fed_before['refiner'] >= per_stage
    return results + mixed


def _draw_some(results, count: int, seed: int) -> None:
    """Draw ``count`` predictions: one of each (invalid reason, found) first, then random ones."""
    visualizer = FineRSVisualizer(name=next(_VISUALIZER_NAMES), max_width=480,
                                  panel_height=200, min_width=240)
    first = {}
    for index, result in enumerate(results):
        first.setdefault((result.invalid_reason, len(result.pred_instances)), index)
    rng = np.random.default_rng(seed)
    chosen = list(first.values()) + list(rng.choice(len(results), count, replace=False))
    for index in chosen[:count]:
        result = results[index]
        height, width = result.ori_shape[:2]
        image = np.full((height, width, 3), 90, np.uint8)
        drawn = visualizer.draw_sample(image, result)
        assert drawn.ndim == 3 and drawn.shape[1] <= 480


@pytest.mark.parametrize('name', ['default', 'multihyp'])
def test_nasty_completions_never_crash_the_chain(chains, name):
    """Fast: 96 nasty completions per stage (every kind, 100k-character ones included)."""
    results = _fuzz(chains[name], per_stage=96, seed=0, logprobs=name == 'multihyp')
    metrics = _assert_metrics_are_finite(results)
    assert metrics['invalid_rate'] > 0
    _draw_some(results, count=6, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize('name', ['default', 'multihyp'])
def test_thousands_of_nasty_completions_never_crash_the_chain(chains, name):
    """The issue's check: >= 2000 nasty completions per stage through each chain."""
    results = _fuzz(chains[name], per_stage=2000, seed=12, logprobs=name == 'multihyp')
    _assert_metrics_are_finite(results)
    _draw_some(results, count=60, seed=12)
