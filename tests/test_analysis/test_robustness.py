# Copyright (c) mmvan contributors. All rights reserved.
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

from mmvan.analysis import robustness as rb
from mmvan.cli import UserError

# AlexNet's mean ImageNet-C errors (%), typed from Hendrycks & Dietterich
# (ICLR 2019) and the LSKA repository's mCE_cal.py, independently of the
# data file the code reads.
ALEXNET = {
    'gaussian_noise': 88.6428,
    'shot_noise': 89.4468,
    'impulse_noise': 92.2640,
    'defocus_blur': 81.9880,
    'glass_blur': 82.6268,
    'motion_blur': 78.5948,
    'zoom_blur': 79.8360,
    'snow': 86.6816,
    'frost': 82.6572,
    'fog': 81.9324,
    'brightness': 56.4592,
    'contrast': 85.3204,
    'elastic_transform': 64.6056,
    'pixelate': 71.7840,
    'jpeg_compression': 60.6500,
    'speckle_noise': 84.5388,
    'gaussian_blur': 78.7108,
    'spatter': 71.7512,
    'saturate': 65.8248
}
ALEXNET_CLEAN = 100 - 56.522
STANDARD = list(ALEXNET)[:15]

TENCH, GOLDFISH, SHARK, STINGRAY, GOLDFINCH, TABBY = ('n01440764', 'n01443537',
                                                      'n01484850', 'n01498041',
                                                      'n01531178', 'n02123045')
# Logits of the test classifier for every image: the 1000-way arg-max is
# tench (0); restricted to ImageNet-A it is stingray (6), to ImageNet-R
# goldfish (1); the cue-conflict category is cat (tabby, 281).
BIAS = torch.zeros(1000)
BIAS[0], BIAS[1], BIAS[6], BIAS[281] = 10., 7., 5., 6.


def test_wnid_tables_match_imagenet_class_names():
    from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
    wnids = rb.imagenet_wnids()
    assert len(wnids) == len(set(wnids)) == 1000
    assert list(wnids) == sorted(wnids)
    for wnid, name in [(TENCH, 'tench'), (GOLDFISH, 'goldfish'),
                       (STINGRAY, 'stingray'), (TABBY, 'tabby'),
                       ('n15075141', 'toilet tissue')]:
        assert IMAGENET_CATEGORIES[wnids.index(wnid)].startswith(name)


def test_200_class_mappings_on_known_classes():
    a, r = rb.subset_indices('imagenet-a'), rb.subset_indices('imagenet-r')
    assert len(a) == len(set(a)) == 200 == len(r) == len(set(r))
    assert a == sorted(a) and r == sorted(r)
    # ImageNet-A's class 0 is stingray (1k: 6), 1 goldfinch (11); its last
    # is acorn (988); tench (0) and goldfish (1) are not in it.
    assert a[:2] == [6, 11] and a[-1] == 988
    assert 0 not in a and 1 not in a and 281 not in a
    # ImageNet-R starts with goldfish (1), great white shark (2), hammerhead
    # (4), stingray (6) and holds tabby (281) but not tench.
    assert r[:4] == [1, 2, 4, 6] and 281 in r and 0 not in r
    assert len(set(a) & set(r)) == 86


def test_subset_error_restricts_the_argmax():
    logits = BIAS.repeat(4, 1)
    labels = torch.tensor([6, 1, 11, 0])
    # 1000-way: tench (0) for every image.
    assert rb.subset_top1_error(logits, labels) == pytest.approx(0.75)
    a, r = rb.subset_indices('imagenet-a'), rb.subset_indices('imagenet-r')
    # ImageNet-A: stingray (6) wins; ImageNet-R: goldfish (1).
    assert rb.subset_top1_error(logits[[0, 2]], labels[[0, 2]],
                                a) == pytest.approx(0.5)
    assert rb.subset_top1_error(logits[:3], labels[:3],
                                r) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        rb.subset_top1_error(logits, labels, r)  # tench is not in -R


def test_imagenet_c_formula_by_hand():
    errors = {c: {s: 0.5 for s in range(1, 6)} for c in ALEXNET}
    errors['fog'] = {1: 0.1, 2: 0.2, 3: 0.3, 4: 0.4, 5: 0.5}
    errors['frost'] = {1: 0.2, 2: 0.4}  # incomplete: no CE
    out = rb.imagenet_c_summary(errors, clean_error=0.25)
    fog = out['corruptions']['fog']
    assert fog['error'] == pytest.approx(30.0)
    assert fog['ce'] == pytest.approx(100 * 30.0 / ALEXNET['fog'])
    assert fog['relative_ce'] == pytest.approx(
        100 * (30.0 - 25.0) / (ALEXNET['fog'] - ALEXNET_CLEAN))
    assert out['corruptions']['frost']['ce'] is None
    assert out['mce_15'] is None and out['mce_19'] is None
    assert out['missing'] == ['frost']
    errors['frost'] = {s: 0.5 for s in range(1, 6)}
    out = rb.imagenet_c_summary(errors)
    ces = {
        c: 100 * (30.0 if c == 'fog' else 50.0) / e
        for c, e in ALEXNET.items()
    }
    assert out['mce_15'] == pytest.approx(np.mean([ces[c] for c in STANDARD]))
    assert out['mce_19'] == pytest.approx(np.mean(list(ces.values())))
    assert out['relative_mce_15'] is None  # no clean error given


def test_shape_bias_counts():
    shapes = ['cat', 'cat', 'dog', 'dog', 'cat']
    textures = ['dog', 'elephant', 'cat', 'bear', 'cat']
    decisions = ['cat', 'elephant', 'cat', 'knife', 'cat']
    out = rb.shape_bias(decisions, shapes, textures)
    # Conflicting: 4 (the last is cat on cat); shape 1, texture 2.
    assert out['num_conflict'] == 4
    assert (out['num_shape'], out['num_texture']) == (1, 2)
    assert out['shape_bias'] == pytest.approx(1 / 3)
    assert out['accuracy'] == pytest.approx(100 * 2 / 5)


def _image(path, value):
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(np.full((32, 32, 3), value, np.uint8)).save(path)


def _class_tree(root, counts):
    for wnid, n in counts.items():
        for i in range(n):
            _image(osp.join(root, wnid, f'{wnid}_{i}.png'), 40 * i)


@pytest.fixture(scope='module')
def classifier(tmp_path_factory, tiny, constant_checkpoint):
    folder = tmp_path_factory.mktemp('ckpt')
    config = tiny('lka')
    ckpt = constant_checkpoint(config, str(folder / 'const.pth'), BIAS)
    return config, ckpt


@pytest.mark.slow
def test_robustness_tool_imagenet_c(tmp_path, tool, classifier, capsys):
    config, ckpt = classifier
    root = tmp_path / 'imagenet-c'
    expected = {}
    for ci, name in enumerate(ALEXNET):
        for s in range(1, 6):
            right, wrong = (ci + s) % 3, 1 + (ci * s) % 2
            folder = root / name / str(s)
            _class_tree(str(folder), {TENCH: right, GOLDFISH: wrong})
            expected.setdefault(name, {})[s] = wrong / (right + wrong)
    out_json = tmp_path / 'c.json'
    res = tool('robustness').main([
        config, ckpt, '--benchmark', 'imagenet-c', '--data-root',
        str(root), '--clean-acc', '80', '--out',
        str(out_json), '--num-workers', '0'
    ])
    # The hand computation, from the image counts and the typed table.
    mean = {c: 100 * np.mean(list(e.values())) for c, e in expected.items()}
    ce = {c: 100 * mean[c] / ALEXNET[c] for c in ALEXNET}
    rce = {
        c: 100 * (mean[c] - 20.0) / (ALEXNET[c] - ALEXNET_CLEAN)
        for c in ALEXNET
    }
    for c in ALEXNET:
        row = res['corruptions'][c]
        for s in range(1, 6):
            assert row['errors'][s] == pytest.approx(100 * expected[c][s])
        assert row['ce'] == pytest.approx(ce[c])
        assert row['relative_ce'] == pytest.approx(rce[c])
    assert res['mce_15'] == pytest.approx(np.mean([ce[c] for c in STANDARD]))
    assert res['mce_19'] == pytest.approx(np.mean(list(ce.values())))
    assert res['relative_mce_15'] == pytest.approx(
        np.mean([rce[c] for c in STANDARD]))
    assert res['relative_mce_19'] == pytest.approx(np.mean(list(rce.values())))
    saved = json.loads(out_json.read_text())
    assert saved['mce_19'] == pytest.approx(res['mce_19'])
    assert saved['corruptions']['fog']['errors']['3'] == pytest.approx(
        100 * expected['fog'][3])
    printed = capsys.readouterr().out
    assert 'mCE (15 standard)' in printed and 'mCE (all 19, LSKA)' in printed
    print(printed)  # the table, for the record


@pytest.mark.parametrize(
    'benchmark,counts,error',
    [
        # ImageNet-R: the restricted arg-max is goldfish; 3 of 4 right.
        ('imagenet-r', {
            GOLDFISH: 3,
            SHARK: 1
        }, 25.0),
        # ImageNet-A: stingray right, goldfinch wrong.
        ('imagenet-a', {
            STINGRAY: 1,
            GOLDFINCH: 3
        }, 75.0),
        # Sketch: the 1000-way arg-max is tench.
        ('imagenet-sketch', {
            TENCH: 2,
            GOLDFISH: 2
        }, 50.0),
    ])
def test_robustness_subsets(tmp_path, classifier, benchmark, counts, error):
    config, ckpt = classifier
    # The archives unpack into one folder; it is found.
    _class_tree(str(tmp_path / 'data' / 'release'), counts)
    res = rb.run_benchmark(
        config,
        ckpt,
        benchmark,
        data_root=str(tmp_path / 'data'),
        out=str(tmp_path / 'out.json'),
        num_workers=0)
    assert res['top1_error'] == pytest.approx(error)
    assert res['num_images'] == sum(counts.values())
    assert res['num_classes'] == (1000
                                  if benchmark == 'imagenet-sketch' else 200)


def test_robustness_refuses_foreign_classes(tmp_path, classifier):
    config, ckpt = classifier
    _class_tree(str(tmp_path / 'r'), {TENCH: 1})  # tench is not in -R
    with pytest.raises(UserError, match='not a class folder'):
        rb.run_benchmark(
            config,
            ckpt,
            'imagenet-r',
            data_root=str(tmp_path / 'r'),
            out=str(tmp_path / 'o.json'))
    with pytest.raises(UserError, match='no such folder'):
        rb.run_benchmark(
            config, ckpt, 'imagenet-a', data_root=str(tmp_path / 'missing'))


def test_robustness_cue_conflict(tmp_path, classifier):
    config, ckpt = classifier
    root = tmp_path / 'cue-conflict'
    for rel in [
            'cat/cat1-dog2.png', 'cat/cat2-elephant1.png', 'cat/cat3-cat1.png',
            'dog/dog1-cat3.png', 'dog/dog2-bear1.png'
    ]:
        _image(str(root / rel), 128)
    res = rb.run_benchmark(
        config,
        ckpt,
        'cue-conflict',
        data_root=str(root),
        out=str(tmp_path / 'cue.json'),
        num_workers=0)
    # Every decision is "cat": shape decisions cat1-dog2, cat2-elephant1;
    # texture decision dog1-cat3; cat3-cat1 has no conflict.
    assert set(res['decisions'].values()) == {'cat'}
    assert (res['num_shape'], res['num_texture']) == (2, 1)
    assert res['shape_bias'] == pytest.approx(2 / 3)
