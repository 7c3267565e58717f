# Copyright (c) mmvan contributors. All rights reserved.
"""What every test may share: the repository root, the tools as modules,
tiny VAN configs and a free port; ``@pytest.mark.configs(...)`` to
parametrize a test over config files."""
import copy
import glob
import importlib.util
import os.path as osp
import socket

import pytest

from mmvan.apis import register_all_modules
from mmvan.testing import TINY

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# The one tiny VAN (``TINY``, one block per stage) and the one BatchNorm
# randomiser (``randomize_statistics`` / ``randomized``) live in
# mmvan.testing, where test modules and the scripts that tests start can
# import them.


def tiny_config(folder, attention='lka', kernel_size=None, base=None):
    """A classifier config with the tiny VAN, inheriting a real config:
    VAN-b0 (LKA) or LSKA-b0 on ImageNet-1k, or ``base`` (a file name in
    ``configs/van``)."""
    base = base or ('van-b0_8xb128_in1k.py'
                    if attention == 'lka' else 'van-lska-b0_8xb128_in1k.py')
    k = '' if kernel_size is None else f', kernel_size={kernel_size}'
    name = f'tiny_{attention}{kernel_size or ""}_{base}'
    path = osp.join(str(folder), name)
    arch = dict(_delete_=True, **TINY)
    with open(path, 'w') as f:
        f.write(f"_base_ = {osp.join(ROOT, 'configs', 'van', base)!r}\n"
                f'model = dict(backbone=dict(arch={arch!r}{k}), '
                f'head=dict(in_channels=32))\n')
    return path


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'configs(*patterns): parametrize the argument ``path`` '
        'with the files under configs/ that match each pattern (each '
        'pattern\'s files sorted, in the order of the patterns)')


def pytest_generate_tests(metafunc):
    """``@pytest.mark.configs('van/*.py')``: the test runs once per config
    file, ``path`` its absolute path, named by its file name; at collection
    time, where the ``root`` fixture cannot serve."""
    marker = metafunc.definition.get_closest_marker('configs')
    if marker is None:
        return
    paths = [
        path for pattern in marker.args
        for path in sorted(glob.glob(osp.join(ROOT, 'configs', pattern)))
    ]
    assert paths, f'no config matches {marker.args}'
    metafunc.parametrize('path', paths, ids=osp.basename)


@pytest.fixture(autouse=True, scope='session')
def mmvan_extension_points():
    """Tests run as the tools do (``run_cli``): with mmvan's extension
    points switched on (the safe loader's allow-list that reading
    mmengine's checkpoints with ``torch.load`` needs, the ``mmvan://``
    scheme, ``mmvan::`` configs). Importing mmvan alone switches nothing
    on (tests/test_import_side_effects.py)."""
    register_all_modules()


@pytest.fixture(scope='session')
def root():
    return ROOT


@pytest.fixture(scope='session')
def tool():
    """``tool(name, folder='analysis_tools', base='tools')``: the script
    ``<base>/<folder>/<name>.py`` as a module, without ``sys.path`` edits
    (``folder=''`` for ``tools/`` itself; ``base='demo'`` with
    ``folder=''`` for the scripts in ``demo/``)."""

    def load(name, folder='analysis_tools', base='tools'):
        path = osp.join(ROOT, base, folder, f'{name}.py')
        prefix = 'mmvan_tool' if base == 'tools' else f'mmvan_{base}'
        spec = importlib.util.spec_from_file_location(
            f'{prefix}_{folder}_{name}', path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def tiny_arch():
    """``TINY`` (a copy): VAN's ``arch`` for a CPU test."""
    return copy.deepcopy(TINY)


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
