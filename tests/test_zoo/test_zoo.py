# Copyright (c) mmvan contributors. All rights reserved.
"""The model zoo: every metafile entry listed, classification entries
built, and validate_zoo's table on a tiny ImageNet-layout set."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from mmvan.apis import get_model, list_models
from mmvan.testing import loopback_server
from mmvan.utils.errors import CheckpointError
from mmvan.zoo import find_model, load_index

# Only for the parametrization below, at collection time, where the root
# fixture cannot serve; the tests use the fixture.
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def metafile_entries(root):
    """Every model entry, read straight from the metafiles."""
    entries = []
    for path in sorted(
            glob.glob(osp.join(root, 'configs', '*', 'metafile.yml'))):
        with open(path) as f:
            entries += yaml.safe_load(f)['Models']
    return entries


def test_model_index_imports_every_metafile(root):
    with open(osp.join(root, 'model-index.yml')) as f:
        imported = yaml.safe_load(f)['Import']
    found = glob.glob(osp.join(root, 'configs', '*', 'metafile.yml'))
    assert sorted(imported) == sorted(osp.relpath(p, root) for p in found)


def test_list_models_lists_every_entry(root):
    names = [e['Name'] for e in metafile_entries(root)]
    assert len(names) == len(set(names))
    assert list_models() == sorted(names)
    assert list_models('van-b2_*') == sorted(
        n for n in names if n.startswith('van-b2_'))
    assert 'van-b0_3rdparty_in1k' in list_models('b0_3rdparty')
    cls = list_models(task='Image Classification')
    assert cls and all(
        find_model(n).task == 'Image Classification' for n in cls)


def test_entries_are_complete(root):
    for e in metafile_entries(root):
        assert osp.isfile(osp.join(root, e['Config'])), e['Name']
        if e.get('Weights'):
            assert e['Weights'].startswith('https://'), e['Name']
        if e.get('Sha256'):
            assert len(str(e['Sha256'])) in (8, 64), e['Name']
            int(str(e['Sha256']), 16)
    # Old spellings still resolve.
    assert find_model('van-t_3rdparty_in1k').name == 'van-b0_3rdparty_in1k'
    assert find_model('van-base_3rdparty_in1k').name == \
        'van-b2_3rdparty-mmpretrain_in1k'


@pytest.mark.slow
def test_configs_start_from_zoo_names(root):
    """Every config that starts from pretrained weights names a zoo entry."""
    from mmengine.config import Config
    names = set()
    for e in load_index():
        names.update((e.name, *e.aliases))
    used = 0
    for path in glob.glob(osp.join(root, 'configs', '*', '*.py')):
        if '_base_' in path:
            continue
        backbone = Config.fromfile(path).model.get('backbone', {})
        init = backbone.get('init_cfg') or {}
        if init.get('type') == 'Pretrained':
            ref = init['checkpoint']
            assert ref.startswith('mmvan://'), path
            assert ref[len('mmvan://'):] in names, path
            used += 1
    assert used >= 40


@pytest.mark.parametrize('name', [
    n for n in (e['Name'] for e in metafile_entries(ROOT))
    if find_model(n).task == 'Image Classification'
])
def test_get_model_builds_each_classification_entry(name):
    info = find_model(name)
    with torch.device('meta'):
        model = get_model(name, device='meta')
    assert model.task == 'cls'
    # The head has the class count of the config the entry names.
    from mmengine.config import Config
    cfg = Config.fromfile(info.config)
    assert model.head.fc.out_features == cfg.model.head.num_classes
    expected = cfg.model.backbone.get('attention', 'lka')
    assert model.backbone.attention == expected


def test_get_model_pretrained_from_a_served_file(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'th'))
    torch.manual_seed(0)
    source = get_model('van-b0_3rdparty_in1k')
    source.init_weights()
    body = tmp_path / 'b0.pth'
    torch.save({'state_dict': source.state_dict()}, body)
    with loopback_server({'/b0.pth': body.read_bytes()}) as srv:
        model = get_model(
            'van-b0_3rdparty_in1k', pretrained=srv.url('/b0.pth'))
    for k, v in source.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def _imagenet_like(root, labels):
    """An ImageNet-layout val split: val/*.JPEG and meta/val.txt."""
    (root / 'val').mkdir(parents=True)
    (root / 'meta').mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for i, label in enumerate(labels):
        name = f'ILSVRC2012_val_{i:08d}.JPEG'
        Image.fromarray(rng.integers(0, 255, (60, 80, 3),
                                     np.uint8)).save(root / 'val' / name)
        lines.append(f'{name} {label}')
    (root / 'meta' / 'val.txt').write_text('\n'.join(lines) + '\n')


@pytest.mark.slow
def test_validate_zoo_table(tmp_path, root):
    """A served b0 checkpoint whose head always answers class 3, on 8
    images of which 4 are class 3: top-1 is 50 % by hand."""
    from mmvan.apis import init_model
    cfg = osp.join(root, 'configs', 'van', 'van-b0_8xb128_in1k.py')
    model = init_model(cfg, deploy=False)
    model.init_weights()
    with torch.no_grad():
        model.head.fc.weight.zero_()
        model.head.fc.bias.zero_()
        model.head.fc.bias[3] = 100.
    ckpt = tmp_path / 'b0.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    data = tmp_path / 'imagenet'
    _imagenet_like(data, [3, 1, 3, 1, 3, 1, 3, 1])
    with loopback_server({
            '/b0.pth': ckpt.read_bytes(),
            '/b0.pth?again': ckpt.read_bytes()
    }) as srv:
        models = [
            dict(
                Name='tiny-pass',
                Config=cfg,
                Weights=srv.url('/b0.pth'),
                Results=[
                    dict(
                        Task='Image Classification',
                        Dataset='ImageNet-1k',
                        Metrics={'Top 1 Accuracy': 50.0})
                ]),
            dict(
                Name='tiny-fail',
                Config=cfg,
                Weights=srv.url('/b0.pth?again'),
                Results=[
                    dict(
                        Task='Image Classification',
                        Dataset='ImageNet-1k',
                        Metrics={'Top 1 Accuracy': 75.0})
                ]),
            dict(
                Name='tiny-det',
                Config=osp.join(root, 'configs', 'retinanet',
                                'retinanet_van-b0_fpn_1x_coco.py'),
                Results=[
                    dict(
                        Task='Object Detection',
                        Dataset='COCO',
                        Metrics={'box AP': 38.8})
                ]),
        ]
        index = tmp_path / 'metafile.yml'
        index.write_text(yaml.safe_dump({'Models': models}))
        out_dir = tmp_path / 'out'
        proc = subprocess.run([
            sys.executable, 'tools/analysis_tools/validate_zoo.py',
            '--data-root',
            str(data), '--metafile',
            str(index), '--out-dir',
            str(out_dir), '--num-workers', '0', '--batch-size', '4'
        ],
                              cwd=root,
                              capture_output=True,
                              text=True,
                              timeout=600,
                              env=dict(
                                  os.environ, TORCH_HOME=str(tmp_path / 'th')))
    assert proc.returncode == 1, proc.stderr[-3000:]
    rows = {
        r['model']: r
        for r in json.loads((out_dir /
                             'validate_zoo.json').read_text())['models']
    }
    assert rows['tiny-pass']['measured'] == pytest.approx(50.0)
    assert rows['tiny-pass']['status'] == 'pass'
    assert rows['tiny-fail']['status'] == 'fail'
    assert rows['tiny-fail']['diff'] == pytest.approx(-25.0)
    assert rows['tiny-det']['status'] == 'skipped'
    assert '--coco-root' in rows['tiny-det']['reason']
    table = proc.stdout
    assert 'tiny-pass' in table and '1 pass, 1 fail, 0 error, 1 skipped' \
        in table
    assert (out_dir / 'validate_zoo.md').read_text().count('| tiny-') == 3
    assert 'Traceback' not in proc.stderr


def test_index_follows_edits_and_names_a_missing_metafile(tmp_path):
    index = tmp_path / 'model-index.yml'
    meta = tmp_path / 'configs' / 'x' / 'metafile.yml'
    index.write_text('Import:\n  - configs/x/metafile.yml\n')
    with pytest.raises(CheckpointError, match=r'names .*metafile.yml, which'):
        load_index(str(index))
    meta.parent.mkdir(parents=True)
    meta.write_text('Models: []\n')
    assert load_index(str(index)) == []
    # A metafile that held no entry is read again once it is edited.
    meta.write_text('Models:\n  - Name: van-x\n    Config: configs/x/a.py\n'
                    '    Weights: http://127.0.0.1:9/a.pth\n')
    os.utime(meta, ns=(1, 1))
    assert [m.name for m in load_index(str(index))] == ['van-x']
