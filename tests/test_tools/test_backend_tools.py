# Copyright (c) mmvan contributors. All rights reserved.
"""tools/test.py --backend, validate_zoo's and benchmark's engine options
and the missing-engine message, on the demo classifier (64x64)."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmvan.datasets import make_classification_demo


@pytest.fixture(scope='module')
def config(root):
    return osp.join(root, 'configs', 'van', 'van-b0_demo.py')


@pytest.fixture(scope='module')
def demo(tmp_path_factory, config):
    folder = tmp_path_factory.mktemp('backend_tools')
    root = make_classification_demo(
        str(folder / 'demo'), num_train=4, num_val=4, size=32, seed=1)
    from mmvan.apis import init_model
    torch.manual_seed(0)
    model = init_model(config, deploy=False)
    model.init_weights()
    ckpt = str(folder / 'demo.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    return dict(root=root, ckpt=ckpt, folder=folder)


def options(root):
    return [
        f'test_dataloader.dataset.data_root={root}',
        'test_dataloader.num_workers=0', 'test_dataloader.batch_size=10',
        f'val_dataloader.dataset.data_root={root}',
        'val_dataloader.num_workers=0'
    ]


@pytest.mark.slow
def test_test_py_backend_gives_pytorch_top1(demo, config, tool):
    test = tool('test', '')
    results = {}
    # openvino bf16 also builds openvino fp32, its reference.
    for backend, precision in [('pytorch', 'fp32'), ('onnxruntime', 'fp32'),
                               ('openvino', 'bf16')]:
        work = demo['folder'] / f'{backend}-{precision}'
        results[backend, precision] = test.main([
            config, demo['ckpt'], '--backend', backend, '--precision',
            precision, '--work-dir',
            str(work), '--cfg-options', *options(demo['root'])
        ])
    top1 = results['pytorch', 'fp32']['accuracy/top1']
    assert results['onnxruntime', 'fp32']['accuracy/top1'] == top1
    bf16 = results['openvino', 'bf16']
    # The agreement with fp32 is reported with the metrics.
    assert 0 <= bf16['agreement/top1_vs_fp32'] <= 100
    assert bf16['agreement/top1_vs_fp32'] >= 90
    assert 0 < bf16['agreement/max_rel_vs_fp32'] <= 5e-2
    assert 'agreement/top1_vs_fp32' not in results['onnxruntime', 'fp32']


@pytest.mark.slow
def test_missing_engine_is_one_line(demo, monkeypatch, config, root, tool):
    """openvino made unimportable: one error line naming it and the pip
    command, exit status 2, no traceback."""
    code = ('import runpy, sys; sys.modules["openvino"] = None; '
            'sys.argv = sys.argv[1:]; '
            'runpy.run_path(sys.argv[0], run_name="__main__")')
    out = subprocess.run([
        sys.executable, '-c', code, 'tools/test.py', config, demo['ckpt'],
        '--backend', 'openvino'
    ],
                         cwd=root,
                         capture_output=True,
                         text=True,
                         timeout=300,
                         env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert out.returncode == 2, out.stderr[-2000:]
    errors = [
        line for line in out.stderr.splitlines() if line.startswith('error:')
    ]
    assert errors == [
        "error: backend 'openvino' is not installed: pip "
        'install openvino'
    ], out.stderr[-2000:]
    assert 'Traceback' not in out.stderr
    # The other tools raise the same error before any work.
    from mmvan.backends import BackendNotInstalledError
    monkeypatch.setitem(sys.modules, 'openvino', None)
    benchmark = tool('benchmark')
    validate_zoo = tool('validate_zoo')
    with pytest.raises(BackendNotInstalledError, match='pip install'):
        benchmark.main([config, '--compare', 'mmpretrain', 'openvino'])
    with pytest.raises(BackendNotInstalledError, match='pip install'):
        validate_zoo.main(['--backend', 'openvino'])


def test_test_py_refuses_backend_with_tta(demo, config, tool):
    from mmvan.utils.errors import UserError
    test = tool('test', '')
    with pytest.raises(UserError, match='--no-deploy'):
        test.main([
            config, demo['ckpt'], '--backend', 'onnxruntime', '--no-deploy',
            '--cfg-options', *options(demo['root'])
        ])


def test_validate_zoo_takes_backend(tool):
    validate_zoo = tool('validate_zoo')
    args = validate_zoo.parse_args(
        ['--backend', 'openvino', '--precision', 'bf16'])
    assert (args.backend, args.precision) == ('openvino', 'bf16')
    assert validate_zoo.parse_args([]).backend == 'pytorch'


@pytest.mark.slow
def test_benchmark_compares_engines(tmp_path, root, benchmark_timed):
    # Seconds per call (a batch of 2, or one image for the latency).
    seconds = {
        'mmvan': 0.4,
        'onnxruntime': 0.25,
        'openvino': 0.2,
        'mmvan-auto': 0.125,
        'mmvan-bf16': 0.1,
        'openvino-bf16': 0.08
    }
    benchmark = benchmark_timed(seconds)
    plot, out = tmp_path / 'engines.png', tmp_path / 'engines.json'
    res = benchmark.main([
        osp.join(root, 'configs', 'van',
                 'van-b0_8xb128_in1k.py'), '--batch-size', '2', '--shape',
        '64', '64', '--deploy', '--channels-last', '--compare', 'onnxruntime',
        'openvino', '--bf16', '--repeats', '1', '--warmup', '1', '--plot',
        str(plot), '--json',
        str(out)
    ])
    assert sorted(name for name in seconds if name in res) == sorted(seconds)
    for name, t in seconds.items():
        assert res[name] == pytest.approx(2 / t)  # img/s
        assert res[f'{name}_latency_ms'] == pytest.approx(1000 * t)
        assert f'{name}_peak_mb' in res
    for name in ('mmvan', 'onnxruntime', 'openvino', 'mmvan-auto'):
        assert res[f'{name}_max_rel'] <= 1e-4  # fp32: exact
    assert 0 < res['mmvan-bf16_max_rel'] <= 5e-2
    # OpenVINO, 10 img/s, beats ONNX Runtime, 8; the default path makes
    # 16 img/s: 1.6 times the fastest exact engine, in latency 200 ms
    # against 125 ms. bf16 makes 20 img/s: 1.25 times the default.
    assert res['fastest_engine'] == 'openvino'
    assert res['default_vs_fastest_engine'] == pytest.approx(1.6)
    assert res['default_latency_vs_fastest_engine'] == pytest.approx(1.6)
    assert res['bf16_vs_fp32_default'] == pytest.approx(1.25)
    assert plot.stat().st_size > 0
    assert json.loads(out.read_text())['mmvan-auto'] == pytest.approx(16.0)
