# Copyright (c) mmvan contributors. All rights reserved.
import os.path as osp
import subprocess
import sys

import pytest
import torch


@pytest.mark.parametrize('name,gflops', [('van-b0_8xb128_in1k.py', 0.88),
                                         ('van-b1_8xb128_in1k.py', 2.52)])
def test_get_flops_reproduces_paper(name, gflops, root, tool):
    info = tool('get_flops').main([osp.join(root, 'configs', 'van', name)])
    assert info['flops'] / 1e9 == pytest.approx(gflops, rel=0.02)
    assert info['backbone_flops'] < info['flops']
    assert info['backbone_params'] < info['params']


def test_get_flops_segmentor_shape(root, tool):
    info = tool('get_flops').main([
        osp.join(root, 'configs', 'sem_fpn', 'fpn_van-b0_demo.py'), '--shape',
        '64', '96'
    ])
    assert info['shape'] == (64, 96)
    assert info['flops'] > info['backbone_flops'] > 0


@pytest.mark.slow
def test_benchmark_compare_mmpretrain_is_self_consistent(
        root, benchmark_timed):
    # A batch of 2 takes 0.1 s with mmvan and 0.4 s with mmpretrain; the
    # dense primitives make 8 G (2048^3 matmul) and 10 G (a 1x1 convolution
    # of 16 x 1024 x 14 x 14 to 1024 channels) multiply-adds per second.
    benchmark = benchmark_timed({
        'mmvan': 0.1,
        'mmpretrain': 0.4,
        'matmul': 2048**3 / 8e9,
        'conv1x1': 16 * 14 * 14 * 1024 * 1024 / 10e9
    })
    res = benchmark.main([
        osp.join(root, 'configs', 'van',
                 'van-b0_8xb128_in1k.py'), '--batch-size', '2', '--shape',
        '64', '64', '--deploy', '--channels-last', '--compare', 'mmpretrain',
        '--repeats', '3', '--warmup', '1', '--chunk-mib', '0.1', '--ceiling'
    ])
    # Counting the FLOPs must not disturb the weights both models share.
    assert res['max_diff'] <= 1e-4
    assert res['mmvan'] == pytest.approx(20.0)  # img/s
    assert res['mmpretrain'] == pytest.approx(5.0)
    assert res['ratio'] == pytest.approx(4.0)
    # The ceiling: the faster dense rate over VAN-b0's multiply-adds per
    # image, the paper's 0.88 G at 224 x 224 scaled to 64 x 64 (every
    # stage's positions shrink by (64 / 224)^2).
    ceiling = 10e9 / (0.88e9 * (64 / 224)**2)
    assert res['ceiling'] == pytest.approx(ceiling, rel=0.02)
    assert res['mmvan_share'] == pytest.approx(20.0 / ceiling, rel=0.02)
    assert res['mmpretrain_share'] == pytest.approx(5.0 / ceiling, rel=0.02)
    assert res['peak_memory_mb'] > 0


@pytest.mark.slow
def test_benchmark_keep_freed_memory(root):
    # Changes malloc for the whole process, so in a process of its own.
    out = subprocess.run([
        sys.executable,
        osp.join(root, 'tools', 'analysis_tools', 'benchmark.py'),
        osp.join(root, 'configs', 'van', 'van-b0_8xb128_in1k.py'),
        '--batch-size', '2', '--shape', '64', '64', '--deploy', '--repeats',
        '2', '--warmup', '1', '--keep-freed-memory'
    ],
                         capture_output=True,
                         text=True,
                         cwd=root,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'malloc: keeps freed memory' in out.stdout
    assert 'chunk_mib=8' in out.stdout
    assert 'img/s' in out.stdout


@pytest.mark.slow
def test_keep_freed_memory_applies_on_glibc(root):
    code = ('from mmvan.utils.memory import keep_freed_memory; '
            'import torch; ok = keep_freed_memory(); '
            'x = [torch.ones(2**23) for _ in range(3)]; '
            'print(ok, float(sum(t.sum() for t in x)))')
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True,
                         cwd=root,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    ok, total = out.stdout.split()
    assert float(total) == 3 * 2**23
    import platform
    if platform.libc_ver()[0] == 'glibc':
        assert ok == 'True'


@pytest.mark.slow
def test_benchmark_train_compares_training_paths(tiny, tool, capsys):
    """``benchmark.py --train`` is train_speed.py's table: training steps as
    tools/train.py builds them, mmvan's against mmpretrain's VAN."""
    result = tool('benchmark').main([
        tiny('lka', base='van-b0_demo.py'), '--batch-size', '4', '--train',
        '--repeats', '1', '--warmup', '0'
    ])
    out = capsys.readouterr().out
    names = ('mmvan', 'mmvan-plain', 'mmvan-cp', 'mmpretrain', 'mmpretrain-cl')
    assert set(result['rate']) == set(names)
    # Same weights and batch (no stochastic depth in the demo config):
    # every path computes the same loss, mmpretrain's VAN included.
    loss = result['loss']['mmvan']
    for name in names:
        assert result['loss'][name] == pytest.approx(loss, rel=1e-5), name
        assert result['rate'][name] > 0
        assert name in out
    # Activation checkpointing keeps less at the step's peak.
    peak = result['peak_mb']
    assert 0 < peak['mmvan-cp'] < peak['mmvan']
    assert 'with_cp:' in out
    with pytest.raises(Exception, match='--compare'):
        tool('benchmark').main([
            tiny('lka', base='van-b0_demo.py'), '--train', '--compare',
            'mmpretrain'
        ])


@pytest.mark.slow
def test_train_speed_times_whole_train_py_runs(tiny, tool, capsys):
    """``train_speed.py --train-py``: iterations per second of real
    tools/train.py runs, each contender's path read back from its log."""
    result = tool('train_speed').main([
        tiny('lka', base='van-b0_demo.py'), '--train-py', '--batch-size', '2',
        '--iters', '2', '--warmup', '1', '--num-workers', '0', '--contenders',
        'mmvan', 'mmpretrain-cl'
    ])
    out = capsys.readouterr().out
    assert set(result['rate']) == {'mmvan', 'mmpretrain-cl'}
    assert all(rate > 0 for rate in result['rate'].values())
    assert ('mmvan: layout: channels_last, precision: fp32, optimizer: '
            'fused AdamW') in out
    # mmpretrain's backbone channels-last, torch's default AdamW.
    assert ('mmpretrain-cl: layout: channels_last, precision: fp32, '
            'optimizer: AdamW,') in out


def test_benchmark_rejects_lska_compare(root, tool):
    from mmvan.cli import UserError
    with pytest.raises(UserError, match='mmpretrain has LKA'):
        tool('benchmark').main([
            osp.join(root, 'configs', 'van', 'van-lska-b0_8xb128_in1k.py'),
            '--compare', 'mmpretrain'
        ])


def test_kernel_scaling_growth_by_hand():
    from mmvan.analysis.kernel_scaling import growth
    rows = [
        dict(attention='lka', k=7, x=2.0),
        dict(attention='lka', k=23, x=3.0),
        dict(attention='lka', k=53, x=4.0),
        dict(attention='lska', k=7, x=8.0),
    ]
    # From the smallest kernel measured to the largest: 2 -> 4.
    assert growth(rows, 'lka', 'x') == (1.0, 7, 53)
    # From k = 23 (measured): 3 -> 4; from k = 11 (not measured): as above.
    assert growth(rows, 'lka', 'x', 23) == pytest.approx((1 / 3, 23, 53))
    assert growth(rows, 'lka', 'x', 11) == (1.0, 7, 53)
    assert growth(rows, 'lska', 'x') == (0.0, 7, 7)


@pytest.mark.slow
def test_kernel_scaling(tmp_path, tool):
    from mmvan.analysis.kernel_scaling import growth
    out = tmp_path / 'k.png'
    rows = tool('kernel_scaling').main([
        '--kernels', '23', '53', '--shape', '64', '--batch-size', '2',
        '--repeats', '1', '--out-file',
        str(out)
    ])
    assert out.stat().st_size > 0
    row = {(r['attention'], r['k']): r for r in rows}
    assert len(row) == len(rows) == 6

    def added(attention, key, scale):
        return (row[attention, 53][key] - row[attention, 23][key]) * scale

    # k 23 -> 53: LSKA's 1x5, 5x1, 1x7, 7x1 depth-wise kernels become 1x5,
    # 5x1, 1x17, 17x1 (20 more taps per channel), LKA's 5x5 and 7x7 become
    # 5x5 and 17x17 (240 more), in each of VAN-b0's 1600 channel-blocks
    # (32 x 3 + 64 x 3 + 160 x 5 + 256 x 2).
    assert added('lska', 'params_m', 1e6) == pytest.approx(20 * 1600)
    assert added('lka', 'params_m', 1e6) == pytest.approx(240 * 1600)
    # One multiply-add per tap and position: at 64 x 64 the stages have
    # 16^2, 8^2, 4^2 and 2^2 positions, 96 x 256 + 192 x 64 + 800 x 16 +
    # 512 x 4 = 51712 channel-positions in all.
    assert added('lska', 'gflops', 1e9) == pytest.approx(20 * 51712)
    assert added('lka', 'gflops', 1e9) == pytest.approx(240 * 51712)
    # Relative to the classifiers at k = 23 (the released decomposition):
    # LSKA-b0 has 4,029,000 parameters, VAN-b0 4,105,800 (the official
    # models' counts, 1000-class head included): +0.79 % and +9.35 %.
    assert growth(rows, 'lska', 'params_m') == pytest.approx(
        (20 * 1600 / 4_029_000, 23, 53))
    assert growth(rows, 'lka', 'params_m') == pytest.approx(
        (240 * 1600 / 4_105_800, 23, 53))
    trivial_23 = row['lka-trivial', 23]
    lka_23 = row['lka', 23]
    # 23 x 23 = 529 taps against LKA's 5 x 5 + 7 x 7 = 74, and one bias
    # instead of two: 454 more per channel of each of b0's 1600
    # channel-blocks.
    extra = (trivial_23['params_m'] - lka_23['params_m']) * 1e6
    assert extra == pytest.approx(454 * 1600)
    # One undecomposed k x k kernel adds 53^2 - 23^2 = 2280 taps.
    assert added('lka-trivial', 'params_m', 1e6) == pytest.approx(2280 * 1600)
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
