# Copyright (c) mmvan contributors. All rights reserved.
"""What the analysis tests share: the tools as modules, tiny configs and
checkpoints whose logits are known."""
import importlib.util
import os.path as osp

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_ARCH = dict(
    embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1], mlp_ratios=[2, 2, 2, 2])


def load_tool(name, folder='analysis_tools'):
    """A tool script as a module (no ``sys.path`` edits)."""
    path = osp.join(ROOT, 'tools', folder, f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'mmvan_tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_config(folder, attention='lka', kernel_size=None, base=None):
    """A classifier config with the tiny VAN, inheriting a real config:
    VAN-b0 (LKA) or LSKA-b0 on ImageNet-1k, or ``base`` (a file name in
    ``configs/van``)."""
    base = base or ('van-b0_8xb128_in1k.py'
                    if attention == 'lka' else 'van-lska-b0_8xb128_in1k.py')
    k = '' if kernel_size is None else f', kernel_size={kernel_size}'
    name = f'tiny_{attention}{kernel_size or ""}_{base}'
    path = osp.join(str(folder), name)
    arch = dict(_delete_=True, **TINY_ARCH)
    with open(path, 'w') as f:
        f.write(f"_base_ = {osp.join(ROOT, 'configs', 'van', base)!r}\n"
                f'model = dict(backbone=dict(arch={arch!r}{k}), '
                f'head=dict(in_channels=32))\n')
    return path


def constant_logit_checkpoint(config, path, bias):
    """A checkpoint of ``config``'s classifier whose logits are ``bias``
    for every image (zero head weights)."""
    from mmvan.analysis.common import random_init
    from mmvan.apis import init_model
    model = random_init(init_model(config, deploy=False))
    with torch.no_grad():
        model.head.fc.weight.zero_()
        model.head.fc.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path


@pytest.fixture(scope='session')
def root():
    return ROOT


@pytest.fixture(scope='session')
def tool():
    """``tool('erf')``: a tool script as a module."""
    return load_tool


@pytest.fixture(scope='session')
def tiny(tmp_path_factory):
    """``tiny(attention, kernel_size, base)``: the path of a tiny config."""
    folder = tmp_path_factory.mktemp('configs')
    return lambda attention='lka', kernel_size=None, base=None: tiny_config(
        folder, attention, kernel_size, base)


@pytest.fixture(scope='session')
def demo_images(tmp_path_factory):
    """A few deterministic demo texture images (64 x 64)."""
    from mmvan.datasets.demo_data import make_classification_demo
    root = str(tmp_path_factory.mktemp('demo') / 'demo_cls')
    make_classification_demo(
        root, num_train=1, num_val=1, size=64, odd_modes=False)
    return osp.join(root, 'val')


@pytest.fixture(scope='session')
def constant_checkpoint():
    """``constant_checkpoint(config, path, bias)``."""
    return constant_logit_checkpoint
