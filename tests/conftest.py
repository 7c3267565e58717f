# Copyright (c) mmvan contributors. All rights reserved.
"""What every test may share: the repository root, the tools as modules,
tiny VAN configs and a free port."""
import importlib.util
import os.path as osp
import socket

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# A VAN small enough for a CPU test: one block per stage.
TINY_ARCH = dict(
    embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1], mlp_ratios=[2, 2, 2, 2])


def load_tool(name, folder='analysis_tools'):
    """A tool script as a module (no ``sys.path`` edits): ``name`` in
    ``tools/<folder>``; ``folder=''`` for ``tools/`` itself."""
    path = osp.join(ROOT, 'tools', folder, f'{name}.py')
    spec = importlib.util.spec_from_file_location(
        f'mmvan_tool_{folder}_{name}', path)
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


@pytest.fixture
def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0
    and released), for a distributed launch's master port."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
