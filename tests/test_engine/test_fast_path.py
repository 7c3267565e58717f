# Copyright (c) mmvan contributors. All rights reserved.
"""The training fast path that tools/train.py takes: channels-last VAN on
CPU, the same loss and gradients as the plain path."""
import copy
import os.path as osp

import pytest
import torch

from mmvan.datasets import make_classification_demo
from mmvan.engine.fast_path import choose_layout, uses_channels_last


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('data') / 'demo'
    return make_classification_demo(
        str(root), num_train=8, num_val=4, size=32, seed=1)


def build_runner(config, tmp_path, data_root, layout='default'):
    """A runner built as tools/train.py builds it."""
    import sys
    sys.argv = ['train.py']
    from mmvan import cli
    from mmvan.engine.runner import Runner
    options = {
        'train_dataloader.dataset.data_root': data_root,
        'train_dataloader.num_workers': 0,
        'train_dataloader.batch_size': 4,
        'val_dataloader.dataset.data_root': data_root,
        'val_dataloader.num_workers': 0,
        'test_dataloader.dataset.data_root': data_root,
        'test_dataloader.num_workers': 0,
        'work_dir': str(tmp_path),
    }
    if layout != 'default':
        options['train_fast_path.layout'] = layout
    cfg = cli.load_config(config, options)
    cfg.train_dataloader.persistent_workers = False
    cfg.val_dataloader.persistent_workers = False
    cfg.test_dataloader.persistent_workers = False
    # What tools/train.py adds.
    if cfg.get('train_fast_path', 'unset') == 'unset':
        cfg.train_fast_path = dict(layout='auto')
    return Runner.from_cfg(cfg)


@pytest.fixture(scope='module')
def runners(root, tmp_path_factory, data_root):
    config = osp.join(root, 'configs', 'van', 'van-b0_demo.py')
    tmp = tmp_path_factory.mktemp('runs')
    return (build_runner(config, tmp / 'fast', data_root),
            build_runner(
                config, tmp / 'plain', data_root, layout='contiguous'))


@pytest.mark.slow
def test_train_py_takes_the_fast_path_on_cpu(runners):
    assert choose_layout('cpu') == 'channels_last'
    assert choose_layout('cuda') == 'contiguous'
    fast, plain = runners
    assert uses_channels_last(fast.model)
    w = fast.model.backbone.patch_embed1.proj.weight
    assert w.is_contiguous(memory_format=torch.channels_last)
    assert not w.is_contiguous()
    # The switch turns it off.
    assert not uses_channels_last(plain.model)
    assert plain.model.backbone.patch_embed1.proj.weight.is_contiguous()


def _loss_and_grads(model, batch):
    model.zero_grad()
    data = model.data_preprocessor(copy.deepcopy(batch), True)
    losses = model(**data, mode='loss')
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    loss.backward()
    return loss.detach(), {
        n: p.grad.detach().clone()
        for n, p in model.named_parameters() if p.grad is not None
    }


@pytest.mark.slow
def test_fast_path_gradients_equal_plain(runners):
    fast, plain = runners
    torch.manual_seed(0)
    plain.model.init_weights()
    fast.model.load_state_dict(plain.model.state_dict())
    fast.model.train()
    plain.model.train()
    batch = next(iter(plain.build_dataloader(plain.cfg.train_dataloader)))
    weight = fast.model.backbone.patch_embed1.proj.weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    loss_f, grads_f = _loss_and_grads(fast.model, batch)
    loss_p, grads_p = _loss_and_grads(plain.model, batch)
    torch.testing.assert_close(loss_f, loss_p, rtol=1e-5, atol=1e-6)
    assert grads_f.keys() == grads_p.keys() and len(grads_f) > 100
    for name in grads_p:
        torch.testing.assert_close(
            grads_f[name], grads_p[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.slow
def test_compiled_block_gradients_equal_eager():
    """``--compile``: a VAN block as the fast path runs it (channels-last,
    LKA's dilated convolution on its phase grids) goes through
    torch.compile's graph capture and autograd and gives eager's output and
    gradients. ``aot_eager`` runs the captured graphs with torch's own
    kernels: no C++ compile (inductor takes minutes on a CPU; on CUDA the
    whole classifier was checked by hand, docs/benchmark.md)."""
    from mmvan.models.backbones.van import VANBlock
    torch.manual_seed(0)
    block = VANBlock(16, mlp_ratio=2).to(memory_format=torch.channels_last)
    x = torch.randn(2, 16, 13,
                    11).contiguous(memory_format=torch.channels_last)

    def output_and_grads(module):
        module.zero_grad()
        inp = x.clone().requires_grad_()
        out = module(inp)
        out.square().sum().backward()
        return out.detach(), inp.grad, {
            n: p.grad.clone()
            for n, p in block.named_parameters()
        }

    out_e, dx_e, grads_e = output_and_grads(block)
    torch._dynamo.reset()
    out_c, dx_c, grads_c = output_and_grads(
        torch.compile(block, backend='aot_eager'))
    torch.testing.assert_close(out_c, out_e, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(dx_c, dx_e, rtol=1e-4, atol=1e-5)
    assert len(grads_e) > 10
    for name, grad in grads_e.items():
        torch.testing.assert_close(
            grads_c[name], grad, rtol=1e-4, atol=1e-5, msg=name)
