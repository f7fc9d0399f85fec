# Copyright (c) finers_mm contributors. All rights reserved.
"""projects/mmdet_refiner: an mmdet detector as the FineRS refiner.

- a scripted detector (finds a pure-red square in its input) pins the frame chain down exactly:
  ORIGINAL -> crop -> mmdet test pipeline (resize, BGR) -> detector -> rescale -> ORIGINAL;
- real tiny random RTMDet and Faster R-CNN give the box mmdet's own ``inference_detector`` gives on
  each crop, shifted by the window;
- the README commands run as written (tiny models, project config through ``tools/test.py``), and
  the project config with an oracle explorer runs the detector on every sample end to end;
- bad configs fail at build time, naming the config key and the path.
"""
import json
import math
import os
import os.path as osp
import pickle
import re
import shlex
import subprocess
import sys
import textwrap

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from mmdet.models.detectors import BaseDetector
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from finers_mm.models.stages import Query
from finers_mm.registry import DATASETS, MODELS
from finers_mm.structures import (crop_window_from_region, explorer_to_original,
                                  original_to_explorer, region_around_box)
from finers_mm.testing import REPO_ROOT

if REPO_ROOT not in sys.path:  # tools/*.py put the repo root on sys.path; so does this test
    sys.path.insert(0, REPO_ROOT)

from projects.mmdet_refiner.mmdet_refiner import MMDetRefiner, box_points, log_score  # noqa: E402

PROJECT = osp.join(REPO_ROOT, 'projects', 'mmdet_refiner')
PROJECT_CONFIG = osp.join(PROJECT, 'configs', 'finers_tiny_mmdet_refiner.py')
GDINO_PROJECT_CONFIG = osp.join(PROJECT, 'configs', 'finers_tiny_grounding_dino_refiner.py')
GDINO_CONFIG = osp.join(PROJECT, 'configs', 'grounding-dino_tiny.py')
RTMDET_CONFIG = osp.join(PROJECT, 'configs', 'rtmdet_tiny_1cls.py')
FRCNN_CONFIG = osp.join(PROJECT, 'configs', 'faster-rcnn_tiny_1cls.py')
BUILD_TOOL = osp.join(PROJECT, 'tools', 'build_tiny_detector.py')
ENV = dict(os.environ, OMP_NUM_THREADS='1')
RED = np.array([255, 0, 0], np.uint8)


# ------------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------------

def _build_detector_checkpoint(config: str, out: str, *extra) -> str:
    import importlib.util
    spec = importlib.util.spec_from_file_location('_build_tiny_detector', BUILD_TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool.main([config, out, *extra])


@pytest.fixture(scope='module')
def checkpoints(tiny_models):
    """The tiny random RTMDet and Faster R-CNN checkpoints, next to the other tiny models."""
    init_default_scope('finers_mm')
    root = osp.join(osp.dirname(tiny_models['sam']), 'mmdet_refiner')
    return dict(
        rtmdet=_build_detector_checkpoint(RTMDET_CONFIG, osp.join(root, 'rtmdet_tiny_1cls.pth')),
        frcnn=_build_detector_checkpoint(FRCNN_CONFIG, osp.join(root, 'faster-rcnn_tiny_1cls.pth')))


@pytest.fixture(scope='module')
def grounding_dino(tiny_models):
    """The tiny random Grounding DINO checkpoint and its tiny local BERT."""
    init_default_scope('finers_mm')
    root = osp.join(osp.dirname(tiny_models['sam']), 'mmdet_refiner')
    bert = osp.join(root, 'bert_tiny')
    checkpoint = _build_detector_checkpoint(GDINO_CONFIG, osp.join(root, 'grounding-dino_tiny.pth'),
                                            '--text-encoder', bert)
    return dict(checkpoint=checkpoint, bert=bert)


@MODELS.register_module(force=True)
class RedSquareDetector(BaseDetector):
    """A scripted mmdet detector: the pure-red pixels of its (BGR) input as one box, score 0.9,
    plus a decoy box over the whole input at ``decoy_score``; boxes rescaled like mmdet's."""

    def __init__(self, decoy_score=0.1, red_label=0, decoy_label=0, data_preprocessor=None,
                 init_cfg=None):
        super().__init__(
            data_preprocessor=data_preprocessor or dict(
                type='DetDataPreprocessor', mean=[0, 0, 0], std=[1, 1, 1], bgr_to_rgb=False),
            init_cfg=init_cfg)
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.decoy_score, self.red_label, self.decoy_label = decoy_score, red_label, decoy_label
        self.calls = []

    def predict(self, batch_inputs, batch_data_samples, rescale=True):
        self.calls.append(dict(shape=tuple(batch_inputs.shape),
                               texts=[s.get('text', None) for s in batch_data_samples],
                               custom_entities=[s.get('custom_entities', None)
                                                for s in batch_data_samples]))
        for image, sample in zip(batch_inputs, batch_data_samples):
            scale = torch.tensor(sample.scale_factor, dtype=torch.float32).repeat(2)
            height, width = sample.img_shape
            boxes = [torch.tensor([0.0, 0.0, width, height])]
            scores, labels = [self.decoy_score], [self.decoy_label]
            red = (image[2] > 200) & (image[1] < 50) & (image[0] < 50)  # B, G, R channels
            if red.any():
                ys, xs = torch.nonzero(red, as_tuple=True)
                boxes.append(torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float())
                scores.append(0.9)
                labels.append(self.red_label)
            instances = InstanceData()
            instances.bboxes = torch.stack(boxes) / (scale if rescale else 1.0)
            instances.scores = torch.tensor(scores)
            instances.labels = torch.tensor(labels)
            sample.pred_instances = instances
        return batch_data_samples

    def _forward(self, batch_inputs, batch_data_samples=None):
        raise NotImplementedError

    def loss(self, batch_inputs, batch_data_samples):
        raise NotImplementedError

    def extract_feat(self, batch_inputs):
        raise NotImplementedError


def _scene():
    """Two noisy originals, a red square in each, and three windows (the third without red)."""
    rng = np.random.default_rng(0)
    first = rng.integers(0, 100, (600, 800, 3), dtype=np.uint8)
    second = rng.integers(0, 100, (700, 900, 3), dtype=np.uint8)
    first[100:120, 140:180] = RED  # wide: [140, 100, 180, 120]
    second[200:260, 300:320] = RED  # tall: [300, 200, 320, 260]
    images = [first, second, first]
    windows = [np.array([100, 40, 356, 296]), np.array([200, 0, 712, 512]),
               np.array([400, 300, 656, 556])]
    boxes = [np.array([140, 100, 180, 120.]), np.array([300, 200, 320, 260.]), None]
    return images, windows, boxes


def _queries(*questions):
    return [Query(question=q, question_type='segmentation') for q in questions]


# ------------------------------------------------------------------------------------------------
# refine(): frames, selection, points
# ------------------------------------------------------------------------------------------------

def test_box_points_lie_along_the_longer_axis():
    np.testing.assert_allclose(box_points([10, 20, 50, 30]), [[20, 25], [40, 25]])
    np.testing.assert_allclose(box_points([10, 20, 20, 60]), [[15, 30], [15, 50]])
    np.testing.assert_allclose(box_points([0, 0, 8, 8], (0.5, 0.5)), [[4, 4], [4, 4]])


@pytest.mark.parametrize('input_size, batch_size, calls', [
    ((128, 128), None, [(3, 3, 128, 128)]),  # all crops resized and batched in one forward
    ((128, 128), 2, [(2, 3, 128, 128), (1, 3, 128, 128)]),
    (None, None, [(3, 3, 512, 512)]),  # full resolution, padded to the largest crop
])
def test_refine_maps_the_crop_box_back_to_original_pixels(input_size, batch_size, calls):
    init_default_scope('finers_mm')
    refiner = MMDetRefiner(detector=dict(type='RedSquareDetector'), input_size=input_size,
                           batch_size=batch_size)
    images, windows, boxes = _scene()
    outputs = refiner.refine(images, windows, _queries('a', 'b', 'c'))

    assert [call['shape'] for call in refiner.detector.calls] == calls
    for output, box in zip(outputs[:2], boxes[:2]):
        assert output.invalid is None and output.answer == ''
        np.testing.assert_allclose(output.box, box, atol=1e-3)  # the red square, ORIGINAL px
        np.testing.assert_allclose(output.points, box_points(box), atol=1e-3)
        record = json.loads(output.completion)
        assert record['detector'] == 'RedSquareDetector' and record['score'] == pytest.approx(0.9)
        # RefinerOutput.score: the log of the CHOSEN detection's score (0.9), not the decoy's
        assert output.score == pytest.approx(np.log(0.9))
    np.testing.assert_allclose(outputs[0].points, [[150, 110], [170, 110]], atol=1e-3)
    np.testing.assert_allclose(outputs[1].points, [[310, 215], [310, 245]], atol=1e-3)
    # no red in the third window: the decoy, i.e. the whole crop, in ORIGINAL pixels
    np.testing.assert_allclose(outputs[2].box, windows[2], atol=1e-3)
    assert outputs[2].score == pytest.approx(np.log(0.1))


def test_score_is_the_log_of_the_chosen_detections_score():
    init_default_scope('finers_mm')
    images, windows, boxes = _scene()
    # the decoy (whole crop) outscores the red square: the decoy is chosen, with ITS score
    refiner = MMDetRefiner(detector=dict(type='RedSquareDetector', decoy_score=0.95),
                           input_size=(128, 128))
    [output] = refiner.refine(images[:1], windows[:1], _queries('a'))
    np.testing.assert_allclose(output.box, windows[0], atol=1e-3)
    assert output.score == pytest.approx(np.log(0.95))
    assert np.exp(output.score) == pytest.approx(json.loads(output.completion)['score'])
    # class_name selection: the named class's detection is chosen, its score is reported
    refiner = MMDetRefiner(
        detector=dict(type='RedSquareDetector', decoy_score=0.3, red_label=1, decoy_label=0),
        input_size=(128, 128), selection='class_name', class_names=('car', 'cat'))
    car, cat = refiner.refine([images[0]] * 2, [windows[0]] * 2, _queries('the car', 'the cat'))
    assert car.score == pytest.approx(np.log(0.3)) and cat.score == pytest.approx(np.log(0.9))
    # a zero score stays finite; no detection: no score
    assert log_score(0.0) == pytest.approx(np.log(1e-12)) and log_score(1.0) == 0.0
    refiner = MMDetRefiner(detector=dict(type='RedSquareDetector'), input_size=(128, 128),
                           score_thr=0.5)
    [output] = refiner.refine(images[2:], windows[2:], _queries('c'))
    assert output.invalid == 'no_detection' and output.score is None


def test_no_detection_above_the_threshold_gives_no_box():
    init_default_scope('finers_mm')
    refiner = MMDetRefiner(detector=dict(type='RedSquareDetector'), input_size=(128, 128),
                           score_thr=0.5)
    images, windows, boxes = _scene()
    outputs = refiner.refine(images, windows, _queries('a', 'b', 'c'))
    np.testing.assert_allclose(outputs[0].box, boxes[0], atol=1e-3)
    assert outputs[2].box is None and outputs[2].points is None
    assert outputs[2].invalid == 'no_detection' and not outputs[2].absent
    assert json.loads(outputs[2].completion)['num_candidates'] == 0
    assert refiner.refine([], [], []) == []


def test_class_name_selection_follows_the_question():
    init_default_scope('finers_mm')
    refiner = MMDetRefiner(  # red square: 'cat' at 0.9; decoy (whole crop): 'car' at 0.3
        detector=dict(type='RedSquareDetector', decoy_score=0.3, red_label=1, decoy_label=0),
        input_size=(128, 128), selection='class_name', class_names=('car', 'cat'))
    images, windows, boxes = _scene()
    image, window = images[0], windows[0]
    cases = {'Where is the car?': window, 'Segment the two CARS.': window,
             'Where is the cat?': boxes[0], 'Where is the tree?': boxes[0],  # no class: best
             'Where is the cartoon?': boxes[0]}  # "car" inside a word is no match
    outputs = refiner.refine([image] * len(cases), [window] * len(cases), _queries(*cases))
    for (question, expected), output in zip(cases.items(), outputs):
        np.testing.assert_allclose(output.box, expected, atol=1e-3, err_msg=question)
    assert json.loads(outputs[0].completion)['label_name'] == 'car'
    # the question names a class that was not detected: nothing
    [output] = refiner.refine([images[2]], [windows[2]], _queries('the cat'))
    assert output.invalid == 'no_detection'


def test_text_selection_passes_the_question_as_one_grounding_entity():
    init_default_scope('finers_mm')
    refiner = MMDetRefiner(detector=dict(type='RedSquareDetector'), input_size=(128, 128),
                           selection='text', text_prompt='{question}')
    images, windows, _ = _scene()
    refiner.refine(images[:2], windows[:2], _queries('the red square', 'the tall one'))
    [call] = refiner.detector.calls
    assert call['texts'] == [('the red square', ), ('the tall one', )]
    assert call['custom_entities'] == [True, True]


def test_mask_points_lie_inside_the_mask_of_the_chosen_box(tiny_models):
    init_default_scope('finers_mm')
    root = osp.dirname(tiny_models['sam'])
    head = dict(type='SAMMaskHead', model_type='tiny', config=osp.join(root, 'sam_tiny.json'),
                checkpoint=tiny_models['sam'])
    refiner = MMDetRefiner(detector=dict(type='RedSquareDetector'), input_size=(128, 128),
                           points='mask', point_mask_head=head)
    images, windows, boxes = _scene()
    outputs = refiner.refine(images[:2], windows[:2], _queries('a', 'b'))
    crops = [image[w[1]:w[3], w[0]:w[2]] for image, w in zip(images[:2], windows[:2])]
    crop_boxes = np.stack([box - np.tile(w[:2], 2) for box, w in zip(boxes[:2], windows[:2])])
    masks = MODELS.build(head).predict(crops, crop_boxes).masks
    assert any(mask.any() for mask in masks)  # the random tiny SAM (seed 0) segments something
    for output, mask, window, box in zip(outputs, masks, windows, boxes):
        np.testing.assert_allclose(output.box, box, atol=1e-3)
        if not mask.any():  # the random SAM found nothing: the box points stay
            np.testing.assert_allclose(output.points, box_points(box), atol=1e-3)
            continue
        for x, y in output.points - window[:2]:
            assert mask[int(np.floor(y)), int(np.floor(x))]
    with pytest.raises(ValueError, match=r"model\.refiner\.point_mask_head"):
        MMDetRefiner(detector=dict(type='RedSquareDetector'), points='mask')


@pytest.mark.parametrize('name, config', [('rtmdet', RTMDET_CONFIG), ('frcnn', FRCNN_CONFIG)])
def test_tiny_mmdet_detectors_agree_with_inference_detector_per_crop(checkpoints, name, config):
    from mmdet.apis import inference_detector
    init_default_scope('finers_mm')
    refiner = MMDetRefiner(detector=config, checkpoint=checkpoints[name])
    refiner.train()
    assert not refiner.detector.training
    assert not any(p.requires_grad for p in refiner.parameters())
    assert refiner.class_names == ('object', )  # from the checkpoint's meta
    before = {k: v.clone() for k, v in refiner.state_dict().items()}
    refiner.init_weights()  # must not overwrite the checkpoint's weights
    assert all(torch.equal(before[k], v) for k, v in refiner.state_dict().items())

    images, _, _ = _scene()
    windows = [np.array([0, 0, 512, 512]), np.array([288, 88, 800, 600]),
               np.array([100, 50, 612, 562])]  # same size: batching pads nothing
    outputs = refiner.refine(images, windows, _queries('a', 'b', 'c'))
    for image, window, output in zip(images, windows, outputs):
        x1, y1, x2, y2 = window
        crop = np.ascontiguousarray(image[y1:y2, x1:x2, ::-1])  # mmdet's BGR
        alone = inference_detector(refiner.detector, crop).pred_instances
        assert len(alone) > 0 and output.invalid is None  # score_thr 0: always boxes
        best = alone.bboxes[alone.scores.argmax()].numpy().clip(0, [x2 - x1, y2 - y1] * 2)
        np.testing.assert_allclose(output.box, best + np.tile(window[:2], 2), atol=1e-2)
        assert x1 <= output.box[0] <= output.box[2] <= x2
        assert y1 <= output.box[1] <= output.box[3] <= y2
        np.testing.assert_allclose(output.points, box_points(output.box), atol=1e-4)
        assert json.loads(output.completion)['label_name'] == 'object'
        assert output.score == pytest.approx(math.log(float(alone.scores.max())), abs=1e-4)


def test_tiny_grounding_dino_is_grounded_on_the_question(grounding_dino):
    """The Grounding DINO project config's refiner: the question is the one grounded entity, and a
    crop refined alone gives mmdet's inference_detector(text_prompt=(question,)) top box."""
    from mmdet.apis import inference_detector
    init_default_scope('finers_mm')
    cfg = Config.fromfile(GDINO_PROJECT_CONFIG).model.refiner
    cfg.update(detector=GDINO_CONFIG, checkpoint=grounding_dino['checkpoint'],
               detector_overrides={'language_model.name': grounding_dino['bert']})
    refiner = MODELS.build(cfg)
    assert refiner.selection == 'text' and not refiner.detector.training

    images, _, _ = _scene()
    windows = [np.array([0, 0, 512, 512]), np.array([288, 88, 800, 600])]
    questions = ['What color is the triangle in the top-center part of the image?',
                 'Please segment the orange object.']
    batched = refiner.refine(images[:2], windows, _queries(*questions))
    for image, window, question, together in zip(images, windows, questions, batched):
        [alone] = refiner.refine([image], [window], _queries(question))
        for output in (alone, together):
            assert output.invalid is None
            x1, y1, x2, y2 = window
            assert x1 <= output.box[0] <= output.box[2] <= x2
            assert y1 <= output.box[1] <= output.box[3] <= y2
            assert json.loads(output.completion)['label_name'] == question
        crop = np.ascontiguousarray(image[y1:y2, x1:x2, ::-1])
        found = inference_detector(refiner.detector, crop, text_prompt=(question, ),
                                   custom_entities=True).pred_instances
        best = found.bboxes[found.scores.argmax()].numpy()
        np.testing.assert_allclose(alone.box, best + np.tile(window[:2], 2), atol=1e-2)
        assert json.loads(alone.completion)['score'] == pytest.approx(float(found.scores.max()),
                                                                       abs=1e-5)


def test_mmdet_config_names_overrides_and_pipeline_precedence():
    init_default_scope('finers_mm')
    config = 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'  # a config shipped with mmdet
    overrides = {'backbone.init_cfg': None, 'bbox_head.num_classes': 3}
    refiner = MMDetRefiner(detector=config, detector_overrides=overrides, class_names='abc')
    assert type(refiner.detector).__name__ == 'RetinaNet'
    assert refiner.detector.bbox_head.num_classes == 3 and refiner.class_names == ('a', 'b', 'c')
    resize = [t for t in refiner.pipeline.transforms if type(t).__name__ == 'Resize']
    assert [r.scale for r in resize] == [(1333, 800)]  # the config's own test pipeline
    assert type(refiner.pipeline.transforms[0]).__name__ == 'LoadImageFromNDArray'
    assert not any('Annotations' in type(t).__name__ for t in refiner.pipeline.transforms)
    refiner = MMDetRefiner(detector=config, detector_overrides=overrides, input_size=(96, 64))
    resize = [t for t in refiner.pipeline.transforms if type(t).__name__ == 'Resize']
    assert [r.scale for r in resize] == [(96, 64)]


# ------------------------------------------------------------------------------------------------
# build-time errors
# ------------------------------------------------------------------------------------------------

def _project_cfg(tiny_models, checkpoint) -> Config:
    root = osp.dirname(tiny_models['sam'])
    cfg = Config.fromfile(PROJECT_CONFIG)
    cfg.merge_from_dict({
        'model.explorer.vlm.pretrained': tiny_models['qwen2_5_vl'],
        'model.mask_head.config': osp.join(root, 'sam_tiny.json'),
        'model.mask_head.checkpoint': tiny_models['sam'],
        'model.refiner.checkpoint': checkpoint,
        'model.refiner.detector': RTMDET_CONFIG,
    })
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize('bad', ['missing_checkpoint', 'unknown_detector_type'])
def test_bad_project_config_fails_when_tools_test_builds_it(tiny_models, checkpoints, tmp_path,
                                                            bad):
    """The project config through tools/test.py: a missing checkpoint, or a detector config of an
    unknown type, stops the run when the model is built, naming the config key and the path."""
    root = osp.dirname(tiny_models['sam'])
    if bad == 'missing_checkpoint':
        path = str(tmp_path / 'no_such_detector.pth')
        option = f'model.refiner.checkpoint={path}'
        expected = (r"FileNotFoundError: model\.refiner\.checkpoint: no checkpoint file at '"
                    + re.escape(path) + "'")
    else:
        path = str(tmp_path / 'typo_detector.py')
        with open(path, 'w') as f:
            f.write(f"_base_ = '{RTMDET_CONFIG}'\nmodel = dict(type='RTMDetTypo')\n")
        option = f'model.refiner.detector={path}'
        expected = (r"ValueError: model\.refiner\.detector\.type: unknown detector type "
                    r"'RTMDetTypo' in the detector config \(config file '" + re.escape(path) + "'")
    result = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'test.py'), PROJECT_CONFIG, '--work-dir',
         str(tmp_path), '--cfg-options',
         f"model.explorer.vlm.pretrained={tiny_models['qwen2_5_vl']}",
         f'model.mask_head.config={root}/sam_tiny.json',
         f"model.mask_head.checkpoint={tiny_models['sam']}",
         f"model.refiner.checkpoint={checkpoints['rtmdet']}", option],
        cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert re.search(expected, result.stderr), result.stderr[-3000:]
    assert 'Iter(test)' not in result.stdout  # it failed while building, before any data


def test_unknown_or_wrong_detector_types_and_missing_files_fail_at_build(tiny_models, checkpoints,
                                                                          tmp_path):
    init_default_scope('finers_mm')
    bad = tmp_path / 'bad_detector.py'
    bad.write_text(f"_base_ = '{RTMDET_CONFIG}'\nmodel = dict(type='RTMDetTypo')\n")
    cfg = _project_cfg(tiny_models, checkpoints['rtmdet'])
    cfg.model.refiner.detector = str(bad)
    with pytest.raises(ValueError) as info:
        MODELS.build(cfg.model.refiner)
    message = str(info.value)
    assert 'model.refiner.detector.type' in message and 'RTMDetTypo' in message
    assert str(bad) in message

    with pytest.raises(ValueError, match=r"model\.refiner\.detector\.type.*'NoSuchDetector'"):
        MMDetRefiner(detector=dict(type='NoSuchDetector'))
    with pytest.raises(TypeError, match=r"model\.refiner\.detector\.type.*'ResNet'.*not an mmdet"):
        MMDetRefiner(detector=dict(type='ResNet', depth=18))
    missing = str(tmp_path / 'missing_detector.py')
    with pytest.raises(FileNotFoundError, match=r'model\.refiner\.detector: .*' + re.escape(
            missing)):
        MMDetRefiner(detector=missing)
    with pytest.raises(ValueError, match=r'model\.refiner\.selection'):
        MMDetRefiner(detector=dict(type='RedSquareDetector'), selection='best')
    with pytest.raises(ValueError, match=r'model\.refiner\.class_names'):
        MMDetRefiner(detector=dict(type='RedSquareDetector'), selection='class_name')
    with pytest.raises(FileNotFoundError, match=r"model\.refiner\.detector: .*'mmdet::nope/x\.py'"):
        MMDetRefiner(detector='mmdet::nope/x.py')
    # the project config itself builds its refiner (the tiny RTMDet) when the files are there
    assert isinstance(MODELS.build(_project_cfg(tiny_models, checkpoints['rtmdet']).model.refiner),
                      MMDetRefiner)


# ------------------------------------------------------------------------------------------------
# end to end through tools/test.py
# ------------------------------------------------------------------------------------------------

def _readme_commands():
    """The ``python ...`` commands of the README's first bash block, continuations joined."""
    with open(osp.join(PROJECT, 'README.md'), encoding='utf-8') as f:
        block = re.search(r'```bash\n(.*?)```', f.read(), re.S).group(1)
    return [line for line in block.replace('\\\n', ' ').splitlines()
            if line.strip().startswith('python ')]


def _metrics(stdout: str) -> dict:
    return {key: float(value) for key, value in re.findall(r'finers/(\w+): ([-\d.]+)', stdout)}


@pytest.mark.slow
def test_readme_commands_run_the_project_config_through_tools_test(tiny_models, tmp_path):
    """The README's commands, run as written with work_dirs/ moved to this test's folders."""
    models_dir = osp.dirname(tiny_models['sam'])
    commands = _readme_commands()
    build_detector = 'projects/mmdet_refiner/tools/build_tiny_detector.py'
    assert [shlex.split(c)[1] for c in commands] == [
        'tools/misc/build_tiny_models.py', build_detector, build_detector, 'tools/test.py']
    assert shlex.split(commands[3])[2] == osp.relpath(PROJECT_CONFIG, REPO_ROOT)
    for command in commands:
        command = command.replace('work_dirs/tiny_models', models_dir).replace(
            'work_dirs/', f'{tmp_path}/')
        argv = [sys.executable] + shlex.split(command)[1:]
        result = subprocess.run(argv, cwd=REPO_ROOT, env=ENV, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, (command, result.stderr[-3000:])
    for name in ('rtmdet_tiny_1cls.pth', 'grounding-dino_tiny.pth', 'bert_tiny/config.json'):
        assert osp.isfile(osp.join(models_dir, 'mmdet_refiner', name)), name
    metrics = _metrics(result.stdout)
    print('README commands:', metrics)  # the README's results table
    assert metrics['num_samples'] == 12 and 0 <= metrics['gIoU'] <= 100
    with open(tmp_path / 'mmdet_refiner' / 'preds.pkl', 'rb') as f:
        predictions = pickle.load(f)
    assert len(predictions) == 12
    for pred in predictions:  # --out holds the masks as RLE (mmdet's DumpDetResults)
        masks = pred['pred_instances']['masks']
        assert len(masks) == len(pred['pred_instances']['bboxes'])
        assert all(tuple(rle['size']) == tuple(pred['ori_shape']) for rle in masks)


ORACLE_EXPLORER = '''
import json
import math

import numpy as np
from mmengine.model import BaseModule

from finers_mm.models.stages import ExplorerOutput
from finers_mm.registry import MODELS


@MODELS.register_module()
class OracleRegionExplorer(BaseModule):
    """Test scaffolding: answers, per question, a region written down beforehand (ORIGINAL px)."""

    def __init__(self, regions):
        super().__init__()
        with open(regions) as f:
            self.regions = json.load(f)

    def explore(self, views, image_sizes, queries):
        return [ExplorerOutput(region=np.asarray(self.regions[q.question], np.float32),
                               answer='The object is found.', completion='oracle')
                for q in queries]
'''


@pytest.mark.slow
def test_project_config_with_an_oracle_explorer_runs_the_detector_end_to_end(
        tiny_models, checkpoints, tmp_path):
    """The random tiny explorer never answers a region, so here a scripted one does (the GT's
    256 px explorer region, as in tests/test_detector.py): every sample goes through the tiny
    RTMDet and SAM and comes back with one box, two points and a full-size mask."""
    init_default_scope('finers_mm')
    cfg = _project_cfg(tiny_models, checkpoints['rtmdet'])
    cfg.test_dataloader.dataset.data_root = osp.join(REPO_ROOT, 'finers_mm/data/synthetic/')
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    regions, windows = {}, {}
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        size = (info['width'], info['height'])
        explorer_gt = original_to_explorer(info['gt_bbox'], size, (1920, 1080))
        region = explorer_to_original(region_around_box(explorer_gt, (1920, 1080), 256), size,
                                      (1920, 1080))
        regions[info['question']] = region.tolist()
        windows[index] = crop_window_from_region(region, size, cfg.frames.crop_min_side)
    assert len(regions) == len(dataset)  # the bundled questions are unique
    with open(tmp_path / 'regions.json', 'w') as f:
        json.dump(regions, f)
    (tmp_path / 'oracle_explorer_mmdr.py').write_text(ORACLE_EXPLORER)
    config = tmp_path / 'oracle_mmdet_refiner.py'
    config.write_text(textwrap.dedent(f"""
        _base_ = '{PROJECT_CONFIG}'
        custom_imports = dict(imports=['finers_mm', 'projects.mmdet_refiner.mmdet_refiner',
                                       'oracle_explorer_mmdr'], allow_failed_imports=False)
        model = dict(explorer=dict(_delete_=True, type='OracleRegionExplorer',
                                   regions='{tmp_path / 'regions.json'}'))
        """))
    root = osp.dirname(tiny_models['sam'])
    out = tmp_path / 'preds.pkl'
    result = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'test.py'), str(config), '--work-dir',
         str(tmp_path), '--out', str(out), '--cfg-options',
         f'model.mask_head.config={root}/sam_tiny.json',
         f"model.mask_head.checkpoint={tiny_models['sam']}",
         f"model.refiner.checkpoint={checkpoints['rtmdet']}"],
        cwd=REPO_ROOT, env=dict(ENV, PYTHONPATH=str(tmp_path)), capture_output=True, text=True,
        timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = _metrics(result.stdout)
    print('oracle explorer + tiny RTMDet + tiny SAM:', metrics)  # the README's results table
    assert metrics['num_samples'] == 12 and metrics['invalid_rate'] == 0.0
    for key in ('gIoU', 'cIoU', 'MVQA', 'OVQA'):
        assert 0.0 <= metrics[key] <= 100.0, key
    with open(out, 'rb') as f:
        predictions = pickle.load(f)
    assert len(predictions) == 12
    for pred in predictions:
        instances = pred['pred_instances']
        height, width = pred['ori_shape']
        [rle] = instances['masks']  # one full-size mask, RLE in --out (DumpDetResults)
        mask = mask_util.decode(rle).astype(bool)
        assert mask.shape == (height, width)
        x1, y1, x2, y2 = pred['pred_window']
        np.testing.assert_array_equal(pred['pred_window'], windows[pred['sample_idx']])
        box = instances['bboxes'][0].numpy()
        assert x1 <= box[0] <= box[2] <= x2 and y1 <= box[1] <= box[3] <= y2
        np.testing.assert_allclose(instances['points'][0].numpy(), box_points(box), atol=1e-3)
        inside = np.zeros((height, width), bool)
        inside[y1:y2, x1:x2] = True
        assert not (mask & ~inside).any()  # pasted inside its window
        assert json.loads(pred['refiner_completion'])['detector'] == 'RTMDet'
        assert pred['invalid_reason'] is None
        assert pred['pred_answer'] == 'The object is found.'  # the explorer's: a detector has none
