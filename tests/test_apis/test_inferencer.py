# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRSInferencer and tools/demo.py on a bundled synthetic image with the tiny models."""
import json
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from finers_mm.apis import FineRSInferencer
from finers_mm.testing import REPO_ROOT
from finers_mm.testing.tools import load_tool

TINY_CONFIG = osp.join(REPO_ROOT, 'configs', 'finers', 'finers_tiny_test.py')
IMAGE = osp.join(REPO_ROOT, 'finers_mm', 'data', 'synthetic', 'images', 'train_000000.jpg')
QUESTION = 'Please segment the orange object in the middle-left part of the image.'


def _tiny_overrides(tiny_models) -> dict:
    root = osp.dirname(tiny_models['sam'])
    return {'model.explorer.vlm.pretrained': tiny_models['qwen2_5_vl'],
            'model.refiner.vlm.pretrained': tiny_models['qwen2_5_vl'],
            'model.mask_head.config': osp.join(root, 'sam_tiny.json'),
            'model.mask_head.checkpoint': tiny_models['sam']}


@pytest.fixture(scope='module')
def inferencer(tiny_models):
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.merge_from_dict(_tiny_overrides(tiny_models))
    return FineRSInferencer(cfg, device='cpu', show_progress=False)


def test_inferencer_writes_drawing_mask_and_prediction(inferencer, tmp_path):
    result = inferencer(dict(img=IMAGE, question=QUESTION, question_type='segmentation'),
                        out_dir=str(tmp_path))
    [prediction] = result['predictions']
    expected_keys = {'question', 'answer', 'invalid_reason', 'region', 'crop_window', 'bbox',
                     'points', 'score', 'explorer_completion', 'refiner_completion', 'mask_file'}
    assert set(prediction) == expected_keys
    assert prediction['question'] == QUESTION
    assert isinstance(prediction['explorer_completion'], str)
    width, height = Image.open(IMAGE).size
    mask = np.asarray(Image.open(prediction['mask_file']))
    assert mask.shape == (height, width)
    # the drawing: the whole image in its first panel, on a canvas of bounded width
    drawing = Image.open(tmp_path / 'vis' / '0000_train_000000.jpg')
    layout = inferencer.visualizer.layout
    assert drawing.size == layout.canvas_size
    assert drawing.size[0] <= inferencer.visualizer.max_width
    assert layout.panels['image'].window == (0, 0, width, height)
    with open(tmp_path / 'preds' / '0000_train_000000.json') as f:
        assert json.load(f) == prediction
    [drawn] = result['visualization']
    assert drawn.shape == (drawing.size[1], drawing.size[0], 3)


def test_array_input_matches_path_input(inferencer):
    by_path = inferencer(dict(img=IMAGE, question=QUESTION))['predictions'][0]
    array = np.asarray(Image.open(IMAGE).convert('RGB'))
    by_array = inferencer(dict(img=array, question=QUESTION))['predictions'][0]
    assert by_array['explorer_completion'] == by_path['explorer_completion']
    assert by_array['answer'] == by_path['answer']


def test_batched_inputs_and_annotation_style_question_types(inferencer):
    inputs = [dict(img=IMAGE, question=QUESTION, question_type='referring'),
              dict(img=IMAGE, question='What colour is the star?', question_type='reasoning'),
              dict(img=IMAGE, question='Which shape is orange?', question_type='option',
                   options=['A. star', 'B. circle', 'C. square', 'D. pentagon'])]
    result = inferencer(inputs, batch_size=3, return_datasamples=True)
    samples = result['predictions']
    assert [s.question_type for s in samples] == ['segmentation', 'open', 'multiple_choice']
    assert samples[2].options == {'A': 'star', 'B': 'circle', 'C': 'square', 'D': 'pentagon'}
    assert result['visualization'] is None  # nothing drawn without out_dir or show


def test_bad_inputs_fail_clearly(inferencer, tmp_path):
    with pytest.raises(TypeError, match='needs a question'):
        inferencer(IMAGE)
    with pytest.raises(ValueError, match='unknown question_type'):
        inferencer(dict(img=IMAGE, question='q', question_type='caption'))
    with pytest.raises(FileNotFoundError, match='nope.jpg'):
        inferencer(dict(img=str(tmp_path / 'nope.jpg'), question='q'))


def test_demo_cli_prints_answer_reasoning_and_output_paths(tiny_models, tmp_path, capsys):
    demo = load_tool('demo.py')
    overrides = [f'{key}={value}' for key, value in _tiny_overrides(tiny_models).items()]
    prediction = demo.main([IMAGE, 'Which shape is orange?', '--type', 'multiple_choice',
                            '--options', 'A. star', 'B. circle', '--out-dir', str(tmp_path),
                            '--device', 'cpu', '--cfg-options', *overrides])
    printed = capsys.readouterr().out
    assert 'answer   :' in printed and 'reasoning (explorer)' in printed
    assert prediction['mask_file'] in printed and osp.isfile(prediction['mask_file'])
    with pytest.raises(SystemExit):
        demo.parse_args([IMAGE, 'q', '--type', 'multiple_choice'])  # options missing
