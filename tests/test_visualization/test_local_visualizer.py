# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRSVisualizer on synthetic predictions: bounded canvas, clipped boxes, notes, caption."""
import itertools
import os.path as osp

import numpy as np
import pytest
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData
from PIL import Image

from finers_mm.models.stages import make_pred_instances
from finers_mm.registry import VISUALIZERS
from finers_mm.structures import crop_window_from_region
from finers_mm.visualization import FineRSVisualizer
from finers_mm.visualization.layout import CROP, OVERVIEW
from finers_mm.visualization.local_visualizer import BACKGROUND
from finers_mm.visualization.marks import MASK_COLOR

WIDTH, HEIGHT = 960, 540
GRAY = 128
_names = (f'test_visualizer_{i}' for i in itertools.count())


def _visualizer(**kwargs) -> FineRSVisualizer:
    # mmengine keeps visualisers by name: one name per instance
    return VISUALIZERS.build(dict(type='FineRSVisualizer', name=next(_names), **kwargs))


def _image() -> np.ndarray:
    return np.full((HEIGHT, WIDTH, 3), GRAY, np.uint8)


def _sample(region=None, window=None, box=None, points=None, mask_box=None,
            question='Please segment the orange object.', question_type='segmentation',
            options=None, answer='The object is found.', invalid_reason=None) -> DetDataSample:
    """A FineRSDetector-style prediction on a WIDTH x HEIGHT image (ORIGINAL pixels)."""
    sample = DetDataSample()
    sample.set_metainfo(dict(
        ori_shape=(HEIGHT, WIDTH), question=question, question_type=question_type,
        options=options or {}, pred_answer=answer, invalid_reason=invalid_reason,
        pred_region=None if region is None else np.asarray(region, np.float32),
        pred_window=None if window is None else np.asarray(window, np.int64)))
    if box is None:
        sample.pred_instances = make_pred_instances(
            [], points=[], masks=np.zeros((0, HEIGHT, WIDTH), bool))
        return sample
    mask = np.zeros((HEIGHT, WIDTH), bool)
    if mask_box is not None:
        x1, y1, x2, y2 = mask_box
        mask[y1:y2, x1:x2] = True
    sample.pred_instances = make_pred_instances([box], scores=[0.8], points=[points],
                                                masks=[mask])
    return sample


def _in_image_sample() -> DetDataSample:
    return _sample(region=[300, 200, 420, 300], window=[104, 0, 616, 512],
                   box=[330, 220, 390, 270], points=[[350, 240], [370, 250]],
                   mask_box=(330, 220, 390, 270))


def _inside(inner, outer, tol=0.5) -> bool:
    return (inner[0] >= outer[0] - tol and inner[1] >= outer[1] - tol
            and inner[2] <= outer[2] + tol and inner[3] <= outer[3] + tol)


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _rendered_text_boxes(visualizer):
    """Canvas boxes [x1, y1, x2, y2] of every text matplotlib drew, with their strings."""
    renderer = visualizer.fig_save_canvas.get_renderer()
    height = visualizer.height
    boxes = []
    for text in visualizer.ax_save.texts:
        extent = text.get_window_extent(renderer)
        boxes.append((text.get_text(),
                      (extent.x0, height - extent.y1, extent.x1, height - extent.y0)))
    return boxes


def _check_common(visualizer, drawn):
    """Invariants of every drawing: bounded canvas, items in their panels, text off the images,
    nothing drawn in the margins beside the panels."""
    layout = visualizer.layout
    width, height = layout.canvas_size
    assert drawn.shape == (height, width, 3) and drawn.dtype == np.uint8
    assert visualizer.min_width <= width <= visualizer.max_width
    assert height <= visualizer.panel_height + 40 * (visualizer.max_caption_lines + 3)
    panels = layout.panels
    for panel in panels.values():
        assert _inside(panel.box, (0, 0, width, height))
    for item in layout.items:
        assert _inside(item.box, panels[item.panel].box), item
    for line in layout.texts:
        assert _inside(line.box, (0, 0, width, height)), line
        if line.kind != 'label':
            assert not any(_overlaps(line.box, p.box) for p in panels.values()), line
    # what matplotlib actually drew: captions and titles off the panels, everything on the canvas
    label_texts = {line.text for line in layout.texts_of('label')}
    for text, box in _rendered_text_boxes(visualizer):
        assert _inside(box, (0, 0, width, height), tol=1.0), (text, box)
        if text not in label_texts:
            assert not any(_overlaps(box, p.box) for p in panels.values()), (text, box)
    # the band of the panels: outside every panel, only background (nothing spilled out)
    top = min(p.box[1] for p in panels.values())
    bottom = max(p.box[3] for p in panels.values())
    outside = np.ones((height, width), bool)
    outside[:top] = outside[bottom:] = False
    for panel in panels.values():
        x1, y1, x2, y2 = panel.box
        outside[y1:y2, x1:x2] = False
    assert (drawn[outside] == BACKGROUND).all()


def test_in_image_prediction_is_drawn_in_its_panels():
    visualizer = _visualizer()
    drawn = visualizer.draw_sample(_image(), _in_image_sample(), draw_gt=False)
    _check_common(visualizer, drawn)
    layout = visualizer.layout
    assert layout.notes == []
    overview, crop = layout.panels[OVERVIEW], layout.panels[CROP]
    assert overview.size[1] == crop.size[1]
    assert overview.size[0] / overview.size[1] == pytest.approx(WIDTH / HEIGHT, abs=0.01)
    assert crop.window == (104, 0, 616, 512)
    assert [item.panel for item in layout.items_of('region')] == [OVERVIEW]
    assert [item.panel for item in layout.items_of('window')] == [OVERVIEW]
    for kind in ('box', 'points', 'mask'):
        assert [item.panel for item in layout.items_of(kind)] == [CROP], kind
    [region] = layout.items_of('region')
    np.testing.assert_allclose(region.box, overview.to_canvas([300, 200, 420, 300]), atol=2)
    labels = {line.text for line in layout.texts_of('label')}
    assert {'explorer region', 'crop window', 'refiner box 0.80'} <= labels
    caption = [line.text for line in layout.texts_of('question', 'answer')]
    assert caption == ['Q (segmentation): Please segment the orange object.',
                       'answer: The object is found.']


def test_crop_panel_shows_the_mask_where_the_mask_is():
    visualizer = _visualizer()
    drawn = visualizer.draw_sample(_image(), _in_image_sample(), draw_gt=False).astype(int)
    crop = visualizer.layout.panels[CROP]
    # inside the mask (away from its outline and the box): tinted towards the mask colour
    x, y = crop.to_canvas([342, 260]).round().astype(int)
    tint = drawn[y, x] - GRAY
    assert tint[2] > 40 and tint[0] < -20, drawn[y, x]
    assert np.sign(tint).tolist() == np.sign(np.array(MASK_COLOR) - GRAY).tolist()
    # in the crop panel far from the mask: the image as it is
    x, y = crop.to_canvas([150, 450]).round().astype(int)
    assert (np.abs(drawn[y - 3:y + 4, x - 3:x + 4] - GRAY) <= 2).all()
    [mask] = visualizer.layout.items_of('mask')
    np.testing.assert_allclose(mask.box, crop.to_canvas([330, 220, 390, 270]), atol=2)


def test_region_partly_outside_is_clipped_and_noted():
    """The degenerate tiny model's answer: a 1332x1311 px region on a 960x540 image."""
    region = [10, 10, 1342, 1321]
    window = crop_window_from_region(np.array(region, np.float32), (WIDTH, HEIGHT), 512)
    visualizer = _visualizer()
    drawn = visualizer.draw_sample(_image(), _sample(region=region, window=window,
                                                     box=[47, 108, 1285, 1026],
                                                     points=[[390, 500], [47, 1026]],
                                                     mask_box=(47, 108, 900, 540)),
                                   draw_gt=False)
    _check_common(visualizer, drawn)
    layout = visualizer.layout
    overview = layout.panels[OVERVIEW]
    [region_item] = layout.items_of('region')
    assert _inside(region_item.box, overview.box)
    assert any('explorer region 1332x1311 px' in note and 'extends beyond the image' in note
               for note in layout.notes), layout.notes
    assert any('refiner box' in note and 'beyond the crop window' in note for note in layout.notes)
    assert any(note.startswith('point 2 (47, 1026) lies outside') for note in layout.notes)
    assert len(layout.items_of('box')) == 1 and len(layout.items_of('points')) == 1
    notes_drawn = ' '.join(line.text for line in layout.texts_of('note'))
    assert 'extends beyond the image' in notes_drawn


def test_region_fully_outside_is_not_drawn_but_noted():
    visualizer = _visualizer()
    drawn = visualizer.draw_sample(_image(), _sample(region=[1000, 600, 1400, 900],
                                                     window=[448, 28, 960, 540],
                                                     box=[700, 300, 760, 340],
                                                     points=[[720, 320], [740, 330]]),
                                   draw_gt=False)
    _check_common(visualizer, drawn)
    layout = visualizer.layout
    assert layout.items_of('region') == []
    assert any(note.startswith('explorer region 400x300 px [1000, 600, 1400, 900] lies outside '
                               'the image') for note in layout.notes), layout.notes
    assert layout.items_of('mask') == []  # an all-empty mask draws nothing


def test_empty_prediction_shows_the_invalid_reason():
    visualizer = _visualizer()
    drawn = visualizer.draw_sample(_image(), _sample(answer='', invalid_reason='explorer:no_json'),
                                   draw_gt=False)
    _check_common(visualizer, drawn)
    layout = visualizer.layout
    assert set(layout.panels) == {OVERVIEW} and layout.items == [] and layout.notes == []
    assert [line.text for line in layout.texts_of('answer')] == ['answer: (none)']
    [invalid] = layout.texts_of('invalid')
    assert invalid.text.startswith('invalid: explorer:no_json')


def test_multiple_choice_caption_names_the_options_and_the_chosen_one():
    visualizer = _visualizer()
    sample = _sample(question='Which shape is orange?', question_type='multiple_choice',
                     options={'A': 'star', 'B': 'circle', 'C': 'square', 'D': 'pentagon'},
                     answer='B', region=[300, 200, 420, 300], window=[104, 0, 616, 512],
                     box=[330, 220, 390, 270], points=[[350, 240], [370, 250]])
    drawn = visualizer.draw_sample(_image(), sample, draw_gt=False)
    _check_common(visualizer, drawn)
    texts = [line.text for line in visualizer.layout.texts_of('question', 'answer')]
    assert texts == ['Q (multiple_choice): Which shape is orange?',
                     'options: A. star   B. circle   C. square   D. pentagon',
                     'answer: B (circle)']


def test_long_text_wraps_to_the_canvas_and_is_bounded():
    visualizer = _visualizer(max_caption_lines=6)
    question = ' '.join(['Please segment the tiny orange object'] * 30) + ' $5 ' + 'x' * 400
    drawn = visualizer.draw_sample(_image(), _sample(question=question, answer='y' * 1000,
                                                     invalid_reason='refiner:no_json'),
                                   draw_gt=False)
    _check_common(visualizer, drawn)
    layout = visualizer.layout
    caption = [line for line in layout.texts if line.kind not in ('title', 'label')]
    assert len(caption) == 6 and caption[-1].text.endswith('…')
    assert all(line.box[2] <= layout.caption_box[2] for line in caption)


@pytest.mark.parametrize('size', [(48, 64), (2000, 30), (30, 2000)])
def test_odd_image_sizes_stay_bounded(size):
    width, height = size
    sample = DetDataSample()
    sample.set_metainfo(dict(question='q', question_type='open', pred_answer='red',
                             pred_region=np.array([0, 0, width * 2, height / 2], np.float32),
                             pred_window=np.array([0, 0, width, height])))
    sample.pred_instances = make_pred_instances([[1, 1, 5, 5]], points=[[[2, 2], [3, 3]]],
                                                masks=[np.ones((height, width), bool)])
    visualizer = _visualizer()
    drawn = visualizer.draw_sample(np.zeros((height, width), np.uint8), sample, draw_gt=False)
    _check_common(visualizer, drawn)


def test_gt_is_drawn_in_both_panels_with_its_answer():
    sample = _in_image_sample()
    gt_mask = np.zeros((HEIGHT, WIDTH), bool)
    gt_mask[225:265, 335:385] = True
    sample.gt_instances = InstanceData(
        bboxes=np.array([[335, 225, 385, 265]], np.float32),
        masks=BitmapMasks(gt_mask[None].astype(np.uint8), HEIGHT, WIDTH))
    sample.set_metainfo(dict(answer='The object is found.'))
    visualizer = _visualizer()
    drawn = visualizer.draw_sample(_image(), sample)
    _check_common(visualizer, drawn)
    layout = visualizer.layout
    assert sorted(item.panel for item in layout.items_of('gt_box')) == sorted([OVERVIEW, CROP])
    assert [item.panel for item in layout.items_of('gt_mask')] == [CROP]
    assert [line.text for line in layout.texts_of('gt')] == ['GT answer: The object is found.']
    visualizer.draw_sample(_image(), sample, draw_gt=False)
    assert visualizer.layout.items_of('gt_box') == [] and visualizer.layout.texts_of('gt') == []


def test_add_datasample_saves_to_out_file_and_to_the_backends(tmp_path):
    visualizer = _visualizer(vis_backends=[dict(type='LocalVisBackend')],
                             save_dir=str(tmp_path / 'backend'))
    out_file = str(tmp_path / 'drawing.jpg')
    visualizer.add_datasample('sample', _image(), _in_image_sample(), out_file=out_file)
    assert Image.open(out_file).size == visualizer.layout.canvas_size
    visualizer.add_datasample('sample', _image(), _in_image_sample(), step=3)
    saved = tmp_path / 'backend' / 'vis_data' / 'vis_image' / 'sample_3.png'
    assert osp.isfile(saved) and Image.open(saved).size == visualizer.layout.canvas_size
    np.testing.assert_array_equal(visualizer.get_image(), np.asarray(Image.open(saved)))


def test_no_sample_and_bad_settings():
    visualizer = _visualizer()
    drawn = visualizer.draw_sample(_image(), None)
    assert set(visualizer.layout.panels) == {OVERVIEW}
    assert visualizer.layout.texts_of('question') == []
    assert drawn.shape[1] <= visualizer.max_width
    with pytest.raises(ValueError, match='RGB image'):
        visualizer.draw_sample(np.zeros((4, 4, 4), np.uint8), None)
    with pytest.raises(ValueError, match='min_width 900 exceeds max_width 800'):
        _visualizer(max_width=800, min_width=900)
    with pytest.raises(ValueError, match='panel_height must be an integer >= 1'):
        _visualizer(panel_height=0)
