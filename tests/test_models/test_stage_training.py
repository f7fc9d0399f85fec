# Copyright (c) finers_mm contributors. All rights reserved.
"""Training losses of the two stages: SFT targets and loss, and the GRPO entry without a rollout."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope

from finers_mm.registry import DATASETS, MODELS
from finers_mm.structures.parsing import parse_completion
from finers_mm.testing import REPO_ROOT

BUNDLED = osp.join(REPO_ROOT, 'finers_mm', 'data', 'synthetic')


@pytest.fixture(scope='module')
def train_dataset():
    init_default_scope('finers_mm')
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', '_base_', 'datasets', 'finers4k.py'))
    dataset_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    dataset_cfg.update(data_root=BUNDLED + '/', ann_file='annotations/train.json')
    return DATASETS.build(dataset_cfg)


def _stage(kind, tiny_models, **kwargs):
    vlm = dict(type='Qwen25VLAdapter', pretrained=tiny_models['qwen2_5_vl'],
               generation=dict(max_new_tokens=16))
    return MODELS.build(dict(type=kind, vlm=vlm, **kwargs))


def _batch(dataset, indices):
    return pseudo_collate([dataset[i] for i in indices])


@pytest.mark.parametrize('kind', ['LocalRefiner', 'GlobalExplorer'])
def test_sft_targets_parse_and_name_the_gt_in_model_coordinates(kind, tiny_models, train_dataset):
    model = _stage(kind, tiny_models, train_mode='sft')
    data = model.data_preprocessor(_batch(train_dataset, range(len(train_dataset))), True)
    views = model.views(data['inputs'], data['data_samples'])
    for sample, view in zip(data['data_samples'], views):
        parsed = parse_completion(model.target_text(sample, view), model.stage)
        assert parsed.invalid is None and parsed.think_format_ok
        frame = (view.shape[1], view.shape[0])
        box = model.vlm.model_to_frame(np.asarray(parsed.bbox), frame)
        # integer model coordinates: within one model unit of the frame target
        unit = frame[0] / model.vlm.model_coord_size(frame)[0]
        if kind == 'LocalRefiner':
            expected = sample.gt_bbox_refiner
        else:
            expected = sample.get('best_region_explorer', None)
            expected = sample.gt_region_explorer if expected is None else expected
        if np.any(expected):
            np.testing.assert_allclose(box, expected, atol=unit)
        else:
            assert parsed.response == 'No object found' and not np.any(parsed.bbox)
        if sample.question_type == 'multiple_choice':
            assert parsed.response in sample.options
        elif sample.question_type == 'segmentation' and np.any(expected):
            assert parsed.response == 'The object is found.'


def test_choice_think_names_the_right_option_s_text_in_multiple_choice_targets(tiny_models,
                                                                                 train_dataset):
    model = _stage('GlobalExplorer', tiny_models, train_mode='sft', think_template='Locate.',
                   choice_think='Locate. {choice} is {letter}')
    data = model.data_preprocessor(_batch(train_dataset, range(len(train_dataset))), True)
    views = model.views(data['inputs'], data['data_samples'])
    kinds = set()
    for sample, view in zip(data['data_samples'], views):
        parsed = parse_completion(model.target_text(sample, view), model.stage)
        assert parsed.invalid is None
        kinds.add(sample.question_type)
        if sample.question_type == 'multiple_choice':
            # the text of the option the answer's letter stands for, then that letter
            letter = parsed.response
            assert parsed.think == f'Locate. {sample.options[letter]} is {letter}'
            assert parsed.response == model.target_response(sample)
        else:
            assert parsed.think == 'Locate.'
    assert {'multiple_choice', 'segmentation'} <= kinds


def test_sft_loss_decreases_on_a_fixed_batch(tiny_models, train_dataset):
    torch.manual_seed(0)
    model = _stage('LocalRefiner', tiny_models, train_mode='sft')
    model.train()
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=3e-3))
    batch = _batch(train_dataset, [0, 1, 2, 3])
    losses = [float(model.train_step(batch, optim)['loss'].detach()) for _ in range(8)]
    assert losses[-1] < 0.8 * losses[0], losses


def test_sft_with_lora_updates_only_the_adapter(tiny_models, train_dataset):
    vlm = dict(type='Qwen25VLAdapter', pretrained=tiny_models['qwen2_5_vl'],
               lora=dict(r=4, alpha=8, dropout=0.0))
    model = MODELS.build(dict(type='LocalRefiner', vlm=vlm, train_mode='sft')).train()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optim = OptimWrapper(torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                                         lr=1e-1))
    model.train_step(_batch(train_dataset, [0, 1]), optim)
    changed = {name for name, p in model.named_parameters()
               if not torch.equal(p.detach(), before[name])}
    assert changed and all('lora_' in name for name in changed)


def test_grpo_mode_without_a_rollout_names_the_missing_hook(tiny_models, train_dataset):
    model = _stage('LocalRefiner', tiny_models, train_mode='grpo').train()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0))
    with pytest.raises(RuntimeError, match='GRPOHook'):
        model.train_step(_batch(train_dataset, [0]), optim)


def test_bad_stage_settings_fail_at_build_time(tiny_models):
    with pytest.raises(ValueError, match='train_mode'):
        _stage('LocalRefiner', tiny_models, train_mode='ppo')
    with pytest.raises(ValueError, match='grpo_loss'):
        _stage('LocalRefiner', tiny_models, grpo_loss=dict(clip=0.3))


def test_sft_logs_the_nll_of_the_digit_tokens_beside_the_loss(tiny_models, train_dataset):
    import re
    from finers_mm.models.vlm_stage import digit_token_mask, leading_digits
    model = _stage('GlobalExplorer', tiny_models, train_mode='sft')
    data = model.data_preprocessor(_batch(train_dataset, [0, 1, 2]), True)
    views = model.views(data['inputs'], data['data_samples'])
    tokenizer = model.vlm.processor.tokenizer
    texts = [model.target_text(s, v) for s, v in zip(data['data_samples'], views)]
    for text in texts:
        ids = torch.as_tensor([tokenizer(text, add_special_tokens=False)['input_ids']])
        # Qwen tokenizers write one token per digit: every digit of the coordinates, nothing else
        digits = digit_token_mask(tokenizer, ids)
        assert int(digits.sum()) == sum(c.isdigit() for c in text)
        assert int(leading_digits(digits).sum()) == len(re.findall(r'\d+', text))
    torch.manual_seed(0)
    out = model.sft_loss(data['inputs'], data['data_samples'])
    for key in ('digit_nll', 'lead_digit_nll'):
        assert 0 < float(out[key]) and float(out[key]) != float(out['loss'])
        assert not out[key].requires_grad
    assert float(out['lead_digit_nll']) != float(out['digit_nll'])
    total, logged = model.parse_losses(out)  # logged beside, not added to, the loss
    assert torch.equal(total, out['loss']) and {'digit_nll', 'lead_digit_nll'} <= set(logged)
