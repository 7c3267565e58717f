# Copyright (c) mmvan contributors. All rights reserved.
"""The weights loader: URLs, zoo names and every format, checked key by key,
downloaded once over a loopback server."""
import hashlib
import io
import logging
import os
import os.path as osp
from collections import OrderedDict

import pytest
import torch
import yaml

from mmvan.models import VAN
from mmvan.testing import (TINY, loopback_server, official, randomized, to_hf,
                           to_official_seg)
from mmvan.utils.checkpoint import CheckpointError
from mmvan.zoo import WeightsMismatchError, load_pretrained, load_weights
from mmvan.zoo.download import DownloadError

X = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))

# Every test runs on a fresh cache (tests/test_zoo/conftest.py).
pytestmark = pytest.mark.usefixtures('cache')


def cached_files(home):
    """The files in the cache (the download locks left aside)."""
    return sorted(
        osp.relpath(osp.join(d, f), home) for d, _, files in os.walk(home)
        for f in files if not f.endswith('.lock'))


def to_bytes(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def features(model):
    with torch.no_grad():
        return [t.clone() for t in model.eval()(X)]


def assert_same(a, b):
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def backbone_from(ref, arch='b0', **init):
    model = VAN(
        arch=arch,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=ref, **init))
    model.init_weights()
    return model


def source_model():
    torch.manual_seed(0)
    model = randomized(VAN(arch='b0', out_indices=(0, 1, 2, 3)))
    sd = OrderedDict(model.state_dict())
    sd['head.weight'] = torch.randn(1000, 256)
    sd['head.bias'] = torch.randn(1000)
    return model, sd


def mmvan_classifier(sd):
    out = OrderedDict(('backbone.' + k, v) for k, v in sd.items()
                      if not k.startswith('head.'))
    out['head.fc.weight'] = sd['head.weight']
    out['head.fc.bias'] = sd['head.bias']
    return {'state_dict': out, 'meta': {}}


FORMATS = {
    'official': lambda sd: {
        'state_dict': sd,
        'epoch': 300
    },
    'official-seg': lambda sd: {
        'state_dict': to_official_seg(sd)
    },
    'hf': lambda sd: to_hf(sd),
    'mmvan': mmvan_classifier,
}


@pytest.mark.parametrize('fmt', sorted(FORMATS))
def test_url_in_init_cfg_loads_exactly(fmt, cache):
    model, sd = source_model()
    if fmt == 'official-seg':
        # That release's stage norms had eps 1e-5; a backbone left at the
        # default takes it over.
        model = VAN(
            arch='b0',
            out_indices=(0, 1, 2, 3),
            out_norm_cfg=dict(type='LN', eps=1e-5))
        model.load_state_dict(source_model()[0].state_dict())
    with loopback_server({'/w/ckpt.pth': to_bytes(FORMATS[fmt](sd))}) as srv:
        url = srv.url('/w/ckpt.pth')
        loaded = backbone_from(url)
        assert_same(features(loaded), features(model))
        assert srv.requests['/w/ckpt.pth'] == 1
        # A second load is served from the cache: no request.
        again = backbone_from(url)
        assert srv.requests['/w/ckpt.pth'] == 1
        assert_same(features(again), features(model))
    assert len(cached_files(cache)) == 1


def test_runner_checkpoint_keeps_the_config_eps(tmp_path):
    """A detector, segmentor or pose checkpoint written by an mmengine
    Runner has the official segmentation release's keys (``backbone.*``,
    official names) but was trained with its config's stage-norm eps: a
    load (resume, evaluation) keeps the model's, the release's 1e-5 is not
    taken over."""
    import mmengine
    model, sd = source_model()
    path = tmp_path / 'epoch_1.pth'
    torch.save(
        {
            'state_dict': to_official_seg(sd),
            'meta': {
                'mmengine_version': mmengine.__version__,
                'epoch': 1
            }
        }, path)
    loaded = backbone_from(str(path))
    assert [loaded.stage_modules(i)[2].eps for i in range(4)] == [1e-6] * 4
    assert_same(features(loaded), features(model))


def test_safetensors_from_hf(tmp_path):
    pytest.importorskip('safetensors')
    from safetensors.torch import save_file
    model, sd = source_model()
    path = tmp_path / 'model.safetensors'
    save_file({k: v.contiguous() for k, v in to_hf(sd).items()}, str(path))
    assert_same(features(backbone_from(str(path))), features(model))


class ListHandler(logging.Handler):

    def __init__(self, records):
        super().__init__()
        self.records = records

    def emit(self, record):
        self.records.append(record)


def _mmpretrain_van_tiny():
    """mmpretrain's VAN-tiny classifier as mmpretrain builds it: its own
    config file, its registry, nothing overridden."""
    from mmengine.hub import get_config
    from mmengine.registry import DefaultScope
    from mmpretrain.models import ImageClassifier
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = get_config('mmpretrain::van/van-tiny_8xb128_in1k.py')
    torch.manual_seed(0)
    # Other tests leave another default scope behind.
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    assert isinstance(model, ImageClassifier)
    randomized(model.backbone)
    model.backbone.eval()  # (mmpretrain's train() returns None)
    return model


def test_mmpretrain_state_dict_reproduces_mmpretrain(tmp_path):
    """mmpretrain's own VAN classifier as init_cfg: the features equal
    mmpretrain's, whose stage norms have eps 1e-5; a config that chose
    another eps is told, in one line, which key to set."""
    theirs = _mmpretrain_van_tiny()
    path = tmp_path / 'mmpretrain_van_tiny.pth'
    torch.save({'state_dict': theirs.state_dict(), 'meta': {}}, path)
    with torch.no_grad():
        expected = theirs.backbone(X)[-1]
    ours = VAN(
        arch='b0', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    ours.init_weights()
    got = features(ours)[-1]
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)

    chosen = VAN(arch='b0', out_norm_cfg=dict(type='LN', eps=1e-6))
    records = []
    logger = logging.getLogger('test_mmpretrain_eps')
    logger.addHandler(ListHandler(records))
    load_pretrained(
        chosen, dict(type='Pretrained', checkpoint=str(path)), logger=logger)
    lines = [r.getMessage() for r in records if 'eps' in r.getMessage()]
    assert len(lines) == 1 and records[-1].levelno == logging.WARNING
    assert "out_norm_cfg=dict(type='LN', eps=1e-05)" in lines[0]
    assert chosen.norm4.eps == 1e-6
    # The eps is visible in the features: the test would see a wrong one.
    assert (features(chosen)[-1] - expected).abs().max() > 1e-5


def test_wrong_arch_is_refused(tmp_path):
    model, sd = official(arch='b1')
    path = tmp_path / 'b1.pth'
    torch.save({'state_dict': sd}, path)
    with pytest.raises(WeightsMismatchError) as err:
        backbone_from(str(path), arch='b0')
    msg = str(err.value)
    assert 'shapes differ' in msg and 'VAN-b1' in msg
    assert 'strict=False' in msg
    # Opting out loads what fits and says how much.
    partial = backbone_from(str(path), arch='b0', strict=False)
    loaded = partial.state_dict()
    fits = [
        k for k, v in model.state_dict().items()
        if k in loaded and loaded[k].shape == v.shape
    ]
    assert fits and all(
        torch.equal(loaded[k],
                    model.state_dict()[k]) for k in fits)


def test_missing_backbone_keys_are_refused(tmp_path):
    _, sd = source_model()
    del sd['block2.0.mlp.fc1.weight']
    path = tmp_path / 'partial.pth'
    torch.save({'state_dict': sd}, path)
    with pytest.raises(
            WeightsMismatchError,
            match=r'1 of the model.s \d+ tensors are not in the '
            r'checkpoint \(block2\.0\.mlp\.fc1\.weight\)'):
        backbone_from(str(path))


def test_not_a_van_checkpoint_is_refused(tmp_path):
    path = tmp_path / 'resnet.pth'
    torch.save({'state_dict': {
        'conv1.weight': torch.zeros(64, 3, 7, 7)
    }}, path)
    with pytest.raises(WeightsMismatchError, match='unrecognised format'):
        backbone_from(str(path))


def test_404_and_cut_download_leave_nothing(cache):
    _, sd = source_model()
    body = to_bytes({'state_dict': sd})
    with loopback_server({'/cut.pth': ('cut', body)}) as srv:
        with pytest.raises(DownloadError, match='HTTP 404'):
            backbone_from(srv.url('/missing.pth'))
        with pytest.raises(
                DownloadError,
                match=rf'stopped after {len(body) // 2} of {len(body)} '
                'bytes'):
            backbone_from(srv.url('/cut.pth'))
        assert cached_files(cache) == []
        # The same URL works once the server sends the whole file.
        srv.files['/cut.pth'] = body
        backbone_from(srv.url('/cut.pth'))
        assert len(cached_files(cache)) == 1


def test_same_basename_urls_do_not_collide(cache):
    a, sd_a = source_model()
    torch.manual_seed(5)
    b = randomized(VAN(arch='b0', out_indices=(0, 1, 2, 3)), seed=5)
    with loopback_server({
            '/a/model.pth':
            to_bytes({'state_dict': sd_a}),
            '/b/model.pth':
            to_bytes({'state_dict': b.state_dict()})
    }) as srv:
        assert_same(
            features(backbone_from(srv.url('/a/model.pth'))), features(a))
        assert_same(
            features(backbone_from(srv.url('/b/model.pth'))), features(b))
    assert len(cached_files(cache)) == 2


def write_index(tmp_path, models):
    path = tmp_path / 'metafile.yml'
    path.write_text(yaml.safe_dump({'Models': models}, sort_keys=False))
    return str(path)


def test_zoo_name_sha256(tmp_path, cache, monkeypatch):
    model, sd = source_model()
    body = to_bytes({'state_dict': sd})
    digest = hashlib.sha256(body).hexdigest()
    with loopback_server({'/van.pth': body}) as srv:
        monkeypatch.setenv(
            'MMVAN_MODEL_INDEX',
            write_index(tmp_path, [
                dict(Name='good', Weights=srv.url('/van.pth'), Sha256=digest),
                dict(
                    Name='prefix',
                    Alias=['old-name'],
                    Weights=srv.url('/van.pth?copy=2'),
                    Sha256=digest[:8]),
                dict(
                    Name='bad',
                    Weights=srv.url('/van.pth?copy=3'),
                    Sha256='0' * 64),
            ]))
        srv.files['/van.pth?copy=2'] = body
        srv.files['/van.pth?copy=3'] = body
        assert_same(features(backbone_from('mmvan://good')), features(model))
        assert_same(
            features(backbone_from('mmvan://old-name')), features(model))
        with pytest.raises(DownloadError, match='sha256 is ' + digest):
            backbone_from('mmvan://bad')
        # A URL listed in the zoo is checked as its name is.
        with pytest.raises(DownloadError, match='expects 0000'):
            backbone_from(srv.url('/van.pth?copy=3'))
        assert len(cached_files(cache)) == 2
        with pytest.raises(
                CheckpointError,
                match='not in the model zoo.*'
                'Did you mean: good'):
            backbone_from('mmvan://goood')


def test_local_mirror_and_share_pages(tmp_path, cache, monkeypatch):
    model, sd = source_model()
    mirror = tmp_path / 'mirror'
    mirror.mkdir()
    torch.save({'state_dict': sd}, mirror / 'van_tiny.pth.tar')
    monkeypatch.setenv(
        'MMVAN_MODEL_INDEX',
        write_index(tmp_path, [
            dict(
                Name='shared',
                Weights='https://example.invalid/folder?e=1',
                Download='share-page',
                File='van_tiny.pth.tar')
        ]))
    with pytest.raises(CheckpointError, match='share page.*van_tiny.pth.tar'):
        backbone_from('mmvan://shared')
    monkeypatch.setenv('MMVAN_ZOO_MIRROR', str(mirror))
    assert_same(features(backbone_from('mmvan://shared')), features(model))
    assert cached_files(cache) == []


def test_whole_classifier_and_head_of_another_class_count(tmp_path):
    """load_weights into an mmpretrain ImageClassifier: every tensor, or a
    one-line note for a head with another number of classes."""
    from mmvan.apis import init_model
    model, sd = source_model()
    path = tmp_path / 'official.pth'
    torch.save({'state_dict': sd}, path)
    cfg = 'configs/van/van-b0_8xb128_in1k.py'
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    clf = init_model(osp.join(root, cfg), str(path), deploy=False)
    assert torch.equal(clf.head.fc.weight, sd['head.weight'])
    # The classifier's backbone returns the last stage.
    assert_same(features(clf.backbone), features(model)[-1:])
    other = init_model(
        osp.join(root, cfg),
        None,
        deploy=False,
        cfg_options={'model.head.num_classes': 200})
    head_before = other.head.fc.weight.clone()
    report = load_weights(other, str(path))
    assert report['head'].startswith('head: the checkpoint has 1000 '
                                     'classes, the model 200')
    assert torch.equal(other.head.fc.weight, head_before)
    assert_same(features(other.backbone), features(model)[-1:])


def test_tiny_custom_arch_round_trip(tmp_path):
    torch.manual_seed(3)
    model = randomized(VAN(arch=TINY, out_indices=(0, 1, 2, 3)))
    path = tmp_path / 'tiny.pth'
    torch.save(model.state_dict(), path)
    loaded = backbone_from(str(path), arch=TINY)
    assert_same(features(loaded), features(model))
