# Copyright (c) mmvan contributors. All rights reserved.
import argparse
import glob
import os
import os.path as osp
import re
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch

from mmvan.converters import ConversionError, convert_state_dict
from mmvan.models import VAN
from mmvan.testing import (official, randomized, to_hf, to_lska_mm,
                           to_official_seg)
from mmvan.utils import CheckpointError


@pytest.fixture(scope='module')
def van2mmvan(tool):
    return tool('van2mmvan', 'model_converters')


@pytest.fixture
def convert_file(tmp_path, van2mmvan):
    """``convert_file(obj, *args)``: ``obj`` saved and converted in
    ``tmp_path``; the source, the converted checkpoint and its path."""

    def convert(obj, *args):
        src = tmp_path / 'src.pth'
        torch.save(obj, src)
        out_dir = tmp_path / 'out'
        path = van2mmvan.main([str(src), str(out_dir), *args])
        return src, torch.load(path, weights_only=True), path

    return convert


def assert_same_backbone(model, converted):
    ours = VAN(
        arch=model.arch_settings,
        attention=model.attention,
        kernel_size=model.kernel_size).eval()
    backbone = {
        k[len('backbone.'):]: v
        for k, v in converted['state_dict'].items()
        if k.startswith('backbone.')
    }
    ours.load_state_dict(backbone, strict=True)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(model(x), ours(x)):
            assert torch.equal(a, b)


def test_official_classification(convert_file):
    model, sd = official()
    timm_style = {
        'state_dict': sd,
        'epoch': 309,
        'arch': 'van_b0',
        'args': argparse.Namespace(lr=1e-3, model='van_b0')
    }
    src, out, path = convert_file(timm_style, '--verify')
    assert out['meta']['source_format'] == 'official'
    assert out['meta']['arch']['arch'] == 'b0'
    assert out['meta']['arch']['num_classes'] == 1000
    assert torch.equal(out['state_dict']['head.fc.weight'], sd['head.weight'])
    assert_same_backbone(model, out)
    assert re.search(r'van-b0_3rdparty_in1k-[0-9a-f]{8}\.pth$', path)
    import hashlib
    digest = hashlib.sha256(open(path, 'rb').read()).hexdigest()
    assert osp.basename(path).endswith(digest[:8] + '.pth')
    assert out['meta']['source_sha256'] == hashlib.sha256(
        src.read_bytes()).hexdigest()


@pytest.mark.parametrize('k', [23, 7, 53])
def test_official_lska_classification(k, convert_file):
    model, sd = official('lska', 'b0', k)
    _, out, path = convert_file({'state_dict': sd})
    assert out['meta']['arch']['attention'] == 'lska'
    assert out['meta']['arch']['kernel_size'] == k
    assert (f'van-lska-b0-k{k}_' if k != 23 else 'van-lska-b0_') in path
    assert_same_backbone(model, out)


def test_official_segmentation_backbone(convert_file):
    model, sd = official(arch='b1')
    src_sd = to_official_seg(sd)
    with pytest.raises(ConversionError, match='--task backbone'):
        convert_file({'state_dict': src_sd, 'meta': {}})
    _, out, path = convert_file({
        'state_dict': src_sd,
        'meta': {}
    }, '--task', 'backbone', '--verify')
    assert out['meta']['source_format'] == 'official-seg'
    assert out['meta']['arch']['out_norm_eps'] == 1e-5
    assert all(k.startswith('backbone.') for k in out['state_dict'])
    assert len(out['meta']['dropped_keys']) == 2
    assert 'backbone' in osp.basename(path)
    assert_same_backbone(model, out)


def test_converted_file_keeps_its_norm_eps(convert_file):
    """The segmentation release's stage-norm eps travels with the converted
    file: a backbone built with the default adopts it, one whose config
    chose an eps keeps it."""
    _, sd = official(arch='b0')
    _, _, path = convert_file({'state_dict': to_official_seg(sd)}, '--task',
                              'backbone')
    init = dict(type='Pretrained', checkpoint=path)
    default = VAN(arch='b0', init_cfg=init)
    default.init_weights()
    assert [default.stage_modules(i)[2].eps for i in range(4)] == [1e-5] * 4
    chosen = VAN(
        arch='b0', out_norm_cfg=dict(type='LN', eps=1e-6), init_cfg=init)
    chosen.init_weights()
    assert chosen.norm1.eps == 1e-6


def test_lska_mmdet_mmseg_backbone(convert_file):
    model, sd = official('lska', 'b0', 35)
    _, out, _ = convert_file({'state_dict': to_lska_mm(sd)}, '--task',
                             'backbone')
    assert out['meta']['source_format'] == 'lska-mm'
    assert out['meta']['arch']['kernel_size'] == 35
    assert_same_backbone(model, out)


@pytest.mark.parametrize('with_head', [True, False])
def test_hf_transformers(with_head, convert_file):
    model, sd = official(arch='b0')
    hf = to_hf(sd)
    if not with_head:
        hf = OrderedDict(
            (k, v) for k, v in hf.items() if not k.startswith('classifier.'))
        hf = OrderedDict((k[len('van.'):], v) for k, v in hf.items())
    args = [] if with_head else ['--task', 'backbone']
    _, out, _ = convert_file(hf, *args)
    assert out['meta']['source_format'] == 'hf'
    assert out['meta']['dropped_keys'] == [
        'van.layernorm.weight', 'van.layernorm.bias'
    ] if with_head else ['layernorm.weight', 'layernorm.bias']
    assert_same_backbone(model, out)


@pytest.mark.slow
@pytest.mark.parametrize('arch', ['tiny', 'base'])
def test_mmpretrain_classifier(tmp_path, arch, root):
    from mmpretrain.models.backbones import VAN as MMPretrainVAN
    theirs = MMPretrainVAN(arch=arch, norm_cfg=dict(type='LN', eps=1e-6))
    randomized(theirs)
    sd = OrderedDict(
        ('backbone.' + k, v) for k, v in theirs.state_dict().items())
    c = 256 if arch == 'tiny' else 512
    sd['head.fc.weight'] = torch.randn(1000, c)
    sd['head.fc.bias'] = torch.randn(1000)
    src = tmp_path / 'mmp.pth'
    torch.save({'state_dict': sd, 'meta': {'epoch': 1}}, src)
    out = subprocess.run([
        sys.executable, 'tools/model_converters/van2mmvan.py',
        str(src),
        str(tmp_path / 'o'), '--verify'
    ],
                         cwd=root,
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'format: mmpretrain' in out.stdout
    diff = float(
        re.search(r'max \|mmvan - mmpretrain\| .* = (\S+)', out.stdout)[1])
    assert diff <= 1e-5
    path = glob.glob(str(tmp_path / 'o' / '*.pth'))[0]
    converted = torch.load(path, weights_only=True)
    ours = VAN(arch=arch, out_norm_cfg=dict(type='LN', eps=1e-6)).eval()
    ours.load_state_dict({
        k[len('backbone.'):]: v
        for k, v in converted['state_dict'].items()
        if k.startswith('backbone.')
    })
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x)[0] - theirs(x)[0]).abs().max() <= 1e-5


def _no_outputs(tmp_path):
    out_dir = tmp_path / 'out'
    return not out_dir.exists() or not os.listdir(out_dir)


def test_unknown_and_missing_keys_write_nothing(tmp_path, convert_file):
    _, sd = official()
    extra = OrderedDict(sd)
    extra['block1.0.attn.surprise.weight'] = torch.ones(1)
    with pytest.raises(ConversionError, match='surprise'):
        convert_file({'state_dict': extra})
    assert _no_outputs(tmp_path)
    missing = OrderedDict(sd)
    del missing['block2.1.mlp.fc2.weight']
    with pytest.raises(ConversionError, match='block2.1.mlp.fc2.weight'):
        convert_file({'state_dict': missing})
    assert _no_outputs(tmp_path)
    wrong = OrderedDict(sd)
    wrong['block1.0.mlp.fc2.bias'] = torch.ones(3)
    with pytest.raises(ConversionError, match='shapes differ'):
        convert_state_dict(wrong)
    with pytest.raises(ConversionError, match='Unknown checkpoint format'):
        convert_state_dict({'conv.weight': torch.ones(1)})


@pytest.mark.slow
def test_truncated_and_unsafe_sources(tmp_path, van2mmvan, root):
    _, sd = official()
    src = tmp_path / 'src.pth'
    torch.save({'state_dict': sd}, src)
    data = src.read_bytes()
    src.write_bytes(data[:len(data) // 3])
    with pytest.raises(CheckpointError, match='truncated'):
        van2mmvan.main([str(src), str(tmp_path / 'out')])
    assert _no_outputs(tmp_path)

    class Exploit:

        def __reduce__(self):
            return (os.system, (f'touch {tmp_path}/pwned', ))

    torch.save({'state_dict': sd, 'x': Exploit()}, src)
    out = subprocess.run([
        sys.executable, 'tools/model_converters/van2mmvan.py',
        str(src),
        str(tmp_path / 'out')
    ],
                         cwd=root,
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert out.returncode == 2
    assert 'Refused to load' in out.stderr and 'Traceback' not in out.stderr
    assert not (tmp_path / 'pwned').exists()
    assert _no_outputs(tmp_path)


def test_never_overwrites_source(tmp_path, van2mmvan):
    _, sd = official()
    src = tmp_path / 'van.pth'
    torch.save({'state_dict': sd}, src)
    before = src.read_bytes()
    path = van2mmvan.main([str(src), str(tmp_path / 'van.pth')])
    assert path != str(src) and src.read_bytes() == before


def test_converted_checkpoint_initialises_backbone(convert_file):
    """The backbone checkpoint initialises a detector/segmentor backbone via
    init_cfg with prefix='backbone.'."""
    model, sd = official()
    _, out, path = convert_file({'state_dict': sd}, '--task', 'backbone')
    fresh = VAN(
        arch='b0',
        init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    fresh.init_weights()
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k


@pytest.mark.slow
def test_nonfinite_destination_errors_and_mode(tmp_path, convert_file, root):
    _, sd = official()
    sd['block1.0.mlp.fc1.weight'][0, 0] = float('nan')
    with pytest.raises(ConversionError, match='NaN or inf.*allow-nonfinite'):
        convert_file({'state_dict': sd})
    assert _no_outputs(tmp_path)
    _, out, path = convert_file({'state_dict': sd}, '--allow-nonfinite')
    assert torch.isnan(
        out['state_dict']['backbone.block1.0.mlp.fc1.weight'][0, 0])
    # The output's mode follows the umask, as any new file's would.
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask
    # A destination under a file: one error line, nothing written.
    blocker = tmp_path / 'blocker'
    blocker.write_text('x')
    src = tmp_path / 'ok.pth'
    _, sd = official()
    torch.save({'state_dict': sd}, src)
    out = subprocess.run([
        sys.executable, 'tools/model_converters/van2mmvan.py',
        str(src),
        str(blocker / 'out' / 'van.pth')
    ],
                         cwd=root,
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert out.returncode == 2 and 'Traceback' not in out.stderr
    assert 'error: cannot write' in out.stderr and 'not a folder' in \
        out.stderr
    assert blocker.read_text() == 'x'


def test_random_bytes_are_unreadable_not_unsafe(tmp_path, van2mmvan):
    src = tmp_path / 'noise.pth'
    src.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError) as err:
        van2mmvan.main([str(src), str(tmp_path / 'out')])
    assert 'unreadable' in str(err.value) or 'corrupt' in str(err.value)
    assert 'Refused' not in str(err.value)
