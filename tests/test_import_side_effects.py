# Copyright (c) mmvan contributors. All rights reserved.
"""Importing mmvan changes nothing outside it; ``register_all_modules``
switches on its extension points."""
import subprocess
import sys

import pytest

# A fresh interpreter: nothing of mmvan imported or registered before.
pytestmark = pytest.mark.slow

_SNAPSHOT = '''
import logging
import torch.serialization
from mmengine.config import config as config_module
from mmengine.config import utils as config_utils
from mmengine.fileio.backends import LocalBackend
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import CheckpointLoader


def snapshot():
    logger = MMLogger.get_current_instance()
    return dict(
        put=LocalBackend.put,
        put_text=LocalBackend.put_text,
        dump_init_info=BaseModule._dump_init_info,
        schemes=dict(CheckpointLoader._schemes),
        get_installed_path=config_module.get_installed_path,
        cfg_metainfo=config_utils._get_cfg_metainfo,
        packages=dict(config_utils.MODULE2PACKAGE),
        # torch's own modules add theirs when imported (torch._dynamo).
        safe_globals=[g for g in torch.serialization.get_safe_globals()
                      if not getattr(g, '__module__', '').startswith('torch')],
        root_handlers=list(logging.getLogger().handlers),
        mmengine_handlers=list(logger.handlers),
        mmengine_filters=list(logger.filters),
    )


def changed(before, after):
    return [key for key in before
            if before[key] != after[key]
            or any(a is not b for a, b in zip(
                before[key] if isinstance(before[key], list) else [],
                after[key] if isinstance(after[key], list) else []))]
'''

_IMPORT = _SNAPSHOT + '''
before = snapshot()
import mmvan
import mmvan.datasets
import mmvan.engine
import mmvan.models
import mmvan.registry
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules as register_mmdet
register_mmdet()
van = MODELS.build(dict(type='mmvan.VAN', arch=dict(
    embed_dims=[8, 8, 8, 8], depths=[1, 1, 1, 1], mlp_ratios=[2, 2, 2, 2])))
assert type(van).__module__ == 'mmvan.models.backbones.van', type(van)
van.init_weights()
print('changed:', changed(before, snapshot()))
'''


def _run(code, cwd=None):
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True,
                         timeout=300,
                         cwd=cwd)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_import_changes_nothing_outside_mmvan():
    """mmengine's and torch's objects are the originals after importing
    mmvan's packages and building ``mmvan.VAN`` from mmdet's scope."""
    assert _run(_IMPORT).splitlines()[-1] == 'changed: []'


def test_register_all_modules_switches_on_the_extension_points(tmp_path):
    cfg = tmp_path / 'my_van.py'
    cfg.write_text("_base_ = 'mmvan::van/van-b0_8xb128_in1k.py'\n"
                   "model = dict(backbone=dict(arch='b1'))\n")
    code = _SNAPSHOT + f'''
import os
import torch
from mmengine.config import Config
from mmengine.runner.checkpoint import save_checkpoint
from mmvan.apis import register_all_modules
from mmvan.utils.atomic import atomic_backend_args
before = snapshot()
register_all_modules()
register_all_modules()  # again: nothing more
after = snapshot()
# mmengine's local backend is left as it is.
assert after['put'] is before['put']
assert after['put_text'] is before['put_text']
assert after['dump_init_info'] is before['dump_init_info']
assert 'mmvan://' in CheckpointLoader._schemes
assert len(after['mmengine_filters']) == len(before['mmengine_filters']) + 1
# A checkpoint saved through the atomic backend is renamed into place.
renames = []
replace = os.replace
os.replace = lambda src, dst: renames.append((src, dst)) or replace(src, dst)
path = {str(tmp_path / 'epoch_1.pth')!r}
save_checkpoint(dict(state_dict=dict(w=torch.ones(2))), path,
                backend_args=atomic_backend_args())
os.replace = replace
[(src, dst)] = renames
assert dst == path and os.path.basename(src).startswith('.epoch_1.pth.')
assert torch.load(path)['state_dict']['w'].sum() == 2
# mmvan:: inheritance.
cfg = Config.fromfile({str(cfg)!r})
assert cfg.model.backbone.type == 'mmvan.VAN'
assert cfg.model.backbone.arch == 'b1'
print('ok')
'''
    assert _run(code, cwd=str(tmp_path)).splitlines()[-1] == 'ok'
