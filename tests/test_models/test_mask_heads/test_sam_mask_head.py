# Copyright (c) finers_mm contributors. All rights reserved.
"""SAMMaskHead (finers_mm.models.mask_heads) and paste_crop_mask, on the tiny local SAM (CPU)."""
import numpy as np
import pytest
import torch
from segment_anything.modeling import Sam
from segment_anything.utils.amg import batched_mask_to_box

from finers_mm.models.mask_heads import MaskPrediction, SAMMaskHead, boxes_to_sam, points_to_sam
from finers_mm.registry import MODELS
from finers_mm.structures.frames import crop_window_from_region
from finers_mm.structures.masks import mask_bbox, paste_crop_mask


@pytest.fixture(scope='module')
def head(tiny_models):
    return SAMMaskHead(config=tiny_models['sam_config'], checkpoint=tiny_models['sam'])


@pytest.fixture(scope='module')
def crops():
    """Three crops of different sizes and aspect ratios, (h, w, 3) uint8 RGB."""
    rng = np.random.default_rng(0)
    sizes = ((40, 60), (64, 64), (100, 30))
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]


#: One prompt per crop of ``crops``, continuous CROP pixels.
BOXES = np.array([[5, 5, 30, 20], [10, 10, 50, 50], [2, 20, 25, 80]], dtype=np.float32)
POINTS = np.array([[[10.5, 10.5], [20.5, 15.5]], [[20.5, 20.5], [30.5, 30.5]],
                   [[10.5, 40.5], [12.5, 60.5]]], dtype=np.float32)


class _CallRecorder:
    """Forward hook recording the batch size of every call of a module."""

    def __init__(self, module: torch.nn.Module):
        self.batch_sizes = []
        self._handle = module.register_forward_hook(
            lambda mod, args, out: self.batch_sizes.append(args[0].shape[0]))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.remove()


# ------------------------------------------------------------------------------------------------
# Coordinate conversion
# ------------------------------------------------------------------------------------------------


def test_conversion_values():
    np.testing.assert_array_equal(boxes_to_sam([[3, 4, 10, 12]]), [[3, 4, 9, 11]])
    np.testing.assert_array_equal(boxes_to_sam(np.zeros((2, 3, 4))).shape, (2, 3, 4))
    np.testing.assert_allclose(points_to_sam([[[0.5, 0.5], [7.25, 3.0]]]), [[[0, 0], [6.75, 2.5]]])
    with pytest.raises(ValueError, match=r'\(\.\.\., 4\)'):
        boxes_to_sam([1, 2, 3])
    with pytest.raises(ValueError, match=r'\(\.\.\., 2\)'):
        points_to_sam([[1, 2, 3]])


def test_box_conversion_matches_sams_own_mask_boxes():
    """SAM's boxes of a mask (inclusive indices) == our continuous mask box, converted."""
    rng = np.random.default_rng(1)
    for _ in range(20):
        mask = np.zeros((30, 40), dtype=bool)
        x1, y1 = rng.integers(0, 35), rng.integers(0, 25)
        mask[y1:y1 + rng.integers(1, 6), x1:x1 + rng.integers(1, 6)] = True
        sam_box = batched_mask_to_box(torch.from_numpy(mask)).numpy()
        np.testing.assert_array_equal(boxes_to_sam(mask_bbox(mask)), sam_box)


def test_point_conversion_lands_on_the_continuous_point(head):
    """After SAM's +0.5 shift, the prompt encoder encodes exactly our continuous point / corners."""
    encoder = head.sam.prompt_encoder
    size = encoder.input_image_size
    points = torch.tensor([[[12.5, 7.5], [3.25, 100.0]]])
    labels = torch.ones(1, 2, dtype=torch.int)
    ours = encoder._embed_points(torch.from_numpy(points_to_sam(points.numpy())).float(), labels,
                                 pad=False)
    expected = encoder.pe_layer.forward_with_coords(points, size)
    expected += encoder.point_embeddings[1].weight
    torch.testing.assert_close(ours, expected)
    box = np.array([[4.0, 6.0, 9.0, 20.0]])  # pixels 4..8 x 6..19, corner centres 4.5 6.5 8.5 19.5
    ours = encoder._embed_boxes(torch.from_numpy(boxes_to_sam(box)).float())
    corners = torch.tensor([[[4.5, 6.5], [8.5, 19.5]]])
    expected = encoder.pe_layer.forward_with_coords(corners, size)
    expected[:, 0] += encoder.point_embeddings[2].weight[0]
    expected[:, 1] += encoder.point_embeddings[3].weight[0]
    torch.testing.assert_close(ours, expected)


def test_prompts_reach_sam_converted_and_resized(head, crops):
    seen = []
    handle = head.sam.prompt_encoder.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(kwargs), with_kwargs=True)
    try:
        head.predict(crops, BOXES, POINTS)
    finally:
        handle.remove()
    assert len(seen) == 3
    for crop, box, points, kwargs in zip(crops, BOXES, POINTS, seen):
        size = crop.shape[:2]
        np.testing.assert_allclose(kwargs['boxes'].numpy(),
                                   head.transform.apply_boxes(boxes_to_sam(box[None]), size),
                                   rtol=1e-6)
        coords, labels = kwargs['points']
        np.testing.assert_allclose(coords.numpy(),
                                   head.transform.apply_coords(points_to_sam(points), size)[None],
                                   rtol=1e-6)
        np.testing.assert_array_equal(labels.numpy(), [[1, 1]])


# ------------------------------------------------------------------------------------------------
# predict
# ------------------------------------------------------------------------------------------------


def test_masks_have_each_crops_size(head, crops):
    pred = head.predict(crops, BOXES, POINTS)
    assert isinstance(pred, MaskPrediction)
    assert [m.shape for m in pred.masks] == [c.shape[:2] for c in crops]
    assert all(m.dtype == bool and m.any() for m in pred.masks)
    assert pred.scores.shape == (3,) and pred.scores.dtype == np.float32
    assert (pred.scores != 0).all()


def test_batch_equals_single_calls(head, crops):
    batched = head.predict(crops, BOXES, POINTS)
    for i in range(3):
        single = head.predict(crops[i:i + 1], BOXES[i:i + 1], POINTS[i:i + 1])
        np.testing.assert_array_equal(single.masks[0], batched.masks[i])
        np.testing.assert_allclose(single.scores[0], batched.scores[i], atol=1e-5)


def test_tensor_prompts_equal_numpy_prompts(head, crops):
    from_numpy = head.predict(crops, BOXES, POINTS)
    from_torch = head.predict(crops, torch.from_numpy(BOXES), torch.from_numpy(POINTS))
    for a, b in zip(from_numpy.masks, from_torch.masks):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(from_numpy.scores, from_torch.scores)


def test_one_encoder_pass_per_call(head, crops):
    with _CallRecorder(head.sam.image_encoder) as calls:
        head.predict(crops, BOXES, POINTS)
    assert calls.batch_sizes == [3]


def test_batch_size_caps_the_encoder_batch(tiny_models, crops):
    capped = SAMMaskHead(config=tiny_models['sam_config'], checkpoint=tiny_models['sam'],
                         batch_size=2)
    with _CallRecorder(capped.sam.image_encoder) as calls:
        pred = capped.predict(crops, BOXES, POINTS)
    assert calls.batch_sizes == [2, 1]
    assert [m.shape for m in pred.masks] == [c.shape[:2] for c in crops]


@pytest.mark.parametrize('multimask', [True, False])
def test_highest_scoring_candidate_is_kept(tiny_models, crops, multimask):
    head = SAMMaskHead(config=tiny_models['sam_config'], checkpoint=tiny_models['sam'],
                       multimask=multimask)
    ious = []
    handle = head.sam.mask_decoder.register_forward_hook(
        lambda mod, args, out: ious.append(out[1].clone()))
    try:
        pred = head.predict(crops, BOXES, POINTS)
    finally:
        handle.remove()
    assert [iou.shape for iou in ious] == [(1, 3 if multimask else 1)] * 3
    np.testing.assert_allclose(pred.scores, [float(iou.max()) for iou in ious], rtol=1e-6)
    if multimask:  # the random tiny SAM does not rank its first candidate highest everywhere
        assert any(int(iou.argmax()) != 0 for iou in ious)


def test_no_object_and_invalid_prompts_skip_sam(head, crops):
    boxes = BOXES.copy()
    boxes[0] = 0  # the refiner's "No object found"
    boxes[2] = [40, 10, 50, 20]  # entirely right of the 30 px wide crop
    with _CallRecorder(head.sam.image_encoder) as calls:
        pred = head.predict(crops, boxes, POINTS)
    assert calls.batch_sizes == [1]
    for i in (0, 2):
        assert pred.masks[i].shape == crops[i].shape[:2] and not pred.masks[i].any()
        assert pred.scores[i] == 0
    full = head.predict(crops, BOXES, POINTS)
    np.testing.assert_array_equal(pred.masks[1], full.masks[1])

    points = POINTS.copy()
    points[1, 0, 0] = np.nan
    with _CallRecorder(head.sam.image_encoder) as calls:
        pred = head.predict(crops, np.zeros((3, 4)), None)
        pred_nan = head.predict(crops[1:2], BOXES[1:2], points[1:2])
    assert calls.batch_sizes == []
    assert not any(m.any() for m in pred.masks + pred_nan.masks)
    assert not pred.scores.any() and not pred_nan.scores.any()


def test_box_only_and_negative_labels_change_the_prompt(head, crops):
    seen = []
    handle = head.sam.prompt_encoder.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(kwargs), with_kwargs=True)
    try:
        head.predict(crops[:1], BOXES[:1])
        head.predict(crops[:1], BOXES[:1], POINTS[:1], point_labels=[[1, 0]])
    finally:
        handle.remove()
    assert seen[0]['points'] is None
    np.testing.assert_array_equal(seen[1]['points'][1].numpy(), [[1, 0]])


def test_empty_call_and_bad_inputs(head, crops):
    pred = head.predict([], np.zeros((0, 4)))
    assert pred.masks == [] and pred.scores.shape == (0,)
    with pytest.raises(ValueError, match='one per crop'):
        head.predict(crops, BOXES[:2])
    with pytest.raises(ValueError, match='points must be'):
        head.predict(crops, BOXES, POINTS[:, 0])
    with pytest.raises(ValueError, match='point_labels must be'):
        head.predict(crops, BOXES, POINTS, point_labels=np.ones((3, 3)))
    with pytest.raises(ValueError, match='uint8'):
        head.predict([crops[0].astype(np.float32)], BOXES[:1])


# ------------------------------------------------------------------------------------------------
# Build, freezing, errors
# ------------------------------------------------------------------------------------------------


def test_frozen_and_stays_in_eval(head):
    assert not any(p.requires_grad for p in head.parameters())
    parent = torch.nn.ModuleDict(dict(mask_head=head, other=torch.nn.Linear(2, 2)))
    parent.train()
    assert parent['other'].training
    assert not any(m.training for m in head.modules())
    head.train(True)
    assert not any(m.training for m in head.modules())


def test_builds_from_registry_with_the_checkpoint_weights(tiny_models):
    head = MODELS.build(dict(type='SAMMaskHead', model_type='tiny',
                             config=tiny_models['sam_config'], checkpoint=tiny_models['sam']))
    assert isinstance(head, SAMMaskHead) and isinstance(head.sam, Sam)
    saved = torch.load(tiny_models['sam'], map_location='cpu', weights_only=True)
    for name, value in head.sam.state_dict().items():
        torch.testing.assert_close(value, saved[name], msg=name)
    random_head = SAMMaskHead(model_type='tiny')  # TINY_SAM_CONFIG, random weights
    assert any(not torch.equal(v, saved[k]) for k, v in random_head.sam.state_dict().items())


def test_missing_files_and_bad_config_fail_clearly(tmp_path, tiny_models):
    missing = str(tmp_path / 'sam_vit_h.pth')
    with pytest.raises(FileNotFoundError, match="'checkpoint'") as err:
        SAMMaskHead(model_type='vit_h', checkpoint=missing)
    assert missing in str(err.value)
    missing_cfg = str(tmp_path / 'sam.json')
    with pytest.raises(FileNotFoundError, match="'config'") as err:
        SAMMaskHead(config=missing_cfg, checkpoint=tiny_models['sam'])
    assert missing_cfg in str(err.value)
    with pytest.raises(ValueError, match='model_type must be one of'):
        SAMMaskHead()
    with pytest.raises(ValueError, match='model_type must be one of'):
        SAMMaskHead(model_type='vit_x')
    with pytest.raises(ValueError, match="cannot be combined"):
        SAMMaskHead(model_type='vit_b', config=tiny_models['sam_config'])
    with pytest.raises(ValueError, match='batch_size'):
        SAMMaskHead(model_type='tiny', batch_size=0)


def test_vit_b_builds_through_sam_model_registry():
    """Meta's vit_b architecture (random weights; ~1 s to build, the 1024 px encoder is not run)."""
    head = SAMMaskHead(model_type='vit_b')
    assert head.sam.image_encoder.img_size == 1024 and len(head.sam.image_encoder.blocks) == 12
    assert head.transform.target_length == 1024
    assert not any(p.requires_grad for p in head.parameters())


# ------------------------------------------------------------------------------------------------
# paste_crop_mask
# ------------------------------------------------------------------------------------------------


def test_paste_round_trip():
    rng = np.random.default_rng(2)
    image_size = (700, 500)  # (W, H)
    for region in ([650, 10, 690, 30], [0, 0, 5, 5], [300, 200, 340, 260]):
        window = crop_window_from_region(np.array(region, dtype=float), image_size, min_side=128)
        x1, y1, x2, y2 = window
        crop_mask = rng.random((y2 - y1, x2 - x1)) > 0.5
        full = paste_crop_mask(crop_mask, window, image_size)
        assert full.shape == (500, 700) and full.dtype == bool
        np.testing.assert_array_equal(full[y1:y2, x1:x2], crop_mask)
        outside = full.copy()
        outside[y1:y2, x1:x2] = False
        assert not outside.any()
        assert full.sum() == crop_mask.sum()


def test_paste_rejects_bad_windows():
    mask = np.ones((10, 20), dtype=bool)
    with pytest.raises(ValueError, match='inside the image'):
        paste_crop_mask(mask, [95, 0, 115, 10], (100, 50))
    with pytest.raises(ValueError, match='inside the image'):
        paste_crop_mask(mask, [-1, 0, 19, 10], (100, 50))
    with pytest.raises(ValueError, match='does not match'):
        paste_crop_mask(mask, [0, 0, 10, 20], (100, 50))
    with pytest.raises(ValueError, match='4 integers'):
        paste_crop_mask(mask, [0.5, 0, 20.5, 10], (100, 50))
