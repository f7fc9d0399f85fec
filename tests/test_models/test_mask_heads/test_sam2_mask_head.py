# Copyright (c) finers_mm contributors. All rights reserved.
"""SAM2MaskHead (finers_mm.models.mask_heads.sam2) on the tiny random SAM 2 (CPU), and the config
swap: the same tiny FineRS test config with SAM, SAM 2 or an mmseg mask head."""
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope

from finers_mm.models.mask_heads import MaskPrediction, SAM2MaskHead, boxes_to_sam, points_to_sam
from finers_mm.models.mask_heads.sam2 import build_sam2_model
from finers_mm.registry import MODELS
from finers_mm.testing.chains import (MMSEG_CONFIG, SAM2_CONFIG, SAM_CONFIG, chain_config,
                                      oracle_chain)


@pytest.fixture(scope='module')
def head():
    torch.manual_seed(0)
    return SAM2MaskHead(config='tiny')


@pytest.fixture(scope='module')
def crops():
    """Three crops of different sizes and aspect ratios, (h, w, 3) uint8 RGB."""
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((40, 60), (64, 64),
                                                                         (100, 30))]


#: One prompt per crop of ``crops``, continuous CROP pixels.
BOXES = np.array([[5, 5, 30, 20], [10, 10, 50, 50], [2, 20, 25, 80]], dtype=np.float32)
POINTS = np.array([[[10.5, 10.5], [20.5, 15.5]], [[20.5, 20.5], [30.5, 30.5]],
                   [[10.5, 40.5], [12.5, 60.5]]], dtype=np.float32)


class _EncoderCalls:
    """Forward hook recording the batch size of every image-encoder pass."""

    def __init__(self, head):
        self.batch_sizes = []
        self._handle = head.sam2.image_encoder.register_forward_hook(
            lambda mod, args, out: self.batch_sizes.append(args[0].shape[0]))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.remove()


# ------------------------------------------------------------------------------------------------
# Interface, coordinates, batching
# ------------------------------------------------------------------------------------------------


def test_interface_shapes_and_scores(head, crops):
    prediction = head.predict(crops, torch.from_numpy(BOXES), torch.from_numpy(POINTS))
    assert isinstance(prediction, MaskPrediction)
    assert [m.shape for m in prediction.masks] == [c.shape[:2] for c in crops]
    assert all(m.dtype == bool for m in prediction.masks)
    assert prediction.scores.shape == (3, ) and prediction.scores.dtype == np.float32
    assert ((prediction.scores > 0) & (prediction.scores <= 1)).all()  # sigmoid IoU head
    box_only = head.predict(crops, BOXES)
    assert [m.shape for m in box_only.masks] == [c.shape[:2] for c in crops]
    with pytest.raises(ValueError, match='boxes must be'):
        head.predict(crops, BOXES[:2], POINTS)


def test_prompts_reach_the_prompt_encoder_in_sam_index_convention(head, crops, monkeypatch):
    """SAM 2 encodes the box as corner points (labels 2, 3) before the points and adds 0.5 itself:
    the same conversion as SAM, then scaled to the square ``image_size`` input per axis."""
    seen = []
    encoder = head.sam2.sam_prompt_encoder
    original = encoder.forward

    def spy(points, boxes, masks):
        seen.append((points[0].clone(), points[1].clone(), boxes, masks))
        return original(points, boxes, masks)

    monkeypatch.setattr(encoder, 'forward', spy)
    head.predict(crops[:1], BOXES[:1], POINTS[:1], np.array([[1, 0]]))
    coords, labels, boxes, masks = seen[0]
    h, w = crops[0].shape[:2]
    scale = np.array([256 / w, 256 / h])
    expected = np.concatenate([boxes_to_sam(BOXES[0]).reshape(2, 2), points_to_sam(POINTS[0])])
    np.testing.assert_allclose(coords[0].numpy(), expected * scale, rtol=1e-6)
    np.testing.assert_array_equal(labels.numpy(), [[2, 3, 1, 0]])
    assert boxes is None and masks is None


def test_batch_equals_single_calls_and_each_crop_is_encoded_once(head, crops, monkeypatch):
    with _EncoderCalls(head) as calls:
        batched = head.predict(crops, BOXES, POINTS)
    assert calls.batch_sizes == [3]
    for i in range(3):
        single = head.predict(crops[i:i + 1], BOXES[i:i + 1], POINTS[i:i + 1])
        np.testing.assert_array_equal(single.masks[0], batched.masks[i])
        np.testing.assert_allclose(single.scores[0], batched.scores[i], atol=1e-5)
    monkeypatch.setattr(head, 'batch_size', 2)
    with _EncoderCalls(head) as calls:
        capped = head.predict(crops, BOXES, POINTS)
    assert calls.batch_sizes == [2, 1]
    for a, b in zip(capped.masks, batched.masks):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize('multimask, candidates', [(True, 3), (False, 1)])
def test_best_scoring_candidate_is_kept(head, crops, monkeypatch, multimask, candidates):
    outputs = []
    original = head.predictor.predict_batch

    def spy(*args, **kwargs):
        outputs.append(original(*args, **kwargs))
        return outputs[-1]

    monkeypatch.setattr(head.predictor, 'predict_batch', spy)
    monkeypatch.setattr(head, 'multimask', multimask)
    prediction = head.predict(crops, BOXES, POINTS)
    masks, ious, _ = outputs[0]
    for i in range(3):
        assert masks[i].shape == (candidates, ) + crops[i].shape[:2]
        best = int(np.argmax(ious[i]))
        assert prediction.scores[i] == pytest.approx(float(ious[i][best]))
        np.testing.assert_array_equal(prediction.masks[i], masks[i][best] > 0)


def test_absent_or_unusable_prompts_give_empty_masks_without_running(head, crops):
    boxes = np.array([[0, 0, 0, 0], [100, 100, 120, 120], [np.nan, 0, 10, 10]], np.float32)
    with _EncoderCalls(head) as calls:
        prediction = head.predict(crops, boxes, POINTS)
    assert calls.batch_sizes == []
    assert [m.shape for m in prediction.masks] == [c.shape[:2] for c in crops]
    assert not any(m.any() for m in prediction.masks)
    np.testing.assert_array_equal(prediction.scores, 0)
    boxes[1] = BOXES[1]  # only the usable crop is encoded, its mask as when alone
    with _EncoderCalls(head) as calls:
        mixed = head.predict(crops, boxes, POINTS)
    assert calls.batch_sizes == [1]
    alone = head.predict(crops[1:2], BOXES[1:2], POINTS[1:2])
    np.testing.assert_array_equal(mixed.masks[1], alone.masks[0])
    assert mixed.scores[0] == 0 and mixed.scores[2] == 0


# ------------------------------------------------------------------------------------------------
# Build: registry, frozen, configs, checkpoints, bad input
# ------------------------------------------------------------------------------------------------


def test_frozen_and_built_from_the_finers_mm_registry():
    init_default_scope('finers_mm')
    head = MODELS.build(Config.fromfile(SAM2_CONFIG).model.mask_head)
    assert isinstance(head, SAM2MaskHead) and head.sam2.image_size == 256
    assert not any(p.requires_grad for p in head.parameters())
    assert sum(p.numel() for p in head.parameters()) < 1_000_000
    head.train()
    assert not head.training and not head.sam2.training
    assert not head.sam2.image_encoder.training


@pytest.mark.parametrize('name', ['configs/sam2/sam2_hiera_t.yaml',
                                  'configs/sam2.1/sam2.1_hiera_t.yaml'])
def test_sam2_package_configs_build_with_build_sam2(name):
    """Released architectures build by name (random weights, no prediction: 1024 px is slow on
    CPU); the feature sizes derived for the tiny model equal the predictor's 1024 defaults."""
    head = SAM2MaskHead(config=name)
    assert head.sam2.image_size == 1024
    assert head.predictor._bb_feat_sizes == [(256, 256), (128, 128), (64, 64)]
    assert not any(p.requires_grad for p in head.parameters())


@pytest.mark.parametrize('wrap', [True, False], ids=['meta_format', 'state_dict'])
def test_checkpoint_round_trip(head, crops, tmp_path, wrap):
    checkpoint = str(tmp_path / 'sam2_tiny.pt')
    state = head.sam2.state_dict()
    torch.save(dict(model=state) if wrap else state, checkpoint)
    torch.manual_seed(123)  # different random weights, replaced by the checkpoint's
    loaded = SAM2MaskHead(config='tiny', checkpoint=checkpoint)
    for name, value in state.items():
        torch.testing.assert_close(loaded.sam2.state_dict()[name], value)
    expected, got = head.predict(crops, BOXES, POINTS), loaded.predict(crops, BOXES, POINTS)
    for a, b in zip(expected.masks, got.masks):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(expected.scores, got.scores, rtol=1e-6)


def test_yaml_file_and_dict_configs(tmp_path):
    from omegaconf import OmegaConf

    from finers_mm.models.mask_heads.sam2 import TINY_SAM2_CONFIG
    config_file = str(tmp_path / 'sam2_tiny.yaml')
    OmegaConf.save(OmegaConf.create(dict(model=TINY_SAM2_CONFIG)), config_file)
    torch.manual_seed(0)
    from_file = build_sam2_model(config_file)
    torch.manual_seed(0)
    from_dict = build_sam2_model(dict(model=TINY_SAM2_CONFIG))
    for name, value in from_file.state_dict().items():
        torch.testing.assert_close(from_dict.state_dict()[name], value)


def test_mismatched_checkpoint_names_the_keys(tmp_path):
    checkpoint = str(tmp_path / 'wrong.pt')
    torch.save(dict(model=dict(nothing=torch.zeros(1))), checkpoint)
    with pytest.raises(RuntimeError) as info:
        SAM2MaskHead(config='tiny', checkpoint=checkpoint)
    for word in ("'checkpoint'", checkpoint, "'config'"):
        assert word in str(info.value)


@pytest.mark.parametrize('kwargs, error, words', [
    (dict(checkpoint='/no/such/sam2_hiera_large.pt'), FileNotFoundError,
     ["'checkpoint'", '/no/such/sam2_hiera_large.pt']),
    (dict(config='/no/such/sam2_hiera_l.yaml'), FileNotFoundError,
     ["'config'", '/no/such/sam2_hiera_l.yaml']),
    (dict(config='configs/sam2.1/sam2.1_hiera_xxl.yaml'), FileNotFoundError,
     ["'config'", 'configs/sam2.1/sam2.1_hiera_xxl.yaml']),
    (dict(config=dict(image_size=256)), KeyError, ["'config'", '_target_']),
    (dict(batch_size=0), ValueError, ['batch_size']),
])
def test_bad_input_fails_at_build_naming_the_key(kwargs, error, words):
    with pytest.raises(error) as info:
        SAM2MaskHead(**dict(dict(config='tiny'), **kwargs))
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize('option, value, error, words', [
    ('model.mask_head.checkpoint', '/no/such/sam2_hiera_large.pt', FileNotFoundError,
     ["'checkpoint'", '/no/such/sam2_hiera_large.pt']),
    ('model.mask_head.config', '/no/such/sam2_hiera_l.yaml', FileNotFoundError,
     ["'config'", '/no/such/sam2_hiera_l.yaml']),
])
def test_bad_sam2_config_fails_when_the_detector_is_built(tiny_models, option, value, error,
                                                          words):
    cfg = chain_config(SAM2_CONFIG, tiny_models)
    cfg.merge_from_dict({option: value})
    init_default_scope('finers_mm')
    with pytest.raises(error) as info:
        MODELS.build(cfg.model)
    for word in words:
        assert re.search(re.escape(word), str(info.value))


# ------------------------------------------------------------------------------------------------
# Config swap: the same tiny FineRS chain with SAM, SAM 2 and an mmseg mask head
# ------------------------------------------------------------------------------------------------


def test_configs_differ_only_in_the_mask_head():
    configs = [Config.fromfile(f).to_dict() for f in (SAM_CONFIG, SAM2_CONFIG, MMSEG_CONFIG)]
    types = [c['model'].pop('mask_head')['type'] for c in configs]
    assert types == ['SAMMaskHead', 'SAM2MaskHead', 'MMSegMaskHead']
    assert configs[0] == configs[1] == configs[2]


@pytest.mark.parametrize('config_file', [SAM_CONFIG, SAM2_CONFIG, MMSEG_CONFIG],
                         ids=['sam', 'sam2', 'mmseg'])
def test_same_chain_with_any_mask_head_gives_full_size_masks_and_valid_metrics(
        tiny_models, config_file):
    dataset, results = oracle_chain(config_file, tiny_models)
    assert len(results) == len(dataset)
    nonempty = 0
    for result in results:
        height, width = result.ori_shape
        masks = result.pred_instances.masks
        assert masks.shape == (1, height, width) and masks.dtype == torch.bool
        x1, y1, x2, y2 = (int(v) for v in result.pred_window)
        outside = masks[0].clone()
        outside[y1:y2, x1:x2] = False
        assert not outside.any()  # pasted into its crop window
        nonempty += bool(masks.any())
    assert nonempty > 0
    evaluator = Evaluator([dict(type='FineRSMetric')])
    evaluator.dataset_meta = dataset.metainfo
    evaluator.process(data_samples=results)
    metrics = evaluator.evaluate(len(results))
    assert metrics['finers/num_samples'] == len(dataset)
    assert metrics['finers/invalid_rate'] == 0.0
    for name in ('gIoU', 'cIoU'):
        assert 0.0 < metrics[f'finers/{name}'] <= 100.0
