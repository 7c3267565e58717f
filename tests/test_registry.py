# Copyright (c) mmvan contributors. All rights reserved.
import subprocess
import sys

import pytest
import torch.nn as nn
from mmengine.registry import DefaultScope

from mmvan.registry import MODELS


@MODELS.register_module(name='RegistryProbe', force=True)
class RegistryProbe(nn.Module):
    """A tiny module registered only for these tests."""

    def __init__(self, width=2):
        super().__init__()
        self.width = width


def scoped_registries():
    from mmdet.registry import MODELS as DET_MODELS
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS
    from mmseg.registry import MODELS as SEG_MODELS
    return {
        'mmpretrain': PRETRAIN_MODELS,
        'mmdet': DET_MODELS,
        'mmseg': SEG_MODELS
    }


def test_registry_is_child_of_mmengine_root():
    from mmengine.registry import MODELS as ROOT
    assert MODELS.parent is ROOT
    assert MODELS.scope == 'mmvan'
    assert ROOT.children['mmvan'] is MODELS


@pytest.mark.parametrize('scope', ['mmpretrain', 'mmdet', 'mmseg'])
def test_build_from_other_scopes(scope):
    registry = scoped_registries()[scope]
    probe = registry.build(dict(type='mmvan.RegistryProbe', width=3))
    assert isinstance(probe, RegistryProbe) and probe.width == 3
    # The same from inside a runner's default scope.
    with DefaultScope.overwrite_default_scope(scope):
        probe = registry.build(dict(type='mmvan.RegistryProbe'))
    assert isinstance(probe, RegistryProbe)


@pytest.mark.slow
@pytest.mark.parametrize('scope', ['mmpretrain', 'mmdet', 'mmseg'])
def test_backbone_reachable_without_importing_mmvan(scope):
    """A config under another library's scope needs no custom_imports: the
    registry's ``locations`` import mmvan on first use."""
    code = f"""
import sys
from {scope}.registry import MODELS
from {scope}.utils import register_all_modules
register_all_modules()
assert 'mmvan' not in sys.modules
m = MODELS.build(dict(type='mmvan.VAN', arch=dict(
    embed_dims=[8, 8, 8, 8], depths=[1, 1, 1, 1], mlp_ratios=[2, 2, 2, 2])))
assert type(m).__module__ == 'mmvan.models.backbones.van', type(m)
print('ok')
"""
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith('ok')


def test_bare_type_is_not_ours_under_mmpretrain():
    """Why configs must say ``mmvan.VAN``: a bare ``VAN`` under the
    mmpretrain scope is mmpretrain's own implementation."""
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS

    from mmvan.models import VAN
    theirs = PRETRAIN_MODELS.get('VAN')
    assert theirs is not None and theirs is not VAN
    assert PRETRAIN_MODELS.get('mmvan.VAN') is VAN
