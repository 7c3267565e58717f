# Copyright (c) mmvan contributors. All rights reserved.
"""The speed measurements as a library: the arithmetic of the reports from
a timer that reports given times, the runs' alternation, the comparison
models' weights and the contenders' configs, on the tiny VAN."""
import json
from unittest import mock

import pytest
import torch

from mmvan.analysis import kernel_scaling, speed, train_speed
from mmvan.testing import TINY
from mmvan.utils.errors import UserError


def given_times(seconds, run=True):
    """A timer that reports ``seconds[name]`` (a number, or a list taken
    in turn) and records the names in the order of the calls."""
    calls = []
    turns = {}

    def timer(name, fn, x):
        calls.append(name)
        t = seconds[name]
        if isinstance(t, list):
            t = t[turns.setdefault(name, 0)]
            turns[name] += 1
        return t, fn(x) if run else None

    return timer, calls


def test_benchmark_against_mmpretrain_from_given_times(tiny):
    # A batch of 2 takes 0.1 s with mmvan and 0.4 s with mmpretrain.
    timer, calls = given_times({'mmvan': 0.1, 'mmpretrain': 0.4})
    res = speed.benchmark(
        tiny(),
        batch_size=2,
        shape=(32, 32),
        deploy=True,
        compare=['mmpretrain'],
        repeats=3,
        warmup=2,
        device='cpu',
        timer=timer)
    assert res['mmvan'] == pytest.approx(20.0)  # img/s
    assert res['mmpretrain'] == pytest.approx(5.0)
    assert res['ratio'] == pytest.approx(4.0)
    # Same weights: the folded model computes what mmpretrain's does.
    assert res['max_diff'] <= 1e-5
    # Warm-up of each, then the timed rounds alternate.
    assert calls == ['mmvan', 'mmvan', 'mmpretrain', 'mmpretrain'
                     ] + ['mmvan', 'mmpretrain'] * 3
    assert res['peak_memory_mb'] > 0
    assert 'ceiling' not in res


def test_benchmark_writes_its_results(tiny, tmp_path):
    timer, calls = given_times({'mmvan': [0.3, 0.1, 0.2, 0.5]})
    path = tmp_path / 'result.json'
    res = speed.benchmark(
        tiny(),
        batch_size=4,
        shape=(32, 32),
        repeats=3,
        warmup=1,
        device='cpu',
        json_file=str(path),
        timer=timer)
    # The first call is the warm-up; the median of 0.1, 0.2 and 0.5 s.
    assert calls == ['mmvan'] * 4
    assert res['mmvan'] == pytest.approx(4 / 0.2)
    assert json.loads(path.read_text()) == pytest.approx(res)


def test_dense_rates_are_medians_after_warm_up():
    n, conv = 2048**3, 16 * 14 * 14 * 1024 * 1024
    # Two warm-up calls (ignored), then seven timed ones.
    timer, calls = given_times(
        {
            'matmul': [9, 9, 1, 2, 3, 4, 5, 6, 7],
            'conv1x1': [9, 9, 2, 2, 2, 1, 1, 1, 1]
        },
        run=False)
    rates = speed.dense_rates('cpu', timer=timer)
    assert rates == pytest.approx({'matmul': n / 4, 'conv1x1': conv / 1})
    assert calls == ['matmul'] * 9 + ['conv1x1'] * 9


def test_engine_table_by_hand():
    result = {
        'mmvan': 20.0,
        'mmvan_latency_ms': 61.25,
        'mmvan_peak_mb': 12.4,
        'mmvan_max_rel': 1.234e-6,
        'openvino': 16.0,
        'openvino_latency_ms': 50.0,
        'openvino_peak_mb': 30.6,
        'openvino_max_rel': 0.0,
        'openvino_share': 0.125,
    }
    table = speed.runtime_table(result, {
        'mmvan': 'folded'
    }, ['mmvan', 'openvino']).splitlines()
    assert table[2:] == [
        '| folded | 20.00 | 61.2 | 12 |  | 1.2e-06 |',
        '| openvino | 16.00 | 50.0 | 31 | 12.5% | 0 |',
    ]


def test_plot_engines_writes_a_png(tmp_path):
    result = {'a': 2.0, 'a_latency_ms': 3.0, 'b': 4.0, 'b_latency_ms': 1.0}
    path = tmp_path / 'engines.png'
    speed.plot_runtimes(result, {'a': 'A'}, ['a', 'b'], str(path), 'title')
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_mmpretrain_backbone_has_the_same_weights(tiny):
    ours, theirs = speed.build_backbones(tiny(), with_mmpretrain=True)
    assert type(theirs).__module__.startswith('mmpretrain')
    x = torch.rand(2, 3, 32, 32)
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        a, b = ours(x)[-1], theirs(x)[-1]
    assert (a - b).abs().max() <= 1e-5
    assert speed.build_backbones(tiny())[1] is None


def test_mmpretrain_comparison_needs_lka(tiny):
    with pytest.raises(UserError, match='mmpretrain has LKA'):
        speed.build_backbones(tiny('lska'), with_mmpretrain=True)


def test_devices_are_checked():
    with mock.patch.object(torch.cuda, 'is_available', return_value=False):
        with pytest.raises(UserError) as info:
            speed.check_device('cuda:0')
        assert str(info.value) == ('--device cuda:0 needs a CUDA GPU, and '
                                   'this machine has none; use --device cpu.')
        speed.check_device('cpu')
        with pytest.raises(UserError, match='needs a CUDA GPU'):
            train_speed.check_device('cuda')
        train_speed.check_device('cpu')
        assert 'mmvan-torch' not in train_speed.default_contenders()
    with mock.patch.object(torch.cuda, 'is_available', return_value=True):
        with pytest.raises(UserError, match='CUDA_VISIBLE_DEVICES='):
            train_speed.check_device('cpu')
        train_speed.check_device('auto')
        assert train_speed.default_contenders() == list(train_speed.CONTENDERS)


def test_contender_configs(tiny, tmp_path):

    def config(name, amp=False):
        return train_speed.training_config(tiny(), name, 4, 'data',
                                           str(tmp_path), amp)

    ours = config('mmvan')
    assert ours.train_fast_path == dict(layout='auto', fused_optimizer='auto')
    assert ours.train_dataloader.batch_size == 4
    assert ours.train_dataloader.dataset.data_root == 'data'
    assert ours.val_dataloader is None
    assert config('mmvan-plain').train_fast_path == dict(
        layout='contiguous', fused_optimizer=False)
    assert config('mmvan-cp').model.backbone.with_cp is True
    theirs = config('mmpretrain-cl')
    assert theirs.train_fast_path.layout == 'channels_last'
    backbone = theirs.model.backbone
    assert backbone.type == 'mmpretrain.VAN'
    # mmpretrain's names for the tiny VAN's sizes.
    assert backbone.arch == dict(
        embed_dims=TINY['embed_dims'],
        depths=TINY['depths'],
        ffn_ratios=TINY['mlp_ratios'])
    with pytest.raises(UserError, match='LKA attention only'):
        train_speed.training_config(
            tiny('lska'), 'mmpretrain', 4, 'data', str(tmp_path), False)
    # Mixed precision as tools/train.py --amp trains on this machine.
    amp = config('mmvan', True).optim_wrapper
    if not torch.cuda.is_available():
        assert amp.type == 'mmvan.CPUAmpOptimWrapper'
        assert amp.dtype == 'bfloat16'
    assert config('mmvan',
                  False).optim_wrapper.get('type',
                                           'OptimWrapper') == 'OptimWrapper'


def test_train_py_checkout_must_hold_train_py(tiny, tmp_path):
    with pytest.raises(UserError, match='no tools/train.py there'):
        train_speed.measure_train_py(
            tiny(), checkout=str(tmp_path), device='auto')


def test_lka_trivial_has_one_undecomposed_kernel():
    lka = kernel_scaling.build_classifier(TINY, 'lka', 23)
    trivial = kernel_scaling.build_classifier(TINY, 'lka-trivial', 23)

    def count(model):
        return sum(p.numel() for p in model.parameters())

    # 23 x 23 taps and a bias against LKA's 5 x 5 and 7 x 7 (dilated) with
    # a bias each: 530 - 76 = 454 more per channel of each block (8 + 16 +
    # 24 + 32 channels, one block a stage).
    assert count(trivial) - count(lka) == 454 * 80
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert trivial(x).shape == lka(x).shape == (1, 1000)
