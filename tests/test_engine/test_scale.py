# Copyright (c) mmvan contributors. All rights reserved.
"""The effective batch's arithmetic and the refusals of tools/train.py's
--effective-batch and --ema, without training."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from torch import nn

from mmvan.engine.scale import (accumulation_for, configure_evaluation,
                                configure_training, set_effective_batch,
                                set_ema, working_batch_sizes, world_size)
from mmvan.models import VAN
from mmvan.utils.errors import UserError


def _cfg(batch=128, **extra):
    return Config(
        dict(
            train_dataloader=dict(batch_size=batch),
            optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
            train_cfg=dict(by_epoch=True, max_epochs=3),
            auto_scale_lr=dict(base_batch_size=1024),
            custom_hooks=[dict(type='mmvan.EpochSeedHook')],
            **extra))


def test_accumulation_keeps_the_recipe_batch():
    # 8 GPUs x 128 is the recipe itself; 2 x 128 needs 4 steps, 1 x 128 8.
    assert accumulation_for(1024, 8, 128) == 1
    assert accumulation_for(1024, 2, 128) == 4
    assert accumulation_for(1024, 1, 128) == 8
    assert accumulation_for(1024, 4, 64) == 4


def test_split_that_is_not_whole_lists_what_works():
    with pytest.raises(UserError) as e:
        accumulation_for(1024, 2, 96)  # 1024 / 192 = 5.33
    text = str(e.value)
    assert '5.33' in text
    # The divisors of 512 (= 1024 / 2 processes), written out by hand.
    assert ('1, 2, 4, 8, 16, 32, 64, 128, 256, 512 '
            '(train_dataloader.batch_size)') in text
    with pytest.raises(UserError) as e:
        accumulation_for(1000, 3, 10)
    assert 'do not split over 3 processes' in str(e.value)
    assert working_batch_sizes(12, 2) == [1, 2, 3, 6]


def test_effective_batch_smaller_than_one_iteration():
    with pytest.raises(UserError) as e:
        accumulation_for(128, 2, 128)
    assert 'smaller than one iteration of 2 processes x 128 images (256)' \
        in str(e.value)
    assert '1, 2, 4, 8, 16, 32, 64 (' in str(e.value)


def test_config_gets_accumulation_hook_and_loop():
    cfg = _cfg(effective_batch=1024)
    assert set_effective_batch(cfg, 1024, 2) == 4
    assert cfg.optim_wrapper.accumulative_counts == 4
    assert cfg.optim_wrapper.optimizer.lr == 1e-3  # the recipe's rate
    # Applied twice (a dumped config trained again): one hook each.
    configure_training(cfg, 'none', 'recipe', None)
    assert cfg.optim_wrapper.accumulative_counts == 8  # 1 process
    types = [h['type'] for h in cfg.custom_hooks]
    assert types.count('mmvan.EffectiveBatchHook') == 1
    assert types.count('mmvan.PreemptionHook') == 1
    configure_training(cfg, 'none', None, None)
    types = [h['type'] for h in cfg.custom_hooks]
    assert types.count('mmvan.PreemptionHook') == 1
    assert cfg.train_cfg == dict(
        type='mmvan.EpochBasedTrainLoop', max_epochs=3)


def test_world_size_from_the_launcher():
    assert world_size('none', {'WORLD_SIZE': '4'}) == 1
    assert world_size('pytorch', {'WORLD_SIZE': '4'}) == 4
    assert world_size('slurm', {'SLURM_NTASKS': '16'}) == 16


def test_auto_scale_lr_and_effective_batch_exclude_each_other():
    cfg = _cfg()
    cfg.auto_scale_lr.enable = True
    with pytest.raises(UserError, match='Use one of them'):
        set_effective_batch(cfg, 1024, 1)


def test_ema_momentum_in_mmengine_convention():
    cfg = _cfg()
    set_ema(cfg, None)
    assert cfg.custom_hooks[-1] == dict(type='mmvan.EMAHook', momentum=2e-4)
    with pytest.raises(UserError, match='momentum of 0.0002 here'):
        set_ema(cfg, 0.9998)
    # A test config keeps no EMA hook: the checkpoint's weights are chosen
    # as they load.
    configure_evaluation(cfg, 'raw')
    assert [h['type'] for h in cfg.custom_hooks
            ] == ['mmvan.EpochSeedHook', 'mmvan.CheckpointWeightsHook']


def test_accumulation_step_equals_more_processes(tiny_arch):
    """1 process x B images x A accumulation (mmengine's OptimWrapper, as
    --effective-batch sets it up) takes the same optimizer step as A
    processes x B images whose gradients are averaged (what
    DistributedDataParallel does), BatchNorms included, drop path off."""
    torch.manual_seed(0)
    net = nn.ModuleDict(
        dict(
            backbone=VAN(arch=tiny_arch, drop_path_rate=0.0),
            head=nn.Linear(32, 5)))

    def loss_of(module, x, y):
        feat = module['backbone'](x)[-1].mean((2, 3))
        return nn.functional.cross_entropy(module['head'](feat), y)

    accumulation, batch = 4, 2
    data = [(torch.randn(batch, 3, 32, 32), torch.randint(0, 5, (batch, )))
            for _ in range(accumulation)]

    # A processes: each its own batch; the gradients averaged, one step.
    grads = []
    for x, y in data:
        replica = copy.deepcopy(net)
        loss_of(replica, x, y).backward()
        grads.append([p.grad for p in replica.parameters()])
    reference = copy.deepcopy(net)
    for p, *gs in zip(reference.parameters(), *grads):
        p.grad = torch.stack(gs).mean(0)
    torch.optim.SGD(reference.parameters(), lr=0.5, momentum=0.9).step()

    # One process, the same batches one after the other, accumulated.
    accumulated = copy.deepcopy(net)
    wrapper = OptimWrapper(
        torch.optim.SGD(accumulated.parameters(), lr=0.5, momentum=0.9),
        accumulative_counts=accumulation)
    wrapper.initialize_count_status(accumulated, 0, accumulation)
    for x, y in data:
        wrapper.update_params(loss_of(accumulated, x, y))

    moved = 0
    for (name, a), b, p0 in zip(reference.named_parameters(),
                                accumulated.parameters(), net.parameters()):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6, msg=name)
        moved += int((a - p0).abs().max() > 1e-3)
    assert moved > 10  # the step moved the weights
