# Copyright (c) finers_mm contributors. All rights reserved.
"""CheckpointCheckHook stops a run whose load_from / resume checkpoint fits no part of the model."""
import os.path as osp
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from finers_mm.engine.hooks.checkpoint_check_hook import CheckpointCheckHook, add_checkpoint_check
from finers_mm.registry import DATASETS, MODELS


@DATASETS.register_module(name='CheckpointCheckNumbers', force=True)
class _Numbers(Dataset):

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return dict(inputs=torch.tensor([float(index)]))


@MODELS.register_module(name='CheckpointCheckToy', force=True)
class _Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(1, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.head(torch.stack(inputs))
        return dict(loss=out.mean()) if mode == 'loss' else out


def _runner(work_dir, load_from=None, resume=False, hooks=()) -> Runner:
    """A runner built from a config, as the tools build it (the hook reads ``load_from`` there)."""
    return Runner.from_cfg(Config(dict(
        model=dict(type='CheckpointCheckToy'), work_dir=str(work_dir),
        train_dataloader=dict(dataset=dict(type='CheckpointCheckNumbers'), batch_size=2,
                              sampler=dict(type='DefaultSampler'), num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=2),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2)),
        custom_hooks=list(hooks), load_from=load_from, resume=resume,
        default_scope='finers_mm', experiment_name=f'ckpt_check_{uuid.uuid4().hex}')))


def test_a_checkpoint_of_another_model_stops_the_run_before_training(tmp_path):
    stage = tmp_path / 'iter_12.pth'
    torch.save(dict(state_dict={'vlm.model.weight': torch.zeros(4, 4)}), stage)
    runner = _runner(tmp_path / 'run', load_from=str(stage))
    add_checkpoint_check(runner)
    add_checkpoint_check(runner)  # once only
    assert sum(isinstance(hook, CheckpointCheckHook) for hook in runner.hooks) == 1
    with pytest.raises(ValueError, match=f'{stage} does not fit _Toy: it supplies 0 of its 2'):
        runner.train()
    assert runner.iter == 0 and not osp.exists(tmp_path / 'run' / 'iter_2.pth')


def test_a_fitting_checkpoint_loads_and_an_automatic_resume_is_checked(tmp_path):
    first = _runner(tmp_path / 'run', hooks=[dict(type='CheckpointCheckHook')])
    first.train()
    ckpt = tmp_path / 'run' / 'iter_2.pth'
    loaded = _runner(tmp_path / 'other', load_from=str(ckpt),
                     hooks=[dict(type='CheckpointCheckHook')])
    loaded.load_or_resume()
    torch.testing.assert_close(loaded.model.head.weight, first.model.head.weight)

    # an automatic resume picks the latest checkpoint of work_dir: the message names it
    torch.save(dict(state_dict={'vlm.model.weight': torch.zeros(4, 4)}, meta=dict(iter=2)), ckpt)
    resumed = _runner(tmp_path / 'run', resume=True, hooks=[dict(type='CheckpointCheckHook')])
    with pytest.raises(ValueError, match=f'{ckpt} does not fit _Toy'):
        resumed.train()


def test_min_fraction_zero_turns_the_check_off(tmp_path):
    stage = tmp_path / 'stage.pth'
    torch.save(dict(state_dict={'vlm.model.weight': torch.zeros(4, 4)}), stage)
    runner = _runner(tmp_path / 'run', load_from=str(stage),
                     hooks=[dict(type='CheckpointCheckHook', min_fraction=0)])
    add_checkpoint_check(runner)  # the config's own hook is kept
    runner.load_or_resume()
