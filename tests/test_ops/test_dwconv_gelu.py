# Copyright (c) mmvan contributors. All rights reserved.
"""The fused depth-wise 3x3 + bias + GELU op: its Triton kernels run by
Triton's interpreter on CPU tensors, against PyTorch's operations computed
in float64, and compiled for sm_80 / sm_90 without a GPU."""
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode

from mmvan.ops import dwconv_gelu as fused
from mmvan.utils.errors import ConfigError


@pytest.fixture
def interpret(monkeypatch):
    monkeypatch.setenv('TRITON_INTERPRET', '1')


def _expected(x, weight, bias, grad):
    """Output and gradients of ``gelu(conv(x))`` in float64 with PyTorch's
    own operations."""
    inputs = [t.detach().double().requires_grad_() for t in (x, weight)]
    if bias is not None:
        inputs.append(bias.detach().double().requires_grad_())
    y = F.gelu(F.conv2d(*inputs, padding=1, groups=x.shape[1]))
    return y, torch.autograd.grad(y, inputs, grad.double())


def _run(x, weight, bias, grad, impl='triton'):
    inputs = [x, weight] + ([] if bias is None else [bias])
    inputs = [t.detach().requires_grad_() for t in inputs]
    y = fused.dwconv_gelu(*inputs[:2], inputs[2] if bias is not None else None,
                          impl)
    return y, torch.autograd.grad(y, inputs, grad)


def _close(got, want, rtol):
    scale = want.abs().max().item()
    err = (got.double() - want).abs().max().item()
    assert err <= rtol * scale, (err, scale)


# One tile, two tile rows (H > BLOCK_H = 16) and two tile columns
# (W > BLOCK_W = 64); odd sizes throughout.
@pytest.mark.parametrize('shape, channels_last, with_bias',
                         [((2, 3, 5, 7), False, True),
                          ((2, 3, 5, 7), True, False),
                          ((1, 2, 17, 67), False, False),
                          ((1, 2, 17, 67), True, True)])
def test_matches_pytorch_float32(interpret, shape, channels_last, with_bias):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(shape[1], 1, 3, 3, generator=g)
    bias = torch.randn(shape[1], generator=g) if with_bias else None
    grad = torch.randn(*shape, generator=g)
    y, grads = _run(x, weight, bias, grad)
    want_y, want_grads = _expected(x, weight, bias, grad)
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert y.is_contiguous(memory_format=torch.channels_last) == channels_last
    _close(y, want_y, 1e-5)
    assert len(grads) == len(want_grads)
    for got, want in zip(grads, want_grads):
        _close(got, want, 1e-5)


@pytest.mark.parametrize('shape, tiles_per_program', [((2, 64, 9, 11), 1),
                                                      ((2, 64, 9, 11), 3),
                                                      ((1, 130, 7, 9), 2)])
def test_channels_last_tiles_and_chunks(interpret, monkeypatch, shape,
                                        tiles_per_program):
    """Channels-last maps run kernels of their own (pixel tiles by
    channel blocks): several pixel tiles an image, weight-gradient programs
    summing one, several or a ragged number of them, and a ragged last
    channel block, against PyTorch in float64."""
    monkeypatch.setattr(fused, '_CL_TILES_PER_PROGRAM', tiles_per_program)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(
        *shape, generator=g).contiguous(memory_format=torch.channels_last)
    grid, block_p, block_c, _ = fused._launch_config_cl(x)
    assert grid[0] > shape[0] or grid[1] > 1  # more than one tile
    weight = torch.randn(shape[1], 1, 3, 3, generator=g)
    bias = torch.randn(shape[1], generator=g)
    grad = torch.randn(*shape, generator=g)
    with mock.patch.object(
            fused, '_kernels',
            side_effect=AssertionError('the NCHW kernels ran')):
        y, grads = _run(x, weight, bias, grad)
    want_y, want_grads = _expected(x, weight, bias, grad)
    assert y.is_contiguous(memory_format=torch.channels_last)
    _close(y, want_y, 1e-5)
    for got, want in zip(grads, want_grads):
        _close(got, want, 1e-5)


def test_runs_the_custom_op(interpret):
    """``impl='triton'`` runs the kernels (the op shows in the profile);
    ``'auto'`` on a CPU tensor and ``'torch'`` run PyTorch's operations,
    bit-identical to them."""
    x = torch.randn(1, 2, 4, 5)
    weight, bias = torch.randn(2, 1, 3, 3), torch.randn(2)

    def ops(impl):
        with torch.profiler.profile() as prof:
            y = fused.dwconv_gelu(x, weight, bias, impl)
        return y, {e.name for e in prof.events()}

    _, names = ops('triton')
    assert 'mmvan::dwconv3x3_gelu' in names
    want = F.gelu(F.conv2d(x, weight, bias, padding=1, groups=2))
    for impl in ('auto', 'torch'):
        y, names = ops(impl)
        assert 'mmvan::dwconv3x3_gelu' not in names
        assert torch.equal(y, want)


def test_weight_gradient_alone(interpret):
    """With no input gradient wanted, the weight and bias gradients are
    still exact."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 6, 5, generator=g)
    weight = torch.randn(3, 1, 3, 3, generator=g).requires_grad_()
    bias = torch.randn(3, generator=g).requires_grad_()
    grad = torch.randn(2, 3, 6, 5, generator=g)
    y = fused.dwconv_gelu(x, weight, bias, 'triton')
    got = torch.autograd.grad(y, [weight, bias], grad)
    _, want = _expected(x, weight, bias, grad)
    _close(got[0], want[1], 1e-5)
    _close(got[1], want[2], 1e-5)


def test_bfloat16_and_autocast(interpret):
    """bf16 activations with fp32 weights (what autocast hands the op):
    the output stays bf16, the weight gradient fp32, both within 1e-2 of
    float64 on the same (bf16-rounded) values."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 4, 7, 9, generator=g).bfloat16()
    weight = torch.randn(4, 1, 3, 3, generator=g)
    bias = torch.randn(4, generator=g)
    grad = torch.randn(2, 4, 7, 9, generator=g).bfloat16()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y, grads = _run(x, weight, bias, grad)
    assert y.dtype == torch.bfloat16
    assert [t.dtype
            for t in grads] == [torch.bfloat16, torch.float32, torch.float32]
    want_y, want_grads = _expected(x, weight, bias, grad)
    _close(y, want_y, 1e-2)
    for got, want in zip(grads, want_grads):
        _close(got, want, 1e-2)


def test_uncovered_arguments_fall_back_logged_once(interpret):
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    weight = torch.randn(2, 1, 3, 3, dtype=torch.float64)
    fused._LOGGED.clear()
    with mock.patch.object(fused, 'print_log') as log:
        for _ in range(2):
            y = fused.dwconv_gelu(x, weight, None, 'triton')
    assert log.call_count == 1
    assert 'torch.float64' in log.call_args[0][0]
    assert torch.equal(y, F.gelu(F.conv2d(x, weight, padding=1, groups=2)))
    with pytest.raises(ConfigError, match='impl'):
        fused.dwconv_gelu(x, weight, None, 'cuda')


def test_custom_op_registration(interpret):
    """Schema, fake tensor (torch.compile's graph capture), autograd
    registration and AOT dispatch, as torch.library checks them."""
    x = torch.randn(1, 2, 4, 5, requires_grad=True)
    weight = torch.randn(2, 1, 3, 3, requires_grad=True)
    bias = torch.randn(2, requires_grad=True)
    result = torch.library.opcheck(torch.ops.mmvan.dwconv3x3_gelu,
                                   (x, weight, bias))
    assert set(result.values()) == {'SUCCESS'}, result


@pytest.mark.slow
@pytest.mark.parametrize('capability, cases', [
    (80, [(torch.bfloat16, (16, 64))]),
    (90, [(torch.float32, (16, 64)), (torch.bfloat16, (16, 64)),
          (torch.bfloat16, (16, 16)), (torch.float32, (8, 8))]),
])
def test_compiles_for_gpus(capability, cases):
    """The kernels compile to cubins for sm_80 and sm_90 (what the
    interpreter cannot check), fp32 and bf16, with the tiles of VAN's
    56x56, 14x14 and 7x7 maps."""
    for dtype, block in cases:
        kernels = fused.compile_for_gpu(capability, dtype, block)
        assert len(kernels) == 3
        assert all(len(k.asm['cubin']) > 0 for k in kernels)


@pytest.mark.slow
@pytest.mark.parametrize('capability, dtype', [(80, torch.bfloat16),
                                               (90, torch.float32),
                                               (90, torch.bfloat16)])
def test_channels_last_kernels_compile_for_gpus(capability, dtype):
    """The channels-last kernels compile for sm_80 and sm_90 with the
    tile VAN's hidden maps launch (32 pixels by 64 channels)."""
    kernels = fused.compile_for_gpu(
        capability, dtype, (32, 64), channels_last=True)
    assert len(kernels) == 3
    assert all(len(k.asm['cubin']) > 0 for k in kernels)


@pytest.mark.parametrize('shape', [(32, 512, 56, 56), (32, 1280, 14, 14),
                                   (32, 2048, 7, 7)])
def test_channels_last_tiles_of_van_maps(shape):
    """The channels-last tile compiled above is the one VAN-b2's hidden
    maps launch."""
    with FakeTensorMode():
        x = torch.empty(*shape).contiguous(memory_format=torch.channels_last)
        _, block_p, block_c, warps = fused._launch_config_cl(x)
    assert (block_p, block_c, warps) == (32, 64, 4)


@pytest.mark.parametrize('size, block', [((56, 56), (16, 64)),
                                         ((14, 14), (16, 16)),
                                         ((7, 7), (8, 8))])
def test_tiles_of_van_maps(size, block):
    """The tiles compiled above are the ones VAN's maps launch."""
    grid, bh, bw, _ = fused._launch_config(torch.empty(2, 3, *size))
    assert (bh, bw) == block
    assert grid == (6, -(-size[0] // bh) * -(-size[1] // bw))


@pytest.mark.parametrize('layout',
                         [torch.contiguous_format, torch.channels_last])
def test_kernels_launch_on_the_tensors_device(monkeypatch, cuda_device_state,
                                              recording_kernel, layout):
    """Tensors on cuda:1 while cuda:0 is current: the forward kernel and
    both backward kernels launch with cuda:1 current (Triton launches on
    the current device); cuda:0 is current again after. Fake tensors
    stand in for CUDA memory."""
    kernel = recording_kernel
    for name in ('_kernels', '_kernels_cl'):
        monkeypatch.setattr(fused, name, lambda interpret:
                            (kernel, kernel, kernel))
    with FakeTensorMode():
        x = torch.empty(
            2, 4, 9, 9, device='cuda:1').contiguous(memory_format=layout)
        weight = torch.empty(4, 1, 3, 3, device='cuda:1')
        bias = torch.empty(4, device='cuda:1')
        assert fused.uses_triton(x, weight, bias)
        fused._forward(x, weight, bias)
        fused._backward(torch.empty_like(x), x, weight, bias, True)
    assert kernel.launches == [1, 1, 1]
    assert torch.cuda.current_device() == 0


@pytest.mark.parametrize('shape, channels_last, why', [
    ((1, 1, 8192, 8200), False, '66048 tiles a plane (over 65535)'),
    ((65536, 32768, 1, 1), False, '2147483648 (sample, channel) planes'),
    ((1, 512, 2048, 2049), True,
     'a channels-last sample spanning 2**31 elements'),
    ((1, 2, 0, 5), False, 'an empty input'),
])
def test_calls_past_the_launch_limits_run_pytorch(shape, channels_last, why):
    """Fake CUDA tensors the kernels cannot take: over 65535 tiles on the
    grid's second dimension, 2**31 planes on its first, a channels-last
    sample past the kernels' 32-bit offsets within a sample, or nothing to
    tile, run PyTorch's operations (logged once) instead of failing at
    launch (which would switch the kernels off for every later call) or
    addressing the wrong memory."""
    fused._LOGGED.clear()
    with FakeTensorMode(), mock.patch.object(fused, 'print_log') as log:
        x = torch.empty(*shape, device='cuda')
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        weight = torch.empty(shape[1], 1, 3, 3, device='cuda')
        assert not fused.uses_triton(x, weight)
        # The same map in NCHW: a plane within 32-bit offsets.
        if channels_last:
            assert fused.uses_triton(x.contiguous(), weight)
    log.assert_called_once()
    assert why in log.call_args[0][0]


def test_gradient_past_32_bit_offsets_is_laid_out_as_the_input(
        monkeypatch, cuda_device_state, recording_kernel):
    """A gradient view whose sample spans 2**31 elements (a slice of a
    wide channels-last map) reaches the kernels laid out as ``x``."""
    kernel = recording_kernel
    monkeypatch.setattr(fused, '_kernels_cl', lambda interpret:
                        (kernel, kernel, kernel))
    with FakeTensorMode():
        x = torch.empty(
            2, 8, 64, 64,
            device='cuda').contiguous(memory_format=torch.channels_last)
        wide = torch.empty(
            2, 2**20, 64, 64,
            device='cuda').contiguous(memory_format=torch.channels_last)
        grad = wide[:, :8]
        assert fused.sample_span(grad) >= 2**31
        weight = torch.empty(8, 1, 3, 3, device='cuda')
        fused._backward(grad, x, weight, None, True)
    # grad_cl_kernel(x, w, b, grad, gz, parts, C, H, W, *x.stride(),
    # *grad.stride(), ...)
    args = kernel.args[0]
    assert args[3].stride() == x.stride()
    assert tuple(args[13:17]) == x.stride()


@pytest.mark.skipif(
    torch.cuda.device_count() < 2, reason='needs two CUDA GPUs')
@pytest.mark.parametrize('channels_last', [False, True])
def test_cuda_kernels_run_on_the_tensors_gpu(channels_last, monkeypatch):
    """Tensors on the last GPU while the first is current (no
    ``torch.cuda.set_device``): the compiled kernels run there and match
    PyTorch's operations; the current device stays."""
    monkeypatch.delenv('TRITON_INTERPRET', raising=False)
    monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', False)
    device = torch.device('cuda', torch.cuda.device_count() - 1)
    torch.cuda.set_device(0)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 48, 19, 23, generator=g)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(48, 1, 3, 3, generator=g)
    bias = torch.randn(48, generator=g)
    grad = torch.randn(2, 48, 19, 23, generator=g)
    x, weight, bias, grad = (t.to(device) for t in (x, weight, bias, grad))
    y, grads = _run(x, weight, bias, grad)
    torch.cuda.synchronize(device)
    assert not fused._BROKEN, fused._BROKEN
    assert y.device == device and torch.cuda.current_device() == 0
    want_y, want_grads = _expected(x, weight, bias, grad)
    _close(y, want_y, 1e-5)
    for got, want in zip(grads, want_grads):
        assert got.device == device
        _close(got, want, 1e-5)


@pytest.mark.slow
def test_plane_past_32_bit_offsets_matches_pytorch(interpret):
    """A plane whose rows lie 2**30 elements apart (its third row past
    32-bit offsets, in 8 GiB of untouched virtual memory): the output is
    PyTorch's, not the values a wrapped 32-bit offset lands on."""
    try:
        base = torch.empty(2**32 + 8, dtype=torch.float16)
    except RuntimeError:  # no 8 GiB of address space to reserve
        pytest.skip('cannot reserve 8 GiB of virtual memory')
    start = 2**31
    x = base.as_strided((1, 1, 3, 3), (1, 1, 2**30, 1), start)
    rows = torch.arange(1., 10.).view(3, 3).half()
    for r in range(3):
        base[start + r * 2**30:start + r * 2**30 + 3] = rows[r]
    base[:3] = 100.  # where the third row's offset wraps to
    weight = torch.zeros(1, 1, 3, 3, dtype=torch.float16)
    weight[0, 0, 1, 1] = 1.  # the identity: y = gelu(x)
    y = fused.dwconv_gelu(x, weight, None, 'triton')
    _close(y, F.gelu(rows.double()).view(1, 1, 3, 3), 1e-3)
