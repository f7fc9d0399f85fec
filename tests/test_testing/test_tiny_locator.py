# Copyright (c) finers_mm contributors. All rights reserved.
"""The quick start's locating chain parts: the larger tiny Qwen2.5-VL (build_tiny_locator), the
locating tiny Qwen3-VL (build_tiny_qwen3_locator, its sin/cos position table) and the GrabCut mask
head (finers_mm/testing/grabcut_mask_head.py)."""
import cv2
import numpy as np
import pytest
import torch

from finers_mm.structures.masks import polygon_bbox, rasterize_polygon
from finers_mm.testing.grabcut_mask_head import GrabCutMaskHead
from finers_mm.testing.tiny_models import (LOCATOR_MAX_PIXELS, LOCATOR_TEXT_CONFIG,
                                           QWEN3_LOCATOR_MAX_PIXELS, build_tiny_locator,
                                           build_tiny_qwen3_locator, build_tiny_qwen3_vl,
                                           sincos_position_table)


def test_the_locator_is_wider_with_a_budget_that_shows_small_objects(tmp_path):
    from transformers import AutoConfig, AutoProcessor
    out = build_tiny_locator(str(tmp_path / 'locator'), seed=3)
    config = AutoConfig.from_pretrained(out, local_files_only=True)
    assert config.text_config.hidden_size == LOCATOR_TEXT_CONFIG['hidden_size'] == 128
    assert config.text_config.num_hidden_layers == 4
    processor = AutoProcessor.from_pretrained(out, local_files_only=True)
    assert processor.image_processor.size['longest_edge'] == LOCATOR_MAX_PIXELS
    # a 256 x 256 refiner crop is seen at 252 x 252 (9 x 9 merged tokens), a 960 x 540 frame at
    # 448 x 252: an object of 12 px covers about a 14-px patch in the crop
    pixels = processor.image_processor(images=[np.zeros((256, 256, 3), np.uint8)],
                                       return_tensors='pt')
    assert pixels['image_grid_thw'].tolist() == [[1, 18, 18]]
    pixels = processor.image_processor(images=[np.zeros((540, 960, 3), np.uint8)],
                                       return_tensors='pt')
    assert pixels['image_grid_thw'].tolist() == [[1, 18, 32]]
    # deterministic in the seed
    again = build_tiny_locator(str(tmp_path / 'again'), seed=3)
    assert (tmp_path / 'locator' / 'model.safetensors').read_bytes() == \
        (tmp_path / 'again' / 'model.safetensors').read_bytes() and again != out


def test_sincos_position_table_codes_each_place_smoothly():
    table = sincos_position_table(8, 18)  # 4 frequencies, 2 zero features
    assert table.shape == (64, 18) and table.dtype == torch.float32 and not table[:, 16:].any()
    grid = table.reshape(8, 8, 18)
    assert grid[0, 0, :4].tolist() == [0.0, 1.0, 0.0, 1.0]  # sin, cos of x = 0 and y = 0
    assert (grid[:, 1:, 0] > grid[:, :-1, 0]).all()  # sin(pi/2 x) grows along x (columns) ...
    assert (grid[1:, :, 2] > grid[:-1, :, 2]).all()  # ... sin(pi/2 y) along y (rows)
    assert len({tuple(row.tolist()) for row in table}) == 64  # every place its own code
    dist = torch.cdist(table, table)
    assert dist[0, 1] < dist[0, 7] and dist[0, 8] < dist[0, 63]  # near places, near codes


def test_the_qwen3_locator_has_an_absolute_position_table(tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from finers_mm.registry import MODELS
    out = build_tiny_qwen3_locator(str(tmp_path / 'qwen3_locator'), seed=1)
    model = AutoModelForImageTextToText.from_pretrained(out, local_files_only=True)
    table = model.model.visual.pos_embed.weight  # 16 x 16 places, one 64-wide code each
    assert table.shape == (256, 64) and len({tuple(r.tolist()) for r in table}) == 256
    assert model.config.text_config.hidden_size == LOCATOR_TEXT_CONFIG['hidden_size']
    processor = AutoProcessor.from_pretrained(out, local_files_only=True)
    assert processor.image_processor.size['longest_edge'] == QWEN3_LOCATOR_MAX_PIXELS
    # a 256 x 256 refiner crop is seen whole: 16 x 16 patches of 16 px, 8 x 8 merged tokens
    pixels = processor.image_processor(images=[np.zeros((256, 256, 3), np.uint8)],
                                       return_tensors='pt')
    assert pixels['image_grid_thw'].tolist() == [[1, 16, 16]]
    # the project's adapter runs it (0..1000 coordinates)
    adapter = MODELS.build(dict(type='Qwen3VLAdapter', pretrained=out, dtype='float32',
                                generation=dict(max_new_tokens=3)))
    assert adapter.relative_scale == 1000
    result = adapter.generate([np.zeros((256, 256, 3), np.uint8)], ['Where?'])
    assert result.completion_ids.shape[0] == 1
    # deterministic in the seed
    again = build_tiny_qwen3_locator(str(tmp_path / 'again'), seed=1)
    assert (tmp_path / 'qwen3_locator' / 'model.safetensors').read_bytes() == \
        (tmp_path / 'again' / 'model.safetensors').read_bytes() and again != out
    # a sin/cos table on request (the vision probe's qwen3_sincos), transformers' one otherwise
    sincos = AutoModelForImageTextToText.from_pretrained(
        build_tiny_qwen3_vl(str(tmp_path / 'sincos'), seed=1, position_table='sincos'),
        local_files_only=True).model.visual.pos_embed.weight
    torch.testing.assert_close(sincos, sincos_position_table(8, sincos.shape[1]))
    plain = AutoModelForImageTextToText.from_pretrained(
        build_tiny_qwen3_vl(str(tmp_path / 'plain'), seed=1), local_files_only=True)
    assert not torch.allclose(plain.model.visual.pos_embed.weight, sincos)
    with pytest.raises(ValueError, match="'random' or 'sincos'"):
        build_tiny_qwen3_vl(str(tmp_path / 'bad'), position_table='learned')


def _scene(seed: int):
    """A grey noisy crop with a saturated star (the synthetic scenes' look) and its mask."""
    rng = np.random.default_rng(seed)
    crop = np.clip(rng.normal(110, 6, (96, 128, 3)), 0, 255).astype(np.uint8)
    angles = np.linspace(0, 2 * np.pi, 11)[:-1]
    radii = np.where(np.arange(10) % 2 == 0, 11.0, 5.0)
    polygon = np.stack([60 + radii * np.cos(angles), 40 + radii * np.sin(angles)], 1)
    mask = rasterize_polygon(polygon, 96, 128)
    crop[mask] = (235, 30, 30)
    return crop, mask, polygon_bbox(polygon, 96, 128)


@pytest.mark.parametrize('jitter', [0.0, 2.0])
def test_grabcut_segments_the_object_in_its_box_and_beats_the_filled_box(jitter):
    crop, mask, box = _scene(0)
    box = np.asarray(box, np.float32) + np.array([jitter, -jitter, -jitter, jitter], np.float32)
    pred = GrabCutMaskHead().predict([crop], box[None])
    iou = (pred.masks[0] & mask).sum() / (pred.masks[0] | mask).sum()
    xs, ys = np.arange(128) + 0.5, np.arange(96) + 0.5
    filled = ((ys > box[1]) & (ys < box[3]))[:, None] & ((xs > box[0]) & (xs < box[2]))[None]
    assert iou > 0.85 and iou > (filled & mask).sum() / (filled | mask).sum() + 0.2


def test_grabcut_rectangle_grows_inside_the_crop_and_no_box_is_no_mask():
    head = GrabCutMaskHead(margin=0.25, min_margin=2)
    assert head.rectangle(np.array([10, 20, 30, 24.0]), 100, 50) == (5, 18, 30, 8)
    assert head.rectangle(np.array([0, 0, 100, 50.0]), 100, 50) == (0, 0, 100, 50)
    crop, _, _ = _scene(1)
    boxes = np.array([[0, 0, 0, 0], [1, 1, 2, 2]], np.float32)
    pred = GrabCutMaskHead().predict([crop, crop], boxes)
    assert not pred.masks[0].any() and pred.scores[0] == 0
    # a rectangle too small for GrabCut: the box itself
    assert pred.masks[1].sum() == 1 and pred.masks[1][1, 1]
    # same crop, same mask: the seed is set per crop
    crop, _, box = _scene(2)
    first = GrabCutMaskHead().predict([crop], np.asarray(box, np.float32)[None]).masks[0]
    cv2.setRNGSeed(123)
    assert (GrabCutMaskHead().predict([crop], np.asarray(box, np.float32)[None]).masks[0]
            == first).all()


def test_attention_sharpness_scales_every_decoder_attention_logit_at_init(tmp_path):
    """The decoder normalises q and k after their projections (RMSNorm), so the sharpness lives in
    the norms' weights: every q . k, hence every logit before the softmax, is s times the plain
    init's, and nothing else changes."""
    from transformers import AutoModelForImageTextToText
    plain = AutoModelForImageTextToText.from_pretrained(
        build_tiny_qwen3_locator(str(tmp_path / 'plain'), seed=2), local_files_only=True)
    sharp = AutoModelForImageTextToText.from_pretrained(
        build_tiny_qwen3_locator(str(tmp_path / 'sharp'), seed=2, attention_sharpness=3.0),
        local_files_only=True)
    for (name, a), (_, b) in zip(plain.state_dict().items(), sharp.state_dict().items()):
        if 'language_model' in name and name.endswith(('q_norm.weight', 'k_norm.weight')):
            torch.testing.assert_close(b, a * 3.0 ** 0.5)
        else:
            assert torch.equal(a, b), name
    attns = [m.model.language_model.layers[0].self_attn for m in (plain, sharp)]
    x = torch.randn(5, attns[0].head_dim)
    logits = [attn.q_norm(x) @ attn.k_norm(x).T for attn in attns]
    torch.testing.assert_close(logits[1], 3.0 * logits[0])
    with pytest.raises(ValueError, match='attention_sharpness'):
        build_tiny_qwen3_vl(str(tmp_path / 'bad'), attention_sharpness=0)
