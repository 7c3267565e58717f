# Copyright (c) mmvan contributors. All rights reserved.
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis_tools'))

import benchmark  # noqa: E402
import get_flops  # noqa: E402
import kernel_scaling  # noqa: E402


@pytest.mark.parametrize('name,gflops', [('van-b0_8xb128_in1k.py', 0.88),
                                         ('van-b1_8xb128_in1k.py', 2.52)])
def test_get_flops_reproduces_paper(name, gflops):
    info = get_flops.main([osp.join(ROOT, 'configs', 'van', name)])
    assert info['flops'] / 1e9 == pytest.approx(gflops, rel=0.02)
    assert info['backbone_flops'] < info['flops']
    assert info['backbone_params'] < info['params']


def test_get_flops_segmentor_shape():
    info = get_flops.main([
        osp.join(ROOT, 'configs', 'sem_fpn', 'fpn_van-b0_demo.py'), '--shape',
        '64', '96'
    ])
    assert info['shape'] == (64, 96)
    assert info['flops'] > info['backbone_flops'] > 0


def test_benchmark_compare_mmpretrain_is_self_consistent():
    res = benchmark.main([
        osp.join(ROOT, 'configs', 'van',
                 'van-b0_8xb128_in1k.py'), '--batch-size', '2', '--shape',
        '64', '64', '--deploy', '--channels-last', '--compare', 'mmpretrain',
        '--repeats', '3', '--warmup', '1', '--chunk-mib', '0.1', '--ceiling'
    ])
    # Counting the FLOPs must not disturb the weights both models share.
    assert res['max_diff'] <= 1e-4
    assert res['mmvan'] > 0 and res['mmpretrain'] > 0
    assert res['ratio'] == pytest.approx(res['mmvan'] / res['mmpretrain'])
    assert res['ceiling'] > 0
    for name in ('mmvan', 'mmpretrain'):
        share = res[name] / res['ceiling']
        assert res[f'{name}_share'] == pytest.approx(share)
    assert res['peak_memory_mb'] > 0


def test_benchmark_keep_freed_memory():
    # Changes malloc for the whole process, so in a process of its own.
    out = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools', 'analysis_tools', 'benchmark.py'),
        osp.join(ROOT, 'configs', 'van', 'van-b0_8xb128_in1k.py'),
        '--batch-size', '2', '--shape', '64', '64', '--deploy', '--repeats',
        '2', '--warmup', '1', '--keep-freed-memory'
    ],
                         capture_output=True,
                         text=True,
                         cwd=ROOT,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'malloc: keeps freed memory' in out.stdout
    assert 'chunk_mib=8' in out.stdout
    assert 'img/s' in out.stdout


def test_keep_freed_memory_applies_on_glibc():
    code = ('from mmvan.utils.memory import keep_freed_memory; '
            'import torch; ok = keep_freed_memory(); '
            'x = [torch.ones(2**23) for _ in range(3)]; '
            'print(ok, float(sum(t.sum() for t in x)))')
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True,
                         cwd=ROOT,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    ok, total = out.stdout.split()
    assert float(total) == 3 * 2**23
    import platform
    if platform.libc_ver()[0] == 'glibc':
        assert ok == 'True'


def test_benchmark_train_with_cp():
    # In a fresh process, so the resident memory before the model is built
    # holds no freed memory that the training step could reuse.
    code = ('import json, sys; sys.path.insert(0, sys.argv[1]); '
            'import benchmark; '
            'print(json.dumps(benchmark.main(sys.argv[2:])))')
    out = subprocess.run([
        sys.executable, '-c', code,
        osp.join(ROOT, 'tools', 'analysis_tools'),
        osp.join(ROOT, 'configs', 'van',
                 'van-b0_8xb128_in1k.py'), '--batch-size', '2', '--shape',
        '64', '64', '--train', '--with-cp', '--repeats', '2', '--warmup', '1'
    ],
                         capture_output=True,
                         text=True,
                         cwd=ROOT,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res['mmvan'] > 0
    # Above the process before the models: at least b0's weights and their
    # gradients (4.1 M floats each, 31 MiB together).
    assert res['peak_model_mb'] >= 25
    assert res['peak_model_mb'] >= res['peak_growth_mb']


def test_benchmark_rejects_lska_compare():
    from mmvan.utils.cli import UserError
    with pytest.raises(UserError, match='mmpretrain has LKA'):
        benchmark.main([
            osp.join(ROOT, 'configs', 'van', 'van-lska-b0_8xb128_in1k.py'),
            '--compare', 'mmpretrain'
        ])


def test_kernel_scaling(tmp_path):
    out = tmp_path / 'k.png'
    rows = kernel_scaling.main([
        '--kernels', '23', '53', '--shape', '64', '--batch-size', '2',
        '--repeats', '1', '--out-file',
        str(out)
    ])
    assert out.stat().st_size > 0
    lska_params, _, _ = kernel_scaling.growth(rows, 'lska', 'params_m')
    lska_flops, _, _ = kernel_scaling.growth(rows, 'lska', 'gflops')
    lka_params, _, _ = kernel_scaling.growth(rows, 'lka', 'params_m')
    lka_flops, _, _ = kernel_scaling.growth(rows, 'lka', 'gflops')
    assert kernel_scaling.growth(rows, 'lka', 'gflops',
                                 23) == (lka_flops, 23, 53)
    # VAN-b0, k 23 -> 53: LSKA adds 20 taps per channel and block, LKA 240.
    # At 224: params LSKA +0.79 %, LKA +9.35 %; FLOPs LSKA +1.51 %,
    # LKA +17.5 %.
    assert 0 < lska_params <= 0.01 and 0 < lska_flops <= 0.02
    assert lka_params >= 8 * lska_params and lka_flops >= 8 * lska_flops
    # One undecomposed k x k kernel adds 53^2 - 23^2 = 2280 taps.
    trivial_params, _, _ = kernel_scaling.growth(rows, 'lka-trivial',
                                                 'params_m')
    assert trivial_params >= 0.5
    trivial_23 = next(r for r in rows
                      if r['attention'] == 'lka-trivial' and r['k'] == 23)
    lka_23 = next(r for r in rows if r['attention'] == 'lka' and r['k'] == 23)
    # 23 x 23 = 529 taps against LKA's 5 x 5 + 7 x 7 = 74, and one bias
    # instead of two: 454 more per channel of each of b0's 1600
    # channel-blocks.
    extra = (trivial_23['params_m'] - lka_23['params_m']) * 1e6
    assert extra == pytest.approx(454 * 1600)
    assert all(r['img_per_s'] > 0 for r in rows)


def test_optimize_for_inference_matches_model():
    from mmvan.apis.fast import optimize_for_inference
    from mmvan.models import VAN
    torch.manual_seed(0)
    model = VAN(arch='b0', out_indices=(0, 1, 2, 3))
    model.init_weights()
    model.eval()
    x = torch.rand(2, 3, 97, 75)
    with torch.no_grad():
        ref = model(x)
    fast = optimize_for_inference(model)
    for a, b in zip(ref, fast(x)):
        assert (a - b).abs().max() / a.abs().max() <= 1e-4
    assert model.patch_embed1.proj.weight.is_contiguous(
        memory_format=torch.channels_last)
    # channels_last=False keeps the default layout.
    plain = VAN(arch='b0', out_indices=(0, 1, 2, 3))
    plain.load_state_dict(VAN(arch='b0').state_dict())
    plain.eval()
    optimize_for_inference(plain, channels_last=False)
    assert plain.patch_embed1.proj.weight.is_contiguous()
    assert not plain._forward_pre_hooks
