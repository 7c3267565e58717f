# Copyright (c) mmvan contributors. All rights reserved.
"""``--resume`` with optimizer values that differ from the checkpoint's:
one warning naming them; the run goes on with the checkpoint's.

A real (small) training run of mmvan's Runner with parameter-wise groups
(``lr_mult``, ``decay_mult``) and schedules of the learning rate and the
momentum is saved after one epoch, then resumed for a second one (slow);
the comparison itself is checked on optimizers built as the Runner builds
them, whose state is saved after some scheduled steps and loaded into a
fresh one.
"""
import itertools
import logging

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.optim import build_optim_wrapper
from mmengine.optim.scheduler import CosineAnnealingLR, LinearLR

from mmvan.engine.resume import changed_optimizer_settings, optimizer_settings
from mmvan.engine.runner import Runner

_RUNS = itertools.count()


class Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 4)
        self.bn = nn.BatchNorm1d(4)
        self.head = nn.Linear(4, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        inputs = torch.stack(inputs) if isinstance(inputs, list) else inputs
        out = self.head(self.bn(self.linear(inputs))).squeeze(1)
        if mode == 'loss':
            labels = torch.stack(labels) if isinstance(labels, list) else \
                labels
            return dict(loss=((out - labels)**2).mean())
        return out


class Data(torch.utils.data.Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        x = torch.tensor([i / 8., 1 - i / 8.])
        return dict(inputs=x, labels=x.sum())


OPTIMIZERS = dict(
    SGD=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4),
    AdamW=dict(type='AdamW', lr=1e-3, weight_decay=0.05, betas=(0.9, 0.999)))


def make_runner(work_dir, optimizer, max_epochs, resume=False):
    return Runner(
        model=Toy(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=Data(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            batch_size=4,
            num_workers=0),
        optim_wrapper=dict(
            optimizer=optimizer,
            paramwise_cfg=dict(
                norm_decay_mult=0.0,
                bias_decay_mult=0.0,
                custom_keys={'head': dict(lr_mult=0.1)})),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.1, by_epoch=False, end=1),
            dict(type='CosineAnnealingLR', T_max=4, by_epoch=False, begin=1),
            dict(type='CosineAnnealingMomentum', T_max=8, by_epoch=False)
        ],
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        resume=resume,
        randomness=dict(seed=0),
        # Its own logger (mmengine names it after the second it starts).
        experiment_name=f'resume-settings-{next(_RUNS)}',
        default_scope='mmengine')


def resumed(tmp_path, name, changes):
    """Train one epoch with ``OPTIMIZERS[name]``, then resume for a second
    one with ``changes`` made to it: the resumed runner and its warnings."""
    work_dir = tmp_path / 'work'
    make_runner(work_dir, OPTIMIZERS[name], max_epochs=1).train()
    runner = make_runner(
        work_dir, dict(OPTIMIZERS[name], **changes), max_epochs=2, resume=True)
    warnings = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())
    runner.logger.addHandler(handler)
    try:
        runner.train()
    finally:
        runner.logger.removeHandler(handler)
    assert runner.epoch == 2
    return runner, [w for w in warnings if 'optimizer values' in w]


@pytest.mark.slow
@pytest.mark.parametrize('name', ['SGD', 'AdamW'])
def test_resume_with_the_same_config_does_not_warn(tmp_path, name):
    # Parameter groups of their own lr_mult / decay_mult, schedules that
    # moved lr and momentum: none of it is a change.
    runner, warnings = resumed(tmp_path, name, {})
    assert len(runner.optim_wrapper.optimizer.param_groups) > 3
    assert warnings == []


@pytest.mark.slow
def test_resume_with_another_lr_warns_once_and_keeps_the_checkpoints(tmp_path):
    runner, warnings = resumed(tmp_path, 'SGD',
                               dict(lr=0.01, weight_decay=1e-3))
    checkpoint = tmp_path / 'work' / 'epoch_1.pth'
    (warning, ) = warnings
    assert warning.startswith(f'resume: the config sets other optimizer '
                              f'values than {checkpoint}: '), warning
    # Values of the first parameter group (the lr_mult=0.1 groups differ
    # too, by the same factor) and of the groups with weight decay.
    assert 'lr 0.1 in the checkpoint, 0.01 in the config (in all' in warning
    assert 'weight_decay 0.0001 in the checkpoint, 0.001 in the config' in \
        warning
    assert 'momentum' not in warning
    assert "continues with the checkpoint's values" in warning
    assert f'--load-from {checkpoint} (without --resume)' in warning
    # The policy: the checkpoint's values (and its schedule) go on.
    groups = runner.optim_wrapper.optimizer.param_groups
    assert sorted({g['initial_lr']
                   for g in groups}) == pytest.approx([0.01, 0.1])
    assert {g['weight_decay'] for g in groups} == {0.0, 1e-4}


def built(optimizer, steps=0):
    """The optim wrapper of ``make_runner``'s config for a :class:`Toy`,
    with its schedules built (they set 'initial_lr') and ``steps`` of
    them taken."""
    wrapper = build_optim_wrapper(
        Toy(),
        dict(
            optimizer=optimizer,
            paramwise_cfg=dict(
                norm_decay_mult=0.0,
                bias_decay_mult=0.0,
                custom_keys={'head': dict(lr_mult=0.1)})))
    schedules = [
        LinearLR(wrapper, start_factor=0.1, by_epoch=False, end=2),
        CosineAnnealingLR(wrapper, T_max=4, by_epoch=False, begin=2)
    ]
    for _ in range(steps):
        wrapper.optimizer.step()  # (no gradients: nothing moves)
        for schedule in schedules:
            schedule.step()
    return wrapper


def resume_warning(saved, configured):
    state = built(OPTIMIZERS['SGD'] | saved, steps=3).state_dict()
    fresh = built(OPTIMIZERS['SGD'] | configured)
    before = optimizer_settings(fresh)
    fresh.load_state_dict(state)
    return changed_optimizer_settings(before, optimizer_settings(fresh),
                                      'epoch_3.pth')


def test_the_comparison_of_optimizer_values():
    # Scheduled steps and lr_mult / decay_mult groups are no change.
    assert resume_warning({}, {}) is None
    warning = resume_warning({}, dict(lr=0.01, momentum=0.8))
    assert warning.startswith(
        'resume: the config sets other optimizer values than epoch_3.pth: '
        'lr 0.1 in the checkpoint, 0.01 in the config (in all 6 parameter '
        'groups; the first shown); momentum 0.9 in the checkpoint, 0.8 in '
        'the config (in all 6 parameter groups). The run continues with '
        "the checkpoint's values"), warning
    assert '--load-from epoch_3.pth (without --resume)' in warning
    # Only the groups with weight decay (decay_mult 0 for the norm and the
    # bias of 'linear').
    assert 'weight_decay 0.0001 in the checkpoint, 0.001 in the config (in ' \
        '3 of 6 parameter groups)' in resume_warning(
            {}, dict(weight_decay=1e-3))
