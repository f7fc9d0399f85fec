# Copyright (c) finers_mm contributors. All rights reserved.
"""mmengine checkpoints save, resume and load under torch >= 2.6 once finers_mm is imported."""
import os.path as osp
import pickle
import uuid

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner, load_checkpoint
from torch.utils.data import Dataset

import finers_mm  # noqa: F401


class _Points(Dataset):
    """y = 3x - 1 with a little noise, as dicts the model's forward takes."""

    def __init__(self, length: int = 16):
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(length, 1, generator=generator)
        self.y = 3 * self.x - 1 + 0.01 * torch.randn(length, 1, generator=generator)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        return dict(inputs=self.x[index], targets=self.y[index])


class _LinearModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(1, 1)

    def forward(self, inputs, targets=None, mode='tensor'):
        out = self.linear(torch.stack(inputs) if isinstance(inputs, list) else inputs)
        if mode == 'loss':
            targets = torch.stack(targets) if isinstance(targets, list) else targets
            return dict(loss=((out - targets) ** 2).mean())
        return out


def _runner(work_dir: str, max_iters: int, resume: bool = False) -> Runner:
    return Runner(
        model=_LinearModel(),
        work_dir=work_dir,
        train_dataloader=dict(
            dataset=_Points(), sampler=dict(type='InfiniteSampler', shuffle=True),
            batch_size=4, num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
        resume=resume,
        default_scope='finers_mm',
        experiment_name=f'ckpt_{uuid.uuid4().hex}')


def test_train_save_resume_and_load(tmp_path):
    work_dir = str(tmp_path)
    first = _runner(work_dir, max_iters=2)
    first.train()
    ckpt = osp.join(work_dir, 'iter_2.pth')
    assert osp.isfile(ckpt)
    trained = {k: v.clone() for k, v in first.model.state_dict().items()}

    # torch's own default stays safe: only mmengine's loader is relaxed
    with pytest.raises(pickle.UnpicklingError):
        torch.load(ckpt)

    resumed = _runner(work_dir, max_iters=4, resume=True)
    resumed.train()
    assert resumed.iter == 4  # continued from 2, not restarted
    assert osp.isfile(osp.join(work_dir, 'iter_4.pth'))
    assert resumed.message_hub.get_info('iter') is not None

    fresh = _LinearModel()
    load_checkpoint(fresh, ckpt, map_location='cpu')
    for key, value in fresh.state_dict().items():
        torch.testing.assert_close(value, trained[key])


def test_resume_restores_model_and_optimizer_state(tmp_path):
    work_dir = str(tmp_path)
    first = _runner(work_dir, max_iters=2)
    first.train()
    resumed = _runner(work_dir, max_iters=2, resume=True)
    resumed.train()  # nothing left to train: only the resume happens
    assert resumed.iter == 2
    for key, value in resumed.model.state_dict().items():
        torch.testing.assert_close(value, first.model.state_dict()[key])
    saved = first.optim_wrapper.optimizer.state_dict()['state']
    loaded = resumed.optim_wrapper.optimizer.state_dict()['state']
    assert saved.keys() == loaded.keys() and saved
    for index in saved:
        torch.testing.assert_close(loaded[index]['momentum_buffer'], saved[index]['momentum_buffer'])
