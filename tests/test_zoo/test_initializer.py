# Copyright (c) mmvan contributors. All rights reserved.
"""The registered weight initializer ``mmvan.PretrainedVAN``: what a VAN
backbone's ``init_cfg=dict(type='Pretrained', ...)`` becomes, found by
mmengine from the scope of any library whose config names ``mmvan.VAN``."""
import os
import subprocess
import sys

import pytest
import torch
from mmengine.model import initialize
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import WEIGHT_INITIALIZERS as ROOT_INITIALIZERS
from mmengine.registry import DefaultScope

from mmvan.models import VAN
from mmvan.testing import TINY, randomized
from mmvan.zoo import PretrainedVAN, WeightsMismatchError

X = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))


@pytest.fixture
def source(tmp_path):
    """A tiny VAN with seeded weights and statistics, saved in the official
    format (no ``backbone.`` prefix)."""
    model = randomized(VAN(arch=TINY, out_indices=(0, 1, 2, 3)), seed=7)
    path = tmp_path / 'tiny.pth'
    torch.save({'state_dict': model.state_dict()}, path)
    return model, str(path)


def same_tensors(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize('scope', ['mmpretrain', 'mmdet', 'mmseg', 'mmpose'])
def test_pretrained_init_cfg_under_each_scope(scope, source):
    """A config of another library says ``type='mmvan.VAN'`` with
    ``init_cfg=dict(type='Pretrained', checkpoint=...)``: the backbone is
    the saved one, tensor for tensor, and the initializer it uses is
    mmvan's, found by name from that library's scope."""
    pytest.importorskip(scope)
    expected, path = source
    with DefaultScope.overwrite_default_scope(scope):
        backbone = ROOT_MODELS.build(
            dict(
                type='mmvan.VAN',
                arch=TINY,
                out_indices=(0, 1, 2, 3),
                init_cfg=dict(type='Pretrained', checkpoint=path)))
        backbone.init_weights()
        assert ROOT_INITIALIZERS.get('mmvan.PretrainedVAN') is PretrainedVAN
    assert same_tensors(backbone, expected)
    # A second call loads nothing: a changed tensor stays changed.
    with torch.no_grad():
        backbone.norm4.weight.add_(1)
    backbone.init_weights()
    assert torch.equal(backbone.norm4.weight, expected.norm4.weight + 1)


def test_loaded_backbone_survives_the_whole_model_init(source):
    """mmpretrain's classifier initialises its head and then its backbone:
    the backbone keeps the checkpoint's tensors, not the official random
    initialisation."""
    pytest.importorskip('mmpretrain')
    expected, path = source
    cfg = dict(
        type='mmpretrain.ImageClassifier',
        backbone=dict(
            type='mmvan.VAN',
            arch=TINY,
            out_indices=(3, ),
            init_cfg=dict(type='Pretrained', checkpoint=path)),
        neck=dict(type='mmpretrain.GlobalAveragePooling'),
        head=dict(
            type='mmpretrain.LinearClsHead',
            num_classes=5,
            in_channels=32,
            init_cfg=dict(type='Normal', layer='Linear', std=0.01)))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = ROOT_MODELS.build(cfg)
        model.init_weights()
    assert same_tensors(model.backbone, expected)
    assert model.backbone.init_cfg['type'] == 'Pretrained'


def test_initializer_by_name(source, tmp_path):
    """``mmvan.PretrainedVAN`` named in any module's init_cfg is a strict,
    converting load: an mmvan classifier checkpoint (``backbone.*``,
    ``head.fc.*``) fills a bare backbone; another architecture is
    refused unless ``strict=False``."""
    expected, _ = source
    path = tmp_path / 'mmvan.pth'
    sd = {'backbone.' + k: v for k, v in expected.state_dict().items()}
    sd['head.fc.weight'] = torch.zeros(5, 32)
    sd['head.fc.bias'] = torch.zeros(5)
    torch.save({'state_dict': sd, 'meta': {}}, path)
    backbone = VAN(arch=TINY, out_indices=(0, 1, 2, 3))
    initialize(backbone,
               dict(type='mmvan.PretrainedVAN', checkpoint=str(path)))
    assert same_tensors(backbone, expected)

    wider = VAN(
        arch=dict(TINY, embed_dims=[8, 16, 24, 40]), out_indices=(0, 1, 2, 3))
    with pytest.raises(WeightsMismatchError, match='shapes differ'):
        initialize(wider,
                   dict(type='mmvan.PretrainedVAN', checkpoint=str(path)))
    initialize(
        wider,
        dict(type='mmvan.PretrainedVAN', checkpoint=str(path), strict=False))
    assert torch.equal(wider.patch_embed1.proj.weight,
                       expected.patch_embed1.proj.weight)


FRESH = """
import sys
import torch
from mmengine.registry import MODELS, DefaultScope
import mmdet.registry  # noqa: F401
with DefaultScope.overwrite_default_scope('mmdet'):
    van = MODELS.build(dict(type='mmvan.VAN', arch=dict(
        embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1],
        mlp_ratios=[2, 2, 2, 2]), init_cfg=dict(type='Pretrained',
                                                checkpoint=sys.argv[1])))
    assert 'mmvan.zoo' not in sys.modules, 'the model imported the zoo'
    van.init_weights()
saved = torch.load(sys.argv[1], weights_only=True)['state_dict']
assert all(torch.equal(v, saved[k]) for k, v in van.state_dict().items())
print('loaded', len(saved))
"""


@pytest.mark.slow
def test_fresh_interpreter_finds_the_initializer(source, root):
    """Nothing imported but mmdet's registry: building ``mmvan.VAN`` does
    not import the zoo, and its ``init_weights`` finds the initializer
    through the registry's location."""
    pytest.importorskip('mmdet')
    _, path = source
    out = subprocess.run([sys.executable, '-c', FRESH, path],
                         cwd=root,
                         capture_output=True,
                         text=True,
                         timeout=300,
                         env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'loaded 148' in out.stdout
