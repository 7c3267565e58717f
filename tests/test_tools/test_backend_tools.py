# Copyright (c) mmvan contributors. All rights reserved.
"""tools/test.py --backend, validate_zoo's and benchmark's engine options
and the missing-engine message, on the demo classifier (64x64)."""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmvan.datasets import make_classification_demo

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'van', 'van-b0_demo.py')


def load_tool(*parts):
    path = osp.join(ROOT, 'tools', *parts)
    spec = importlib.util.spec_from_file_location('tool_' + parts[-1][:-3],
                                                  path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp('backend_tools')
    root = make_classification_demo(
        str(folder / 'demo'), num_train=4, num_val=4, size=32, seed=1)
    from mmvan.apis import init_model
    torch.manual_seed(0)
    model = init_model(CONFIG, deploy=False)
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


def test_test_py_backend_gives_pytorch_top1(demo):
    test = load_tool('test.py')
    results = {}
    # openvino bf16 also builds openvino fp32, its reference.
    for backend, precision in [('pytorch', 'fp32'), ('onnxruntime', 'fp32'),
                               ('openvino', 'bf16')]:
        work = demo['folder'] / f'{backend}-{precision}'
        results[backend, precision] = test.main([
            CONFIG, demo['ckpt'], '--backend', backend, '--precision',
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


def test_missing_engine_is_one_line(demo, monkeypatch):
    """openvino made unimportable: one error line naming it and the pip
    command, exit status 2, no traceback."""
    code = ('import runpy, sys; sys.modules["openvino"] = None; '
            'sys.argv = sys.argv[1:]; '
            'runpy.run_path(sys.argv[0], run_name="__main__")')
    out = subprocess.run([
        sys.executable, '-c', code, 'tools/test.py', CONFIG, demo['ckpt'],
        '--backend', 'openvino'
    ],
                         cwd=ROOT,
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
    benchmark = load_tool('analysis_tools', 'benchmark.py')
    validate_zoo = load_tool('analysis_tools', 'validate_zoo.py')
    with pytest.raises(BackendNotInstalledError, match='pip install'):
        benchmark.main([CONFIG, '--compare', 'mmpretrain', 'openvino'])
    with pytest.raises(BackendNotInstalledError, match='pip install'):
        validate_zoo.main(['--backend', 'openvino'])


def test_test_py_refuses_backend_with_tta(demo):
    from mmvan.utils.errors import UserError
    test = load_tool('test.py')
    with pytest.raises(UserError, match='--no-deploy'):
        test.main([
            CONFIG, demo['ckpt'], '--backend', 'onnxruntime', '--no-deploy',
            '--cfg-options', *options(demo['root'])
        ])


def test_validate_zoo_takes_backend():
    validate_zoo = load_tool('analysis_tools', 'validate_zoo.py')
    args = validate_zoo.parse_args(
        ['--backend', 'openvino', '--precision', 'bf16'])
    assert (args.backend, args.precision) == ('openvino', 'bf16')
    assert validate_zoo.parse_args([]).backend == 'pytorch'


def test_benchmark_compares_engines(tmp_path):
    benchmark = load_tool('analysis_tools', 'benchmark.py')
    plot, out = tmp_path / 'engines.png', tmp_path / 'engines.json'
    res = benchmark.main([
        osp.join(ROOT, 'configs', 'van',
                 'van-b0_8xb128_in1k.py'), '--batch-size', '2', '--shape',
        '64', '64', '--deploy', '--channels-last', '--compare', 'onnxruntime',
        'openvino', '--bf16', '--repeats', '1', '--warmup', '1', '--plot',
        str(plot), '--json',
        str(out)
    ])
    for name in ('mmvan', 'onnxruntime', 'openvino', 'mmvan-auto'):
        assert res[name] > 0 and res[f'{name}_latency_ms'] > 0
        assert res[f'{name}_max_rel'] <= 1e-4  # fp32: exact
        assert f'{name}_peak_mb' in res
    assert 0 < res['mmvan-bf16_max_rel'] <= 5e-2
    assert res['fastest_engine'] in ('onnxruntime', 'openvino')
    assert res['default_vs_fastest_engine'] == pytest.approx(
        res['mmvan-auto'] / res[res['fastest_engine']])
    assert res['bf16_vs_fp32_default'] == pytest.approx(res['mmvan-bf16'] /
                                                        res['mmvan-auto'])
    assert plot.stat().st_size > 0
    assert json.loads(out.read_text())['mmvan-auto'] == res['mmvan-auto']
