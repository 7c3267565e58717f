# Copyright (c) mmvan contributors. All rights reserved.
"""The training fast path runs the optimizer's fused kernel on CPU: the
same updates as torch's default loop, switched off by the config."""
import copy
import os.path as osp

import pytest
import torch

from mmvan.engine.fast_path import fuse_optimizer
from mmvan.models import VAN
from mmvan.testing import TINY


def test_fuse_optimizer_asks_for_the_fused_kernel_on_cpu_only():
    cfg = dict(optimizer=dict(type='AdamW', lr=1e-3))
    assert fuse_optimizer(cfg, 'cpu') == 'fused AdamW'
    assert cfg['optimizer']['fused'] is True
    gpu = dict(optimizer=dict(type='AdamW', lr=1e-3))
    assert fuse_optimizer(gpu, 'cuda') == 'AdamW'
    assert 'fused' not in gpu['optimizer']
    # The config's own choice stands; False keeps torch's default; an
    # optimizer without a fused kernel is left alone.
    own = dict(optimizer=dict(type='AdamW', foreach=False))
    assert fuse_optimizer(own, 'cpu') == 'AdamW as configured'
    assert 'fused' not in own['optimizer']
    off = dict(optimizer=dict(type='SGD', lr=0.1))
    assert fuse_optimizer(off, 'cpu', requested=False) == 'SGD'
    assert 'fused' not in off['optimizer']
    other = dict(optimizer=dict(type='RMSprop', lr=0.1))
    assert fuse_optimizer(other, 'cpu') == 'RMSprop'
    with pytest.raises(ValueError, match='fused_optimizer'):
        fuse_optimizer(dict(optimizer=dict(type='AdamW')), 'cpu', 'yes')


@pytest.mark.parametrize('name', ['AdamW', 'SGD'])
def test_fused_step_equals_the_default_loop(name):
    """The same gradients give the same parameters (a whole model's
    gradients differ in rounding between two copies, and Adam turns the
    rounding of a near-zero gradient into a step of the full lr)."""
    torch.manual_seed(0)
    plain = VAN(arch=TINY)
    plain.init_weights()
    fused = copy.deepcopy(plain)
    kwargs = dict(lr=1e-2, weight_decay=0.05)
    if name == 'SGD':
        kwargs['momentum'] = 0.9
    opt_plain = getattr(torch.optim, name)(plain.parameters(), **kwargs)
    opt_fused = getattr(torch.optim, name)(
        fused.parameters(), fused=True, **kwargs)
    for _ in range(3):
        for a, b in zip(plain.parameters(), fused.parameters()):
            a.grad = torch.randn_like(a)
            b.grad = a.grad.clone()
        opt_plain.step()
        opt_fused.step()
    for (n, a), b in zip(plain.named_parameters(), fused.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7, msg=n)


def _runner(root, tmp_path, fused_optimizer=None):
    from mmvan.datasets import make_classification_demo
    from mmvan.engine.runner import Runner
    from mmvan.utils.config import load_config
    data = make_classification_demo(
        str(tmp_path / 'data'), num_train=4, num_val=2, size=32, seed=1)
    options = {
        'train_dataloader.dataset.data_root': data,
        'train_dataloader.num_workers': 0,
        'val_dataloader.dataset.data_root': data,
        'val_dataloader.num_workers': 0,
        'test_dataloader.dataset.data_root': data,
        'test_dataloader.num_workers': 0,
        'work_dir': str(tmp_path / 'work'),
        'log_level': 'WARNING',
    }
    cfg = load_config(
        osp.join(root, 'configs', 'van', 'van-b0_demo.py'), options)
    for loader in ('train', 'val', 'test'):
        cfg[f'{loader}_dataloader'].persistent_workers = False
    # What tools/train.py sets, and the switch.
    cfg.train_fast_path = dict(layout='auto')
    if fused_optimizer is not None:
        cfg.train_fast_path['fused_optimizer'] = fused_optimizer
    runner = Runner.from_cfg(cfg)
    return runner.build_optim_wrapper(runner.optim_wrapper).optimizer


@pytest.mark.slow
def test_train_py_runs_the_fused_optimizer_and_the_switch_turns_it_off(
        root, tmp_path):
    optimizer = _runner(root, tmp_path / 'fast')
    assert type(optimizer).__name__ == 'AdamW'
    assert optimizer.defaults['fused'] is True
    plain = _runner(root, tmp_path / 'plain', fused_optimizer=False)
    assert not plain.defaults.get('fused')
