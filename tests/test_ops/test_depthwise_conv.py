# Copyright (c) mmvan contributors. All rights reserved.
"""The depth-wise convolution kernels: run by Triton's interpreter on CPU
tensors and compared with PyTorch's convolution computed in float64, for
every kernel VAN and LSKA use; the fallbacks; the custom ops under
``torch.library.opcheck`` and ``torch.compile``; and the kernels compiled
for sm_80 / sm_90 without a GPU."""
import inspect
import threading
import time
import warnings
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
import triton
from torch._subclasses.fake_tensor import FakeTensorMode

from mmvan.models.layers.kernel_decomposition import LKA_KERNELS, LSKA_KERNELS
from mmvan.ops import depthwise_conv as dwc
from mmvan.ops import depthwise_conv2d, select_impl
from mmvan.utils.errors import ConfigError

pytestmark = pytest.mark.filterwarnings(
    'error::mmvan.ops.depthwise_conv.KernelFallbackWarning')


def first_fast(cases):
    """``cases`` for ``parametrize``, all but the first marked slow: the
    interpreter runs each Triton program in Python, so ``make test-fast``
    checks one case of each sweep and ``make test`` all of them."""
    slow = [pytest.param(*c, marks=pytest.mark.slow) for c in cases[1:]]
    return [cases[0], *slow]


@pytest.fixture
def interpret(monkeypatch):
    monkeypatch.setenv('TRITON_INTERPRET', '1')


@pytest.fixture
def fresh_state(monkeypatch):
    """Forget the variants that failed and the reasons logged so far."""
    for name in ('_BROKEN', '_WARNED', '_LOGGED'):
        monkeypatch.setattr(dwc, name, set())


def _inputs(shape,
            kernel,
            dtype=torch.float32,
            channels_last=False,
            bias=True,
            seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(shape[1], 1, *kernel, generator=g).to(dtype)
    b = torch.randn(shape[1], generator=g).to(dtype) if bias else None
    return x, w, b


def _expected(x, w, b, padding, dilation, grad=None, stride=1):
    """Output and gradients from PyTorch's convolution in float64."""
    inputs = [t.detach().double().requires_grad_() for t in (x, w)]
    if b is not None:
        inputs.append(b.detach().double().requires_grad_())
    y = F.conv2d(*inputs[:2], inputs[2] if b is not None else None, stride,
                 padding, dilation, x.shape[1])
    if grad is None:
        return y, None
    return y, torch.autograd.grad(y, inputs, grad.double())


def _run(x, w, b, padding, dilation, grad, impl='triton'):
    inputs = [t.detach().requires_grad_() for t in (x, w)]
    if b is not None:
        inputs.append(b.detach().requires_grad_())
    y = depthwise_conv2d(*inputs[:2], inputs[2] if b is not None else None, 1,
                         padding, dilation, impl)
    return y, torch.autograd.grad(y, inputs, grad)


def _close(got, want, rtol, what):
    """``got`` within ``rtol`` of ``want``'s largest magnitude."""
    scale = want.abs().max().item()
    err = (got.double() - want).abs().max().item()
    assert err <= rtol * scale, f'{what}: error {err:.3g} of {scale:.3g}'


def _check(shape,
           kernel,
           padding,
           dilation,
           dtype=torch.float32,
           channels_last=False,
           bias=True):
    x, w, b = _inputs(shape, kernel, dtype, channels_last, bias)
    assert select_impl(x, w, b, 1, padding, dilation, 'triton') == 'triton'
    want_y, _ = _expected(x, w, b, padding, dilation)
    grad = torch.randn(
        want_y.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    if channels_last:
        grad = grad.contiguous(memory_format=torch.channels_last)
    want_y, want_grads = _expected(x, w, b, padding, dilation, grad)
    y, grads = _run(x, w, b, padding, dilation, grad)
    ref = F.conv2d(x, w, b, 1, padding, dilation, shape[1])
    assert y.shape == ref.shape and y.dtype == dtype
    assert (y.is_contiguous(
        memory_format=torch.channels_last) == ref.is_contiguous(
            memory_format=torch.channels_last))
    rtol = 1e-5 if dtype == torch.float32 else 1e-2
    _close(y, want_y, rtol, 'output')
    for name, got, want in zip(('input', 'weight', 'bias'), grads, want_grads):
        assert got.shape == want.shape and got.dtype == dtype
        _close(got, want, rtol, f'{name} gradient')


def _lska(kernel_size, vertical=False):
    """LSKA's four depth-wise convolutions for ``kernel_size`` as
    ``(kernel, padding, dilation)``, built as lska.py builds them."""
    a, b, d = LSKA_KERNELS[kernel_size]
    pad = d * (b - 1) // 2
    plain = ((a, 1), (a // 2, 0), 1) if vertical else ((1, a), (0, a // 2), 1)
    dilated = ((b, 1), (pad, 0), d) if vertical else ((1, b), (0, pad), d)
    return plain, dilated


# The MLP's 3x3 (batch 2) and LKA's pair for each kernel size, odd sizes
# spanning several tiles (the interpreter's block is 4 x 8 x 8 in channels,
# rows, columns); channels over two channel blocks but for the dilated one.
LKA_CASES = [((2, 6, 13, 17), (3, 3), 1, 1)]
for _k in (7, 11, 21):
    _a, _b, _d = LKA_KERNELS[_k]
    LKA_CASES.append(((1, 5, 11, 10), (_a, _a), _a // 2, 1))
    LKA_CASES.append(((1, 4, 13, 12), (_b, _b), _d * (_b - 1) // 2, _d))
# The large LKA kernels (35: 11x11 and 53: 17x17, dilation 3; 41's 13x13
# lies between) on a map smaller than their reach.
for _k, _shape in ((35, (1, 4, 9, 10)), (53, (1, 4, 7, 8))):
    _, _b, _d = LKA_KERNELS[_k]
    LKA_CASES.append((_shape, (_b, _b), _d * (_b - 1) // 2, _d))


@pytest.mark.parametrize('shape,kernel,padding,dilation',
                         first_fast(LKA_CASES))
def test_lka_kernels_match_pytorch(interpret, shape, kernel, padding,
                                   dilation):
    _check(shape, kernel, padding, dilation)


# LSKA's 1 x k and k x 1 convolutions, plain and dilated, for every kernel
# size; the map wider (taller) than the dilated kernel's reach for the
# largest one.
LSKA_CASES = []
for _k in sorted(LSKA_KERNELS):
    for _vertical in (False, True):
        for _kernel, _padding, _dilation in _lska(_k, _vertical):
            _shape = (1, 5, 11, 9) if _k < 53 else (1, 4, 3, 53)
            if _vertical:
                _shape = _shape[:2] + _shape[2:][::-1]
            LSKA_CASES.append((_shape, _kernel, _padding, _dilation))
LSKA_CASES = sorted(set(LSKA_CASES))


@pytest.mark.parametrize('shape,kernel,padding,dilation',
                         first_fast(LSKA_CASES))
def test_lska_kernels_match_pytorch(interpret, shape, kernel, padding,
                                    dilation):
    _check(shape, kernel, padding, dilation)


@pytest.mark.parametrize(
    'shape,kernel,padding',
    first_fast([
        ((1, 4, 3, 60), (1, 53), (0, 26)),
        ((1, 4, 60, 3), (53, 1), (26, 0)),
    ]))
def test_plain_53_taps_match_pytorch(interpret, shape, kernel, padding):
    _check(shape, kernel, padding, 1, bias=False)


@pytest.mark.parametrize(
    'shape,kernel,padding,dilation',
    first_fast([
        ((2, 6, 13, 17), (3, 3), 1, 1),
        ((1, 5, 13, 12), (7, 7), 9, 3),
        ((1, 5, 3, 23), (1, 7), (0, 9), 3),
        ((1, 5, 20, 3), (11, 1), (15, 0), 3),
    ]))
def test_channels_last_matches_pytorch(interpret, shape, kernel, padding,
                                       dilation):
    _check(shape, kernel, padding, dilation, channels_last=True)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
@pytest.mark.parametrize(
    'shape,kernel,padding,dilation,channels_last',
    first_fast([
        ((2, 6, 13, 17), (3, 3), 1, 1, False),
        ((1, 4, 13, 12), (7, 7), 9, 3, True),
        ((1, 5, 3, 23), (1, 17), (0, 24), 3, False),
    ]))
def test_half_precision_matches_pytorch(interpret, dtype, shape, kernel,
                                        padding, dilation, channels_last):
    _check(shape, kernel, padding, dilation, dtype, channels_last)


def test_weight_gradient_over_batch_chunks(interpret):
    # Five samples summed in chunks of two (the last one short) and
    # padding wider than the kernel's reach.
    _check((5, 3, 9, 12), (3, 3), (3, 2), 1)
    _check((5, 3, 9, 12), (3, 5), (0, 1), (2, 1))


@pytest.mark.parametrize('kernel,padding,dilation', [((3, 3), 1, 1),
                                                     ((1, 5), (0, 4), 2)])
def test_double_backward_matches_pytorch(interpret, kernel, padding, dilation):
    x, w, b = _inputs((1, 4, 6, 7), kernel)
    g = torch.Generator().manual_seed(2)
    v = torch.randn(1, 4, 6, 7, generator=g)
    v_w = torch.randn(4, 1, *kernel, generator=g)

    def penalty(x, w, b, conv):
        y = conv(x, w, b)
        dx, dw, db = torch.autograd.grad(
            (y * y).sum(), (x, w, b), create_graph=True)
        return (dx * v).sum() + (dw * v_w).sum() + db.sum()

    ours = [t.detach().requires_grad_() for t in (x, w, b)]
    penalty(
        *ours, lambda *a: depthwise_conv2d(
            *a, padding=padding, dilation=dilation, impl='triton')).backward()
    want = [t.detach().double().requires_grad_() for t in (x, w, b)]
    penalty(*want, lambda *a: F.conv2d(*a, 1, padding, dilation, 4)).backward()
    for name, got, ref in zip(('input', 'weight', 'bias'), ours, want):
        _close(got.grad, ref.grad, 1e-5, name)


def test_strided_view_matches_pytorch(interpret):
    x, w, b = _inputs((2, 8, 13, 20), (3, 3))
    # Neither NCHW- nor channels-last-contiguous; a strided weight and bias.
    x, w, b = x[:, 1::2, :, ::2], w[::2], b[::2]
    assert select_impl(x, w, b, padding=1, impl='triton') == 'triton'
    y = depthwise_conv2d(x, w, b, padding=1, impl='triton')
    _close(y, _expected(x, w, b, 1, 1)[0], 1e-5, 'output')


def test_deterministic_weight_gradient(interpret):
    x, w, b = _inputs((3, 4, 9, 10), (3, 3))
    grad = torch.randn(3, 4, 9, 10)
    torch.use_deterministic_algorithms(True)
    try:
        runs = []
        for _ in range(2):
            w = w.detach().requires_grad_()
            y = depthwise_conv2d(x, w, b, padding=1, impl='triton')
            runs.append(torch.autograd.grad(y, w, grad)[0])
    finally:
        torch.use_deterministic_algorithms(False)
    assert torch.equal(runs[0], runs[1])
    _close(runs[0], _expected(x, w, b, 1, 1, grad)[1][1], 1e-5, 'weight')


def test_auto_and_torch_run_pytorch_on_cpu(fresh_state):
    x, w, b = _inputs((1, 4, 7, 7), (3, 3))
    with mock.patch.object(dwc, '_dw_conv_op') as op, mock.patch.object(
            dwc, 'print_log') as log:
        for impl in ('auto', 'torch'):
            assert select_impl(x, w, b, padding=1, impl=impl) == 'torch'
            y = depthwise_conv2d(x, w, b, padding=1, impl=impl)
            _close(y, _expected(x, w, b, 1, 1)[0], 1e-6, impl)
    op.assert_not_called()
    log.assert_not_called()
    with pytest.raises(ConfigError, match='impl'):
        depthwise_conv2d(x, w, b, impl='cuda')


def test_triton_without_interpreter_on_cpu_falls_back(monkeypatch,
                                                      fresh_state):
    monkeypatch.delenv('TRITON_INTERPRET', raising=False)
    x, w, b = _inputs((1, 4, 7, 7), (3, 3))
    with mock.patch.object(dwc, 'print_log') as log:
        for _ in range(2):
            y = depthwise_conv2d(x, w, b, padding=1, impl='triton')
            _close(y, _expected(x, w, b, 1, 1)[0], 1e-6, 'output')
    log.assert_called_once()
    assert 'on cpu' in log.call_args[0][0]


@pytest.mark.parametrize(
    'case',
    ['float64', 'stride', 'multiplier', 'too_large', 'same', 'mixed_dtype'])
def test_uncovered_input_falls_back_logged_once(interpret, fresh_state, case):
    shape, kernel = (2, 4, 9, 11), (3, 3)
    kwargs = dict(stride=1, padding=1, dilation=1)
    x, w, b = _inputs(shape, kernel)
    if case == 'float64':
        x, w, b = x.double(), w.double(), b.double()
    elif case == 'stride':
        kwargs['stride'] = (2, 1)
    elif case == 'multiplier':  # two filters per channel: not depth-wise
        w = torch.cat([w, w.flip(-1)])
        b = torch.cat([b, b])
    elif case == 'too_large':
        x, w, b = _inputs((1, 4, 2, 70), (1, 65))
        kwargs['padding'] = (0, 32)
    elif case == 'same':
        kwargs['padding'] = 'same'
    elif case == 'mixed_dtype':
        b = b.half()
    with mock.patch.object(dwc, 'print_log') as log, mock.patch.object(
            dwc, '_dw_conv_op') as op:
        for _ in range(2):
            if case == 'mixed_dtype':
                # PyTorch's own error for what F.conv2d rejects.
                with pytest.raises(RuntimeError):
                    F.conv2d(x, w, b, groups=x.shape[1], **kwargs)
                with pytest.raises(RuntimeError):
                    depthwise_conv2d(x, w, b, impl='triton', **kwargs)
                continue
            y = depthwise_conv2d(x, w, b, impl='triton', **kwargs)
            want = _expected(
                x,
                w,
                b,
                kwargs['padding'],
                kwargs['dilation'],
                stride=kwargs['stride'])[0]
            assert y.shape == want.shape
            _close(y, want, 1e-6, case)
    op.assert_not_called()
    log.assert_called_once()


def test_kernel_failure_warns_once_and_falls_back(interpret, fresh_state):
    x, w, b = _inputs((1, 4, 7, 9), (3, 3))
    grad = torch.randn(1, 4, 7, 9)
    want_y, want_grads = _expected(x, w, b, 1, 1, grad)

    def broken(*args, **kwargs):
        raise RuntimeError('no kernel image is available')

    with mock.patch.object(dwc, '_launch_conv', broken):
        with pytest.warns(
                dwc.KernelFallbackWarning,
                match='no kernel image is available') as record:
            y, grads = _run(x, w, b, 1, 1, grad)
        assert len(record) == 1
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            with mock.patch.object(dwc, 'print_log'):
                y2 = depthwise_conv2d(x, w, b, padding=1, impl='triton')
                assert select_impl(
                    x, w, b, padding=1, impl='triton') == 'torch'
    for got, want in zip((y, y2) + grads, (want_y, want_y) + want_grads):
        _close(got, want, 1e-5, 'fallback')


def test_autocast_runs_kernels_in_low_precision(interpret):
    x, w, b = _inputs((1, 4, 9, 10), (5, 5))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y = depthwise_conv2d(x, w, b, padding=2, impl='triton')
        want = F.conv2d(x, w, b, 1, 2, 1, 4)
    assert y.dtype == want.dtype == torch.bfloat16
    _close(y, want.double(), 1e-2, 'output')


def test_custom_ops_pass_opcheck(interpret):
    x, w, b = _inputs((1, 4, 5, 6), (3, 3))
    grad = torch.randn(1, 4, 5, 6)
    x.requires_grad_()
    w.requires_grad_()
    b.requires_grad_()
    ops = torch.ops.mmvan
    torch.library.opcheck(ops.depthwise_conv2d.default,
                          (x, w, b, [1, 1], [1, 1]))
    torch.library.opcheck(ops.depthwise_conv2d_input_grad.default,
                          (grad, w.detach(), [5, 6], [1, 1], [1, 1]))
    torch.library.opcheck(ops.depthwise_conv2d_weight_grad.default,
                          (grad, x.detach(), w.detach(), [1, 1], [1, 1], True))


def test_compiles_into_one_graph(interpret):
    x, w, b = _inputs((1, 4, 7, 9), (1, 5))
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(str(gm.graph))
        return torch._dynamo.backends.debugging.aot_eager(gm, example_inputs)

    def loss(x, w, b):
        y = depthwise_conv2d(x, w, b, padding=(0, 2), impl='triton')
        return (y * y).sum()

    torch._dynamo.reset()
    compiled = torch.compile(loss, backend=backend, fullgraph=True)
    inputs = [t.clone().requires_grad_() for t in (x, w, b)]
    out = compiled(*inputs)
    out.backward()
    assert len(graphs) == 1 and 'mmvan.depthwise_conv2d' in graphs[0]
    want = [t.detach().double().requires_grad_() for t in (x, w, b)]
    want_out = F.conv2d(*want, 1, (0, 2), 1, 4).square().sum()
    want_out.backward()
    _close(out.detach(), want_out.detach(), 1e-5, 'loss')
    for got, ref in zip(inputs, want):
        _close(got.grad, ref.grad, 1e-5, 'gradient')


# Shared memory per block on sm_80 / sm_90.
SHARED_LIMIT = {80: 163 * 1024, 90: 227 * 1024}


@pytest.mark.slow
@pytest.mark.parametrize('capability', [80, 90])
def test_kernels_compile_for_gpus(monkeypatch, capability):
    monkeypatch.delenv('TRITON_INTERPRET', raising=False)
    builds = [
        # The largest block of each kernel, both layouts, every dtype.
        (torch.float32, (3, 3), False, 'largest'),
        (torch.float16, (7, 7), False, 'largest'),
        (torch.bfloat16, (1, 53), False, 'largest'),
        (torch.float16, (17, 1), True, 'largest'),
        (torch.float32, (17, 17), True, 'largest'),
    ]
    if capability == 90:
        # Every configuration the H100's autotuner tries for the MLP's
        # 3x3 in bf16 channels-last.
        builds.append((torch.bfloat16, (3, 3), True, 'all'))
    for dtype, kernel, channels_last, configs in builds:
        compiled = dwc.compile_for_gpu(capability, dtype, kernel,
                                       channels_last, configs)
        n_fwd = len(dwc._fwd_configs(channels_last, interpret=False))
        assert len(compiled) == (n_fwd if configs == 'all' else 1) + 1
        for kernel_binary in compiled:
            assert kernel_binary.asm['cubin']
            assert kernel_binary.metadata.shared <= SHARED_LIMIT[capability]


def test_autotuner_skips_blocks_larger_than_the_map():

    def blocks(configs):
        return sorted(
            (c.kwargs['BLOCK_C'], c.kwargs['BLOCK_H'], c.kwargs['BLOCK_W'])
            for c in configs)

    for channels_last in (False, True):
        configs = dwc._fwd_configs(channels_last, interpret=False)
        kept = dwc._prune_configs(configs, dict(OH=14, OW=14))
        assert kept and all(
            c.kwargs['BLOCK_H'] <= 16 and c.kwargs['BLOCK_W'] <= 16
            for c in kept)
        assert dwc._prune_configs(configs, dict(OH=56, OW=56)) == configs
    # A 1 x 1 map: the blocks of at most 4 x 4, else the smallest one.
    tiny = dict(OH=1, OW=1)
    assert blocks(dwc._prune_configs(dwc._fwd_configs(False, False),
                                     tiny)) == [(8, 8, 16)]
    assert blocks(dwc._prune_configs(dwc._fwd_configs(True, False),
                                     tiny)) == [(64, 4, 4), (128, 2, 4)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
@pytest.mark.parametrize('dtype,channels_last', [(torch.float32, False),
                                                 (torch.bfloat16, True)])
def test_cuda_kernels_match_pytorch(dtype, channels_last, monkeypatch):
    # The compiled kernels on a GPU, at VAN-b2 stage-3 sizes, against
    # PyTorch's convolution in float64 (TF32 off).
    monkeypatch.delenv('TRITON_INTERPRET', raising=False)
    monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', False)
    cases = [((3, 3), 1, 1), ((7, 7), 9, 3), ((1, 7), (0, 9), 3),
             ((17, 17), 24, 3), ((53, 1), (26, 0), 1)]
    rtol = 1e-5 if dtype == torch.float32 else 1e-2
    for kernel, padding, dilation in cases:
        x, w, b = [
            t.cuda()
            for t in _inputs((4, 96, 15, 14), kernel, dtype, channels_last)
        ]
        grad = torch.randn(
            _expected(x, w, b, padding, dilation)[0].shape,
            device='cuda').to(dtype)
        want_y, want_grads = _expected(x, w, b, padding, dilation, grad)
        y, grads = _run(x, w, b, padding, dilation, grad)
        _close(y, want_y, rtol, f'{kernel} output')
        for name, got, want in zip(('input', 'weight', 'bias'), grads,
                                   want_grads):
            _close(got, want, rtol, f'{kernel} {name} gradient')


def test_kernels_launch_on_the_tensors_device(monkeypatch, fresh_state,
                                              cuda_device_state,
                                              recording_kernel):
    # Tensors on cuda:1 while cuda:0 is current (a model moved with
    # .to('cuda:1'), no torch.cuda.set_device): every launch, forward and
    # both gradients, happens with cuda:1 current; cuda:0 is current again
    # after. Fake tensors stand in for CUDA memory.
    kernel = recording_kernel
    monkeypatch.setattr(
        dwc, '_kernels', lambda interpret: dict(
            fwd_tuned={
                False: kernel,
                True: kernel
            }, wgrad=kernel))
    with FakeTensorMode():
        x = torch.empty(2, 4, 9, 9, device='cuda:1')
        w = torch.empty(4, 1, 3, 3, device='cuda:1')
        b = torch.empty(4, device='cuda:1')
        assert select_impl(x, w, b, padding=1, impl='auto') == 'triton'
        y = dwc._launch_conv(x, w.view(4, 9), b, (3, 3), (9, 9), (1, 1),
                             (1, 1))
        dwc._launch_conv(y, w.view(4, 9), None, (3, 3), (9, 9), (1, 1), (1, 1))
        dwc._launch_wgrad(y, x, (3, 3), (1, 1), (1, 1), True)
    assert kernel.launches == [1, 1, 1]
    assert torch.cuda.current_device() == 0


@pytest.mark.parametrize('case', ['channels', 'output'])
def test_calls_past_the_launch_limits_run_pytorch(fresh_state, case):
    # Fake CUDA tensors: over 65535 channels (the grid's second dimension
    # holds one channel a program in the narrowest NCHW block), or an
    # output sample (padding wider than the kernel) past the kernels'
    # 32-bit offsets within a sample, run PyTorch's op, logged once.
    with FakeTensorMode():
        c, hw, padding = (65536, 4, 1) if case == 'channels' else (2, 1, 32767)
        x = torch.empty(1, c, hw, hw, device='cuda')
        w = torch.empty(c, 1, 3, 3, device='cuda')
        b = torch.empty(c, device='cuda')
        with mock.patch.object(dwc, 'print_log') as log:
            assert select_impl(x, w, b, 1, padding, 1, 'auto') == 'torch'
    log.assert_called_once()
    assert ('channels (over 65535)' if case == 'channels' else
            'a sample spanning 2**31') in log.call_args[0][0]
    # Batches past 2**31 elements whose samples are within them run the
    # kernels (sample offsets are 64-bit).
    with FakeTensorMode():
        x = torch.empty(1024, 512, 64, 64, device='cuda')
        w = torch.empty(512, 1, 3, 3, device='cuda')
        assert x.numel() >= 2**31
        assert select_impl(x, w, None, 1, 1, 1, 'auto') == 'triton'


@pytest.mark.skipif(
    torch.cuda.device_count() < 2, reason='needs two CUDA GPUs')
@pytest.mark.parametrize('channels_last', [False, True])
def test_cuda_kernels_run_on_the_tensors_gpu(channels_last, monkeypatch):
    # Tensors on the last GPU while the first is current (no
    # torch.cuda.set_device, as init_model(..., device='cuda:1') leaves
    # it): the kernels, the autotuner's timing runs included, run there;
    # forward and gradients match PyTorch's and the current device stays.
    monkeypatch.delenv('TRITON_INTERPRET', raising=False)
    monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', False)
    device = torch.device('cuda', torch.cuda.device_count() - 1)
    torch.cuda.set_device(0)
    for kernel, padding, dilation in (((3, 3), 1, 1), ((1, 7), (0, 9), 3)):
        # A map size of its own: the autotuner tunes it afresh.
        x, w, b = [
            t.to(device)
            for t in _inputs((3, 40, 17,
                              29), kernel, torch.float32, channels_last)
        ]
        grad = torch.randn(
            _expected(x, w, b, padding, dilation)[0].shape, device=device)
        want_y, want_grads = _expected(x, w, b, padding, dilation, grad)
        y, grads = _run(x, w, b, padding, dilation, grad)
        torch.cuda.synchronize(device)
        assert y.device == device and torch.cuda.current_device() == 0
        _close(y, want_y, 1e-5, f'{kernel} output')
        for name, got, want in zip(('input', 'weight', 'bias'), grads,
                                   want_grads):
            assert got.device == device
            _close(got, want, 1e-5, f'{kernel} {name} gradient')


class SlowKernel:
    """Stands in for the forward kernel under Triton's autotuner: each
    launch takes 10 ms, the GIL released (as a GPU's timing runs do)."""
    fn = staticmethod(dwc._dw_conv_fwd)
    arg_names = list(inspect.signature(dwc._dw_conv_fwd).parameters)

    def run(self, *args, grid, warmup, **kwargs):
        time.sleep(0.01)


def test_threads_tune_the_forward_kernel_one_at_a_time(monkeypatch):
    # Triton's autotuner, as _kernels builds it, on a GPU's six block
    # shapes: a thread that starts tuning a 64 x 64 map while another
    # tunes a 4 x 4 one (one shape left after pruning) must not find the
    # autotuner's state dropped by the other's end.
    tuned = triton.autotune(
        configs=dwc._fwd_configs(False, interpret=False),
        key=dwc._TUNING_KEY,
        prune_configs_by=dict(early_config_prune=dwc._prune_configs),
        do_bench=lambda call, quantiles: (call(), [1.0] * 3)[1])(
            SlowKernel())
    monkeypatch.setattr(dwc, '_kernels',
                        lambda interpret: dict(fwd_tuned={False: tuned}))
    errors = []

    def launch(size):
        x = torch.zeros(1, 4, size, size)
        try:
            dwc._launch_conv(x, torch.zeros(4, 9), None, (3, 3), (size, size),
                             (1, 1), (1, 1))
        except Exception as exc:  # noqa: B902 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=launch, args=(s, )) for s in (4, 64)]
    threads[0].start()
    time.sleep(0.005)
    threads[1].start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(tuned.cache) == 2
