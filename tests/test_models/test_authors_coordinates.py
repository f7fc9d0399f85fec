# Copyright (c) finers_mm contributors. All rights reserved.
"""The coordinate switch: under the 'authors' protocol a Qwen2.5-VL box is in pixels of the frame
the image was given in (their rewards compared raw outputs with frame-pixel GT, so their weights
answer in frame pixels); under 'finers_mm' in pixels of the processor's smart-resized image.

With the released checkpoints' pixel budget set on the tiny model, a scripted completion written
in the authors' convention (the GT in frame pixels, computed here with plain arithmetic) must come
back as the GT in ORIGINAL pixels through the whole chain; the same text read by finers_mm's
convention lands pixels away, which is what the switch is for.
"""
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from finers_mm.registry import DATASETS, MODELS
from finers_mm.structures.answers import FOUND_RESPONSE
from finers_mm.testing.chains import SAM_CONFIG, chain_config
from finers_mm.testing.scripted import completion, halves_points, oracle_record, record_for

#: Qwen2.5-VL-7B-Instruct's processor budget (its preprocessor_config.json)
BUDGET = {'min_pixels': 3136, 'max_pixels': 12845056}
EXPLORER, REFINER = (1920, 1080), (512, 512)


def _chain(tiny_models, protocol: str):
    options = {'protocol': protocol}
    for stage in ('explorer', 'refiner'):
        options[f'model.{stage}.vlm.type'] = 'ScriptedQwen25VLAdapter'
        options.update({f'model.{stage}.vlm.{key}': value for key, value in BUDGET.items()})
    cfg = chain_config(SAM_CONFIG, tiny_models, options)
    torch.manual_seed(0)
    return MODELS.build(cfg.model).eval(), DATASETS.build(cfg.test_dataloader.dataset), cfg


@pytest.fixture(scope='module')
def chains(tiny_models):
    init_default_scope('finers_mm')
    return {protocol: _chain(tiny_models, protocol) for protocol in ('authors', 'finers_mm')}


def _authors_scripts(infos, crop_min_side):
    """Completions in the authors' convention: numbers in pixels of the frame given."""

    def explorer(image, prompt):
        record = oracle_record(record_for(infos, prompt), crop_min_side)
        return completion(dict(bbox=[float(v) for v in record['region']],
                               response=FOUND_RESPONSE))

    def refiner(image, prompt):
        info = record_for(infos, prompt)
        record = oracle_record(info, crop_min_side)
        x0, y0, x1, y1 = record['window']
        sx, sy = REFINER[0] / (x1 - x0), REFINER[1] / (y1 - y0)
        gx1, gy1, gx2, gy2 = (float(v) for v in info['gt_bbox'])
        box = [(gx1 - x0) * sx, (gy1 - y0) * sy, (gx2 - x0) * sx, (gy2 - y0) * sy]
        points = [[float((x - x0) * sx), float((y - y0) * sy)]
                  for x, y in halves_points(info['gt_bbox'])]
        return completion(dict(bbox=box, points_1=points[0], points_2=points[1],
                               response=FOUND_RESPONSE))

    return explorer, refiner


def _errors(chain):
    detector, dataset, cfg = chain
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    explorer, refiner = _authors_scripts(infos, cfg.model.crop_min_side)
    detector.explorer.vlm.script, detector.refiner.vlm.script = explorer, refiner
    with torch.no_grad():
        results = detector.test_step(pseudo_collate([dataset[i] for i in range(len(dataset))]))
    errors = []
    for info, result in zip(infos, results):
        assert result.invalid_reason is None and len(result.pred_instances) == 1
        errors.append(np.abs(result.pred_instances.bboxes[0].numpy() - info['gt_bbox']).max())
    return np.array(errors)


def test_the_switch_sets_the_adapters_convention(chains):
    for protocol, want in (('authors', EXPLORER), ('finers_mm', (1932, 1092))):
        vlm = chains[protocol][0].explorer.vlm
        assert vlm.coordinates == ('frame' if protocol == 'authors' else 'model_image')
        assert tuple(vlm.model_coord_size(EXPLORER)) == want
    assert tuple(chains['finers_mm'][0].refiner.vlm.model_coord_size(REFINER)) == (504, 504)
    assert tuple(chains['authors'][0].refiner.vlm.model_coord_size(REFINER)) == REFINER


def test_a_completion_in_the_authors_convention_returns_the_gt_in_original_pixels(chains):
    assert _errors(chains['authors']).max() < 1e-2


def test_read_by_our_convention_the_same_completion_lands_pixels_away(chains):
    errors = _errors(chains['finers_mm'])
    assert errors.max() > 1.0  # the 504 / 512 and 1932 / 1920 scales, in original pixels


def test_sft_targets_follow_the_switch(chains):
    """The targets a stage writes for SFT are in the same convention it reads."""
    for protocol, scale in (('authors', 1.0), ('finers_mm', 504 / 512)):
        vlm = chains[protocol][0].refiner.vlm
        box = vlm.frame_to_model(np.array([100.0, 200.0, 300.0, 400.0]), REFINER)
        np.testing.assert_allclose(box, np.array([100.0, 200.0, 300.0, 400.0]) * scale, rtol=1e-6)
