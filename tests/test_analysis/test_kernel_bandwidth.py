# Copyright (c) mmvan contributors. All rights reserved.
"""The bandwidth arithmetic of the GPU kernel check, by hand, and its
arguments (the timing itself needs a GPU)."""
from unittest import mock

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from mmvan.analysis import kernel_bandwidth as kb
from mmvan.ops import depthwise_conv
from mmvan.ops import dwconv_gelu as fused_op
from mmvan.utils.errors import UserError

# One row of the table: a pass of one convolution, before it is timed.
ROW = dict(
    stage=1,
    name='LKA conv0',
    kernel=(5, 5),
    dilation=1,
    gb=0.0514,
    dtype='fp32',
    **{'pass': 'forward'})


@pytest.mark.parametrize(
    'name, gbs',
    [
        ('NVIDIA H100 80GB HBM3', 3350),  # SXM5
        ('NVIDIA H100 PCIe', 2000),
        ('NVIDIA H100 NVL', 3900),
        ('NVIDIA H200', 4800),
        ('NVIDIA GH200 480GB', 4000),
        ('NVIDIA A100-SXM4-80GB', 2039),
        ('NVIDIA A100 80GB PCIe', 1935),
        ('NVIDIA A100-SXM4-40GB', 1555),
        ('NVIDIA A10G', 600),
        ('NVIDIA L4', 300),
        ('NVIDIA L40S', 864),
        ('Tesla V100-SXM2-16GB', 900),
    ])
def test_peak_bandwidth_by_name(name, gbs):
    assert kb.peak_bandwidth(name) == gbs * 1e9


def test_unknown_gpu_has_no_table_peak():
    assert kb.peak_bandwidth('Some Future GPU') is None


def test_compulsory_bytes_by_hand():
    # VAN-b2 stage 1 at batch 32: a 32 x 64 x 56 x 56 map.
    act = 32 * 64 * 56 * 56  # 6,422,528 values
    # LKA conv0 5x5, fp32: read x, write y, 64 * (25 + 1) fp32 parameters.
    assert kb.compulsory_bytes('forward', 32, 64, 56, (5, 5),
                               4) == 2 * act * 4 + 64 * 26 * 4
    assert kb.compulsory_bytes('forward', 32, 64, 56, (5, 5),
                               4) == 51_380_224 + 6_656
    # bf16 weight gradient of the 7x7 (d3): read x and dy.
    assert kb.compulsory_bytes('weight grad', 32, 64, 56, (7, 7),
                               2) == 2 * act * 2 + 64 * 50 * 4
    # The fused MLP backward at stage 3 (1280 x 14 x 14), fp32: x, dy, dx.
    assert kb.compulsory_bytes('fused backward', 32, 1280, 14, (3, 3),
                               4) == 3 * (32 * 1280 * 196) * 4 + 1280 * 40
    with pytest.raises(ValueError, match='unknown pass'):
        kb.compulsory_bytes('sideways', 1, 1, 1, (1, 1), 4)


def test_bandwidth_share_by_hand():
    # 51.4 MB in 25.7 us is 2.0 TB/s, 60 % of an H100 SXM's 3.35 TB/s.
    rate, share = kb.bandwidth_share(51_400_000, 25.7e-6, 3.35e12)
    assert rate == pytest.approx(2.0e12)
    assert share == pytest.approx(2.0e12 / 3.35e12)


def test_cases_are_van_b2s_convolutions():
    cases = kb.depthwise_cases()
    assert len(cases) == 2 * 8
    stage1 = {c['name']: c for c in cases if c['stage'] == 1}
    assert stage1['LKA conv_spatial']['kernel'] == (7, 7)
    assert stage1['LKA conv_spatial']['dilation'] == 3
    assert stage1['LSKA conv0h']['kernel'] == (1, 5)
    assert stage1['LSKA conv_spatial_v']['kernel'] == (7, 1)
    assert (stage1['MLP dwconv']['channels'], stage1['MLP dwconv']['size'],
            stage1['MLP dwconv+GELU']['fused']) == (512, 56, True)
    stage3 = {c['name']: c for c in cases if c['stage'] == 3}
    assert (stage3['LKA conv0']['channels'], stage3['LKA conv0']['size'],
            stage3['MLP dwconv']['channels']) == (320, 14, 1280)


def test_table_pairs_triton_and_torch():
    rows = [
        dict(ROW, impl='triton', ms=0.025, share=0.6),
        dict(ROW, impl='torch', ms=0.1, share=0.15)
    ]
    table = kb.format_rows(rows).splitlines()
    assert len(table) == 3
    assert table[2] == ('| s1 | LKA conv0 | 5x5 | forward | fp32 | 51.4 | '
                        '0.025 | 60% | 0.100 | 15% | 4.00x |')


def test_needs_a_gpu():
    with mock.patch.object(torch.cuda, 'is_available', return_value=False):
        with pytest.raises(UserError, match='needs a CUDA GPU'):
            kb.report()


def test_arguments_are_checked(tool):
    parse_args = tool('kernel_bandwidth').parse_args
    with pytest.raises(SystemExit):
        parse_args(['--peak-gbs', '0'])
    with pytest.raises(SystemExit):
        parse_args(['--dtypes', 'fp64'])
    args = parse_args(['--batch-size', '8', '--dtypes', 'bf16'])
    assert (args.batch_size, args.dtypes, args.peak_gbs) == (8, ['bf16'], None)


def test_a_failed_kernel_is_not_reported_as_its_time(monkeypatch):
    """A kernel that failed on the GPU runs PyTorch's op from then on (one
    warning): its row says so instead of showing PyTorch's time as the
    kernel's, and other passes, dtypes and kernels keep theirs."""
    with FakeTensorMode():
        x = torch.empty(2, 64, 56, 56, device='cuda')
        # The record the op keeps when the forward 5x5 kernel fails.
        failed = depthwise_conv._variant('forward', x, (5, 5))
    monkeypatch.setattr(depthwise_conv, '_BROKEN', {failed})
    case = dict(kernel=(5, 5), fused=False)
    assert kb._fell_back(case, 'forward', torch.float32)
    assert not kb._fell_back(case, 'weight grad', torch.float32)
    assert not kb._fell_back(case, 'forward', torch.bfloat16)
    assert not kb._fell_back(
        dict(case, kernel=(7, 7)), 'forward', torch.float32)
    fused_case = dict(kernel=(3, 3), fused=True)
    assert not kb._fell_back(fused_case, 'fused forward', torch.float32)
    monkeypatch.setattr(fused_op, '_BROKEN', ['RuntimeError: no'])
    assert kb._fell_back(fused_case, 'fused forward', torch.float32)

    rows = [
        dict(ROW, impl='triton', ms=0.1, share=0.15, fell_back=True),
        dict(ROW, impl='torch', ms=0.1, share=0.15)
    ]
    assert kb.format_rows(rows).splitlines()[2] == (
        '| s1 | LKA conv0 | 5x5 | forward | fp32 | 51.4 | '
        'failed: PyTorch ran | - | 0.100 | 15% | - |')
