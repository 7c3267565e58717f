# Copyright (c) mmvan contributors. All rights reserved.
"""Depth-wise 2-D convolution: Triton kernels, their ``torch.library``
custom ops and the PyTorch reference.

:func:`depthwise_conv2d` has the semantics of
``F.conv2d(x, weight, bias, stride, padding, dilation, groups=C)`` with a
``(C, 1, KH, KW)`` weight. On CUDA it runs three Triton kernels, one per
pass, each reading and writing the storage dtype (float32, bfloat16 or
float16) and summing in float32:

* forward: a program computes a ``BLOCK_C x BLOCK_H x BLOCK_W`` output
  tile; every tap is a shifted, masked load of the input tile (the halo
  comes from the neighbouring tiles through L1/L2), the ``BLOCK_C`` weights
  of the tap are one register vector, the bias is added in the epilogue;
* input gradient: the same kernel run on the output gradient with the
  flipped kernel and the complementary padding (stride 1);
* weight gradient: a program loads an output-gradient tile once per
  sample, multiplies it with the shifted input tile of each tap and keeps
  one fp32 partial sum per (tap, channel) in registers over a chunk of the
  batch; the partial sums of all programs are then added in a fixed order
  (no atomics), and the block shape is fixed rather than autotuned, so the
  result is the same on every run (``torch.use_deterministic_algorithms``
  needs nothing else).

Strides of the tensors are kernel arguments, so NCHW and channels-last
(and other strided views) run the same kernels; the autotuner keeps one
set of block shapes per layout. Inputs the kernels do not cover (another
dtype, a conv stride other than 1, a weight that is not ``(C, 1, KH,
KW)``, more than :data:`MAX_TAPS` taps, a device other than CUDA, more
than 65535 samples or channels (the launch grid's limits), a sample of the
input or output spanning ``2**31`` elements (offsets within a sample are
32-bit, the sample's own 64-bit)) run PyTorch's ``F.conv2d``; the reason
is logged once. A kernel that fails to compile or launch on first use
falls back the same way with one :class:`KernelFallbackWarning` naming the
cause. Kernels launch on the tensors' GPU, made the current device for the
launch (Triton launches on the current one).

With ``TRITON_INTERPRET=1`` in the environment when a kernel is first
used, ``impl='triton'`` runs the same kernels on CPU tensors in Triton's
interpreter (with a single block configuration); that is how they are
tested without a GPU. (The interpreter converts float32 to bfloat16 by
truncation where a GPU rounds to nearest even: bfloat16 results there can
differ from a GPU's in the last bit.)
"""
import contextlib
import functools
import logging
import math
import os
import threading
import warnings
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import print_log

from mmvan.utils.errors import ConfigError

try:  # Triton is optional: without it every call runs PyTorch's op.
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the installation
    triton = tl = None

__all__ = [
    'depthwise_conv2d', 'depthwise_conv2d_reference', 'select_impl',
    'KernelFallbackWarning', 'MAX_TAPS', 'MAX_KERNEL', 'IMPLS',
    'launch_device', 'GRID_YZ_LIMIT', 'failed_variants', 'is_channels_last',
    'sample_span'
]

IMPLS = ('auto', 'triton', 'torch')
# Largest kernel the Triton kernels take: each side, and taps in all (the
# taps are unrolled at compile time). 17 x 17 (LKA's 53 = 5 + 3 * 16) and
# LSKA's 1 x 53 / 53 x 1 fit.
MAX_KERNEL = 64
MAX_TAPS = 400
_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# Programs along a launch grid's second and third dimensions (CUDA's
# limit); the first takes 2**31 - 1.
GRID_YZ_LIMIT = 65535
# Taps a weight-gradient program keeps partial sums for (a power of two).
_WGRAD_TAPS = 64


class KernelFallbackWarning(RuntimeWarning):
    """A Triton kernel failed to compile or launch; PyTorch's op ran."""


def launch_device(t):
    """A context that makes ``t``'s CUDA device the current one, for a
    kernel launch (a no-op for tensors elsewhere).

    Triton launches a kernel on ``torch.cuda.current_device()`` and that
    device's current stream, whatever device the tensors it is given are
    on; a model on ``cuda:1`` while the current device is ``cuda:0``
    would otherwise run its kernels (and the autotuner's timing runs) on
    the wrong GPU.
    """
    if t.device.type == 'cuda':
        return torch.cuda.device(t.device)
    return contextlib.nullcontext()


def sample_span(t):
    """Elements one sample of ``t`` spans: the larger of its size and one
    past its farthest element's offset from the sample's first. Kernel
    offsets within a sample are 32-bit integers, so it must stay below
    ``2**31``."""
    reach = sum((size - 1) * step
                for size, step in zip(t.shape[1:],
                                      t.stride()[1:])) + 1
    return max(reach, t[0].numel())


def depthwise_conv2d_reference(x,
                               weight,
                               bias=None,
                               stride=1,
                               padding=0,
                               dilation=1):
    """The PyTorch op the kernels must match: ``F.conv2d`` with
    ``groups=C``."""
    return F.conv2d(x, weight, bias, stride, padding, dilation, x.shape[1])


# ---------------------------------------------------------------- kernels
# Plain functions, made Triton kernels on first use (:func:`_kernels`), so
# that ``TRITON_INTERPRET`` is read then rather than at import time. They
# call Triton builtins only (``tl.full``, ``tl.reduce``; not the standard
# library's ``tl.zeros``, ``tl.sum``, ``tl.cdiv``, which are jit functions
# made when Triton is imported): the interpreter replaces builtins, so the
# kernels run there whether or not ``TRITON_INTERPRET`` was set when Triton
# was imported. Sums use the standard library's combine function, which
# the interpreter recognises (and sums with numpy).
_SUM = tl.standard._sum_combine if tl is not None else None


def _dw_conv_fwd(x_ptr, w_ptr, b_ptr, y_ptr, C, H, W, OH, OW, sxn, sxc, sxh,
                 sxw, syn, syc, syh, syw, pad_h, pad_w, dil_h, dil_w,
                 KH: tl.constexpr, KW: tl.constexpr, HAS_BIAS: tl.constexpr,
                 CHANNELS_LAST: tl.constexpr, BLOCK_C: tl.constexpr,
                 BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """``y[n, c, oh, ow] = b[c] + sum_taps w[c, kh, kw] *
    x[n, c, oh - pad_h + kh * dil_h, ow - pad_w + kw * dil_w]``, zero
    outside ``x``; grid ``(tiles of y, channel blocks, N)``."""
    pid_s = tl.program_id(0)
    pid_c = tl.program_id(1)
    n = tl.program_id(2).to(tl.int64)
    tiles_w = (OW + BLOCK_W - 1) // BLOCK_W
    th = pid_s // tiles_w
    tw = pid_s % tiles_w
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)[:, None, None]
    oh = th * BLOCK_H + tl.arange(0, BLOCK_H)[None, :, None]
    ow = tw * BLOCK_W + tl.arange(0, BLOCK_W)[None, None, :]
    mask_c = c < C
    x_base = x_ptr + n * sxn + c * sxc
    acc = tl.full([BLOCK_C, BLOCK_H, BLOCK_W], 0.0, tl.float32)
    # Rows are a loop, columns unrolled: a 17 x 17 kernel compiles in
    # seconds rather than minutes.
    for kh in range(KH):
        ih = oh - pad_h + kh * dil_h
        mask_h = mask_c & (ih >= 0) & (ih < H)
        row = x_base + ih * sxh
        for kw in tl.static_range(KW):
            iw = ow - pad_w + kw * dil_w
            m = mask_h & (iw >= 0) & (iw < W)
            xv = tl.load(row + iw * sxw, mask=m, other=0.0)
            wv = tl.load(w_ptr + c * (KH * KW) + (kh * KW + kw), mask=mask_c)
            acc += xv.to(tl.float32) * wv.to(tl.float32)
    if HAS_BIAS:
        acc += tl.load(b_ptr + c, mask=mask_c).to(tl.float32)
    m_out = mask_c & (oh < OH) & (ow < OW)
    y_off = n * syn + c * syc + oh * syh + ow * syw
    tl.store(y_ptr + y_off, acc.to(y_ptr.dtype.element_ty), mask=m_out)


def _dw_conv_wgrad(x_ptr, g_ptr, pw_ptr, pb_ptr, N, C, H, W, OH, OW,
                   n_per_chunk, sxn, sxc, sxh, sxw, sgn, sgc, sgh, sgw, pad_h,
                   pad_w, dil_h, dil_w, KH: tl.constexpr, KW: tl.constexpr,
                   KH_PER: tl.constexpr, TAPS: tl.constexpr,
                   HAS_BIAS: tl.constexpr, BLOCK_C: tl.constexpr,
                   BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """Partial weight (and bias) gradients.

    Grid ``(tiles of g, channel blocks, batch chunks * row groups)``. A
    program takes the kernel rows ``[KH_PER * group, + KH_PER)`` and the
    samples of one batch chunk, and writes ``pw[row, tap, c]`` (fp32)
    where ``row = chunk * tiles + tile``; ``pb[row, c]`` likewise from the
    first row group. The caller sums over ``row``.
    """
    pid_s = tl.program_id(0)
    pid_c = tl.program_id(1)
    pid_r = tl.program_id(2)
    groups = (KH + KH_PER - 1) // KH_PER
    chunk = pid_r // groups
    kh0 = (pid_r % groups) * KH_PER
    tiles_w = (OW + BLOCK_W - 1) // BLOCK_W
    th = pid_s // tiles_w
    tw = pid_s % tiles_w
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)[:, None, None]
    oh = th * BLOCK_H + tl.arange(0, BLOCK_H)[None, :, None]
    ow = tw * BLOCK_W + tl.arange(0, BLOCK_W)[None, None, :]
    mask_c = c < C
    mask_g = mask_c & (oh < OH) & (ow < OW)
    taps = tl.arange(0, TAPS)[:, None]
    acc = tl.full([TAPS, BLOCK_C], 0.0, tl.float32)
    acc_b = tl.full([BLOCK_C], 0.0, tl.float32)
    n_start = chunk * n_per_chunk
    n_end = tl.minimum(n_start + n_per_chunk, N)
    for n in range(n_start, n_end):
        n64 = tl.cast(n, tl.int64)
        g = tl.load(
            g_ptr + n64 * sgn + c * sgc + oh * sgh + ow * sgw,
            mask=mask_g,
            other=0.0).to(tl.float32)
        if HAS_BIAS:
            acc_b += tl.reduce(tl.reduce(g, 2, _SUM), 1, _SUM)
        x_base = x_ptr + n64 * sxn + c * sxc
        for i in range(KH_PER):
            kh = kh0 + i
            ih = oh - pad_h + kh * dil_h
            mask_h = mask_c & (ih >= 0) & (ih < H) & (kh < KH)
            row = x_base + ih * sxh
            for kw in range(KW):
                iw = ow - pad_w + kw * dil_w
                m = mask_h & (iw >= 0) & (iw < W)
                xv = tl.load(row + iw * sxw, mask=m, other=0.0)
                s = tl.reduce(
                    tl.reduce(g * xv.to(tl.float32), 2, _SUM), 1, _SUM)
                acc = tl.where(taps == i * KW + kw, acc + s[None, :], acc)
    tiles = ((OH + BLOCK_H - 1) // BLOCK_H) * tiles_w
    row_id = (chunk * tiles + pid_s).to(tl.int64)
    c1 = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)[None, :]
    tap = kh0 * KW + taps
    m_w = (c1 < C) & (taps < KH_PER * KW) & (tap < KH * KW)
    tl.store(pw_ptr + (row_id * (KH * KW) + tap) * C + c1, acc, mask=m_w)
    if HAS_BIAS:
        c0 = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
        tl.store(pb_ptr + row_id * C + c0, acc_b, mask=(c0 < C) & (kh0 == 0))


def _fwd_configs(channels_last, interpret):
    """Block shapes tried by the autotuner (one under the interpreter,
    which takes only one)."""
    if interpret:
        return [
            triton.Config(dict(BLOCK_C=4, BLOCK_H=8, BLOCK_W=8), num_warps=1)
        ]
    if channels_last:  # channels contiguous: wide in channels
        shapes = [(32, 4, 8, 4), (64, 4, 4, 4), (64, 2, 8, 4), (32, 8, 8, 8),
                  (128, 2, 4, 4), (16, 8, 16, 4)]
    else:  # rows contiguous: wide in columns
        shapes = [(1, 16, 32, 4), (2, 16, 16, 4), (4, 8, 32, 4),
                  (1, 32, 32, 8), (8, 8, 16, 4), (2, 8, 64, 4)]
    return [
        triton.Config(
            dict(BLOCK_C=bc, BLOCK_H=bh, BLOCK_W=bw),
            num_warps=warps,
            num_stages=2) for bc, bh, bw, warps in shapes
    ]


def _prune_configs(configs, named_args, **kwargs):
    """Drop the block shapes far larger than the output map (a 14 x 14
    map has nothing to gain from 32-row tiles); keep at least one."""
    oh = triton.next_power_of_2(max(named_args['OH'], 4))
    ow = triton.next_power_of_2(max(named_args['OW'], 4))
    keep = [
        c for c in configs
        if c.kwargs['BLOCK_H'] <= oh and c.kwargs['BLOCK_W'] <= ow
    ]
    return keep or [
        min(configs, key=lambda c: c.kwargs['BLOCK_H'] * c.kwargs['BLOCK_W'])
    ]


def _wgrad_blocks(channels_last, interpret):
    """``(BLOCK_C, BLOCK_H, BLOCK_W, num_warps)`` of the weight-gradient
    kernel: one fixed configuration, so that the summation order (and so
    the result) does not depend on an autotuner's pick."""
    if interpret:
        return 4, 8, 8, 1
    if channels_last:
        return 32, 4, 8, 4
    return 4, 8, 32, 4


# Triton's autotuner keeps the arguments of the call it is tuning in its
# own attributes, and drops them when that call ends: calls from several
# threads at once (the autograd engine runs each GPU's backward in a thread
# of its own; ``nn.DataParallel``'s replicas) launch the tuned kernel one
# at a time.
_TUNER_LOCK = threading.Lock()
# What the forward block shapes are tuned for (Triton adds the dtypes of
# the tensor arguments); each layout has an autotuner of its own.
_TUNING_KEY = ['C', 'OH', 'OW', 'KH', 'KW', 'dil_h', 'dil_w']


@functools.lru_cache(maxsize=None)
def _kernels(interpret):
    """The Triton kernels; ``interpret`` is the interpreter flag they are
    built under (read from the environment by ``triton.jit``)."""
    fwd = triton.jit(_dw_conv_fwd)
    fwd_tuned = {
        cl:
        triton.autotune(
            configs=_fwd_configs(cl, interpret),
            key=_TUNING_KEY,
            prune_configs_by=dict(early_config_prune=_prune_configs))(fwd)
        for cl in (False, True)
    }
    return dict(fwd=fwd, fwd_tuned=fwd_tuned, wgrad=triton.jit(_dw_conv_wgrad))


def _interpreting():
    """Whether ``triton.jit`` makes interpreted kernels now (read from the
    environment as Triton reads it; ``os.environ`` so that ``torch.compile``
    traces it)."""
    value = os.environ.get('TRITON_INTERPRET', '0').strip().lower()
    return value in ('1', 'true', 'on', 'yes')


def is_channels_last(t):
    """Whether ``t`` is stored channels-last (as
    ``torch.channels_last`` lays it out, and not also NCHW)."""
    return (t.is_contiguous(memory_format=torch.channels_last)
            and not t.is_contiguous())


def _memory_format(t):
    return (torch.channels_last
            if is_channels_last(t) else torch.contiguous_format)


def _launch_conv(x, weight, bias, kernel_size, out_hw, padding, dilation):
    """Run the forward kernel: ``weight`` is ``(C, KH * KW)`` contiguous,
    the output has spatial size ``out_hw`` and ``x``'s layout."""
    n, c, h, w = x.shape
    kh, kw = kernel_size
    oh, ow = out_hw
    y = torch.empty((n, c, oh, ow),
                    dtype=x.dtype,
                    device=x.device,
                    memory_format=_memory_format(x))
    cl = is_channels_last(x)
    kernel = _kernels(_interpreting())['fwd_tuned'][cl]

    def grid(meta):
        return (triton.cdiv(oh, meta['BLOCK_H']) *
                triton.cdiv(ow, meta['BLOCK_W']),
                triton.cdiv(c, meta['BLOCK_C']), n)

    with launch_device(x), _TUNER_LOCK:
        kernel[grid](
            x,
            weight,
            bias if bias is not None else weight,
            y,
            c,
            h,
            w,
            oh,
            ow,
            *x.stride(),
            *y.stride(),
            padding[0],
            padding[1],
            dilation[0],
            dilation[1],
            KH=kh,
            KW=kw,
            HAS_BIAS=bias is not None,
            CHANNELS_LAST=cl)
    return y


def _launch_wgrad(grad, x, kernel_size, padding, dilation, has_bias):
    """Weight gradient ``(C, 1, KH, KW)`` and bias gradient ``(C,)``, both
    fp32, from the kernel's partial sums added in a fixed order."""
    n, c, h, w = x.shape
    oh, ow = grad.shape[-2:]
    kh, kw = kernel_size
    cl = is_channels_last(x)
    interpret = _interpreting()
    bc, bh, bw, warps = _wgrad_blocks(cl, interpret)
    tiles = triton.cdiv(oh, bh) * triton.cdiv(ow, bw)
    cblocks = triton.cdiv(c, bc)
    kh_per = min(kh, max(1, _WGRAD_TAPS // kw))
    groups = triton.cdiv(kh, kh_per)
    # Enough programs to fill a large GPU, few partial rows to add up.
    target = 4 if interpret else 2048
    per_chunk = max(1, (n * tiles * cblocks * groups) // target)
    per_chunk = min(per_chunk, n)
    chunks = triton.cdiv(n, per_chunk)
    rows = chunks * tiles
    pw = torch.empty((rows, kh * kw, c), dtype=torch.float32, device=x.device)
    pb = torch.empty(
        (rows, c), dtype=torch.float32, device=x.device) if has_bias else pw
    taps = triton.next_power_of_2(kh_per * kw)
    with launch_device(x):
        _kernels(interpret)['wgrad'][(tiles, cblocks, chunks * groups)](
            x,
            grad,
            pw,
            pb,
            n,
            c,
            h,
            w,
            oh,
            ow,
            per_chunk,
            *x.stride(),
            *grad.stride(),
            padding[0],
            padding[1],
            dilation[0],
            dilation[1],
            KH=kh,
            KW=kw,
            KH_PER=kh_per,
            TAPS=taps,
            HAS_BIAS=has_bias,
            BLOCK_C=bc,
            BLOCK_H=bh,
            BLOCK_W=bw,
            num_warps=warps)
    grad_w = pw.sum(0).t().contiguous().view(c, 1, kh, kw)
    grad_b = pb.sum(0) if has_bias else None
    return grad_w, grad_b


def _out_size(size, kernel, pad, dil):
    return size + 2 * pad - dil * (kernel - 1)


# ------------------------------------------------------ failure fallback
# Kernel variants that failed to compile or launch, and the causes warned
# about (one warning per cause).
_BROKEN = set()
_WARNED = set()
_LOGGED = set()


def failed_variants():
    """The kernel variants that failed in this process and run PyTorch's
    op from then on: ``(pass, device type, dtype, kernel size,
    channels_last)`` tuples, ``pass`` one of ``'forward'``, ``'input
    grad'``, ``'weight grad'`` (for timing tools, which must not report
    PyTorch's time as the kernel's)."""
    return sorted(_BROKEN, key=str)


def _variant(kind, x, kernel_size):
    return (kind, x.device.type, x.dtype, tuple(kernel_size),
            is_channels_last(x))


def _with_fallback(variant, kernel_fn, torch_fn):
    """``kernel_fn()``; if it raises (other than out of memory), warn once
    per cause, remember ``variant`` as broken and return ``torch_fn()``."""
    if variant in _BROKEN:
        return torch_fn()
    try:
        return kernel_fn()
    except torch.OutOfMemoryError:
        raise
    except Exception as exc:  # noqa: B902 - any compile/launch failure
        _BROKEN.add(variant)
        cause = f'{type(exc).__name__}: {str(exc).strip()}'.splitlines()[0]
        if cause not in _WARNED:
            _WARNED.add(cause)
            warnings.warn(
                f'Triton depth-wise convolution ({variant[0]}, '
                f'{variant[2]}, kernel {variant[3]}) failed and runs '
                f'PyTorch\'s op instead: {cause}',
                KernelFallbackWarning,
                stacklevel=3)
        return torch_fn()


def _aten_backward(grad, x, weight, padding, dilation, mask):
    """PyTorch's depth-wise convolution backward (the fallback)."""
    return torch.ops.aten.convolution_backward(
        grad, x, weight, [weight.shape[0]] if mask[2] else None, [1, 1],
        list(padding), list(dilation), False, [0, 0], x.shape[1], mask)


# ------------------------------------------------------------ custom ops


@torch.library.custom_op('mmvan::depthwise_conv2d', mutates_args=())
def _dw_conv_op(x: torch.Tensor, weight: torch.Tensor,
                bias: Optional[torch.Tensor], padding: List[int],
                dilation: List[int]) -> torch.Tensor:
    """Stride-1 depth-wise convolution on the Triton kernels."""
    c, kh, kw = weight.shape[0], weight.shape[2], weight.shape[3]
    out_hw = (_out_size(x.shape[2], kh, padding[0], dilation[0]),
              _out_size(x.shape[3], kw, padding[1], dilation[1]))
    w2 = weight.reshape(c, kh * kw).contiguous()
    b1 = bias.contiguous() if bias is not None else None
    return _with_fallback(
        _variant('forward', x, (kh, kw)),
        lambda: _launch_conv(x, w2, b1, (kh, kw), out_hw, padding, dilation),
        lambda: F.conv2d(x, weight, bias, 1, padding, dilation, c))


@_dw_conv_op.register_fake
def _(x, weight, bias, padding, dilation):
    kh, kw = weight.shape[2], weight.shape[3]
    shape = (x.shape[0], x.shape[1],
             _out_size(x.shape[2], kh, padding[0], dilation[0]),
             _out_size(x.shape[3], kw, padding[1], dilation[1]))
    return x.new_empty(shape).contiguous(memory_format=_memory_format(x))


@torch.library.custom_op('mmvan::depthwise_conv2d_input_grad', mutates_args=())
def _dw_input_grad_op(grad: torch.Tensor, weight: torch.Tensor,
                      input_hw: List[int], padding: List[int],
                      dilation: List[int]) -> torch.Tensor:
    """Input gradient: the forward kernel on ``grad`` with the flipped
    kernel and padding ``dilation * (k - 1) - padding``."""
    c, kh, kw = weight.shape[0], weight.shape[2], weight.shape[3]
    flipped = weight.reshape(c, kh, kw).flip((1, 2)).reshape(c, kh * kw)
    pad_t = [
        dilation[0] * (kh - 1) - padding[0],
        dilation[1] * (kw - 1) - padding[1]
    ]

    def torch_fn():
        x_shape = (grad.shape[0], c, input_hw[0], input_hw[1])
        return torch.nn.grad.conv2d_input(x_shape, weight, grad, 1, padding,
                                          dilation, c)

    return _with_fallback(
        _variant('input grad', grad, (kh, kw)),
        lambda: _launch_conv(grad, flipped.contiguous(), None,
                             (kh, kw), input_hw, pad_t, dilation), torch_fn)


@_dw_input_grad_op.register_fake
def _(grad, weight, input_hw, padding, dilation):
    shape = (grad.shape[0], grad.shape[1], input_hw[0], input_hw[1])
    return grad.new_empty(shape).contiguous(memory_format=_memory_format(grad))


@torch.library.custom_op(
    'mmvan::depthwise_conv2d_weight_grad', mutates_args=())
def _dw_weight_grad_op(grad: torch.Tensor, x: torch.Tensor,
                       weight: torch.Tensor, padding: List[int],
                       dilation: List[int],
                       with_bias: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """Weight gradient (and bias gradient, empty without a bias)."""
    kernel_size = weight.shape[2:]

    def kernel_fn():
        gw, gb = _launch_wgrad(grad, x, kernel_size, padding, dilation,
                               with_bias)
        gb = gb.to(weight.dtype) if with_bias else weight.new_empty(0)
        return gw.to(weight.dtype), gb

    def torch_fn():
        _, gw, gb = _aten_backward(grad, x, weight, padding, dilation,
                                   [False, True, with_bias])
        return gw, gb if with_bias else weight.new_empty(0)

    return _with_fallback(
        _variant('weight grad', x, kernel_size), kernel_fn, torch_fn)


@_dw_weight_grad_op.register_fake
def _(grad, x, weight, padding, dilation, with_bias):
    gb = weight.new_empty(weight.shape[0] if with_bias else 0)
    return torch.empty_like(weight, memory_format=torch.contiguous_format), gb


def _setup_context(ctx, inputs, output):
    x, weight, bias, padding, dilation = inputs
    ctx.save_for_backward(x, weight)
    ctx.padding = padding
    ctx.dilation = dilation
    ctx.with_bias = bias is not None


def _backward(ctx, grad):
    x, weight = ctx.saved_tensors
    if not (grad.is_contiguous() or is_channels_last(grad)):
        grad = grad.contiguous(memory_format=_memory_format(x))
    grad_x = grad_w = grad_b = None
    if ctx.needs_input_grad[0]:
        grad_x = _dw_input_grad_op(grad, weight, list(x.shape[2:]),
                                   ctx.padding, ctx.dilation)
    if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
        grad_w, grad_b = _dw_weight_grad_op(grad, x, weight, ctx.padding,
                                            ctx.dilation, ctx.with_bias)
        if not ctx.with_bias:
            grad_b = None
    return grad_x, grad_w, grad_b, None, None


_dw_conv_op.register_autograd(_backward, setup_context=_setup_context)

# The gradients are linear in each input, so their own gradients are the
# three ops again (double backward, e.g. gradient penalties).


def _setup_input_grad(ctx, inputs, output):
    grad, weight, _, padding, dilation = inputs
    ctx.save_for_backward(grad, weight)
    ctx.padding = padding
    ctx.dilation = dilation


def _input_grad_backward(ctx, upstream):
    grad, weight = ctx.saved_tensors
    d_grad = d_weight = None
    if ctx.needs_input_grad[0]:
        d_grad = _dw_conv_op(upstream, weight, None, ctx.padding, ctx.dilation)
    if ctx.needs_input_grad[1]:
        d_weight = _dw_weight_grad_op(grad, upstream, weight, ctx.padding,
                                      ctx.dilation, False)[0]
    return d_grad, d_weight, None, None, None


_dw_input_grad_op.register_autograd(
    _input_grad_backward, setup_context=_setup_input_grad)


def _setup_weight_grad(ctx, inputs, output):
    grad, x, weight, padding, dilation, with_bias = inputs
    ctx.save_for_backward(grad, x, weight)
    ctx.padding = padding
    ctx.dilation = dilation
    ctx.with_bias = with_bias


def _weight_grad_backward(ctx, up_weight, up_bias):
    grad, x, weight = ctx.saved_tensors
    d_grad = d_x = None
    up_weight = up_weight.to(weight.dtype)
    if ctx.needs_input_grad[0]:
        d_grad = _dw_conv_op(
            x, up_weight,
            up_bias.to(weight.dtype) if ctx.with_bias else None, ctx.padding,
            ctx.dilation)
    if ctx.needs_input_grad[1]:
        d_x = _dw_input_grad_op(grad, up_weight, list(x.shape[2:]),
                                ctx.padding, ctx.dilation)
    return d_grad, d_x, None, None, None, None


_dw_weight_grad_op.register_autograd(
    _weight_grad_backward, setup_context=_setup_weight_grad)

# ------------------------------------------------------------ entry point


def _pair(value, name):
    if isinstance(value, int):
        return value, value
    value = tuple(value)
    if len(value) == 1:
        return value[0], value[0]
    if len(value) != 2 or not all(isinstance(v, int) for v in value):
        raise ConfigError(f'{name} must be an int or a pair of ints, got '
                          f'{value!r}')
    return value


def _unsupported(x, weight, bias, stride, padding, dilation):
    """Why the Triton kernels cannot run this call (None if they can)."""
    if triton is None:
        return 'Triton is not installed'
    if x.device.type != 'cuda' and not (x.device.type == 'cpu'
                                        and _interpreting()):
        return (f'tensors on {x.device.type} (the kernels run on CUDA, or '
                f'on the CPU under TRITON_INTERPRET=1)')
    if x.dim() != 4 or weight.dim() != 4:
        return f'a {x.dim()}-d input or a {weight.dim()}-d weight'
    c = x.shape[1]
    if weight.shape[0] != c or weight.shape[1] != 1:
        return (f'weight of shape {tuple(weight.shape)} for {c} channels '
                f'(not depth-wise)')
    if bias is not None and tuple(bias.shape) != (c, ):
        return f'bias of shape {tuple(bias.shape)}'
    dtypes = {x.dtype, weight.dtype
              } | ({bias.dtype} if bias is not None else set())
    if len(dtypes) != 1 or x.dtype not in _DTYPES:
        return f'dtype {", ".join(sorted(map(str, dtypes)))}'
    if any(t.device != x.device for t in (weight, bias) if t is not None):
        return 'tensors on different devices'
    if isinstance(padding, str):
        return f'padding={padding!r}'
    if stride != (1, 1):
        return f'stride {stride}'
    if min(padding) < 0 or min(dilation) < 1:
        return f'padding {padding}, dilation {dilation}'
    kh, kw = weight.shape[2:]
    if max(kh, kw) > MAX_KERNEL or kh * kw > MAX_TAPS:
        return f'kernel {kh}x{kw}'
    if x.numel() == 0 or weight.numel() == 0:
        return 'an empty tensor'
    # The grid: batch on its third dimension, channel blocks (of one
    # channel in the narrowest NCHW block) on its second.
    if x.shape[0] > GRID_YZ_LIMIT:
        return f'a batch of {x.shape[0]} (over {GRID_YZ_LIMIT})'
    if c > GRID_YZ_LIMIT:
        return f'{c} channels (over {GRID_YZ_LIMIT})'
    oh = _out_size(x.shape[2], kh, padding[0], dilation[0])
    ow = _out_size(x.shape[3], kw, padding[1], dilation[1])
    if min(oh, ow) <= 0:
        return 'an empty output'
    # Offsets within a sample are 32-bit: the input's, and the output's
    # (which the gradients have), which padding can make the larger.
    if max(sample_span(x), c * oh * ow) >= 2**31:
        return 'a sample spanning 2**31 elements or more'
    return None


def select_impl(x,
                weight,
                bias=None,
                stride=1,
                padding=0,
                dilation=1,
                impl='auto'):
    """``'triton'`` or ``'torch'``: which implementation
    :func:`depthwise_conv2d` runs for these arguments (logging, once per
    reason, why the kernels cannot take a call they were asked for)."""
    if impl not in IMPLS:
        raise ConfigError(f'impl must be one of {IMPLS}, got {impl!r}')
    if impl == 'torch':
        return 'torch'
    if impl == 'auto' and x.device.type != 'cuda':
        return 'torch'
    stride = _pair(stride, 'stride')
    dilation = _pair(dilation, 'dilation')
    if not isinstance(padding, str):
        padding = _pair(padding, 'padding')
    reason = _unsupported(x, weight, bias, stride, padding, dilation)
    if reason is None and _variant('forward', x, weight.shape[2:]) in _BROKEN:
        reason = 'its Triton kernel failed earlier'
    if reason is None:
        return 'triton'
    if reason not in _LOGGED:
        _LOGGED.add(reason)
        print_log(
            f'depthwise_conv2d: the Triton kernels do not take {reason}; '
            'PyTorch\'s conv2d runs instead.',
            logger='current',
            level=logging.WARNING if impl == 'triton' else logging.INFO)
    return 'torch'


def depthwise_conv2d(x,
                     weight,
                     bias=None,
                     stride=1,
                     padding=0,
                     dilation=1,
                     impl='auto'):
    """Depth-wise 2-D convolution with the semantics of ``F.conv2d(x,
    weight, bias, stride, padding, dilation, groups=x.shape[1])``, with
    autograd.

    Args:
        x (Tensor): ``(N, C, H, W)``, NCHW or channels-last.
        weight (Tensor): ``(C, 1, KH, KW)``.
        bias (Tensor, optional): ``(C,)``. Defaults to None.
        stride (int | tuple[int, int]): Defaults to 1.
        padding (int | tuple[int, int] | str): Defaults to 0.
        dilation (int | tuple[int, int]): Defaults to 1.
        impl (str): ``'triton'`` runs the Triton kernels, ``'torch'``
            PyTorch's op, ``'auto'`` the kernels on CUDA and PyTorch's op
            elsewhere. Calls the kernels do not cover run PyTorch's op
            (the reason logged once). Defaults to ``'auto'``.

    Returns:
        Tensor: ``(N, C, OH, OW)`` in ``x``'s dtype and layout.

    Examples:
        >>> import torch
        >>> x, w = torch.randn(2, 8, 9, 9), torch.randn(8, 1, 3, 3)
        >>> depthwise_conv2d(x, w, padding=1).shape
        torch.Size([2, 8, 9, 9])
    """
    if (impl != 'torch' and x.is_floating_point()
            and torch.is_autocast_enabled(x.device.type)):
        dtype = torch.get_autocast_dtype(x.device.type)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = bias.to(dtype) if bias is not None else None
    if select_impl(x, weight, bias, stride, padding, dilation,
                   impl) == 'torch':
        return depthwise_conv2d_reference(x, weight, bias, stride, padding,
                                          dilation)
    return _dw_conv_op(x, weight, bias, list(_pair(padding, 'padding')),
                       list(_pair(dilation, 'dilation')))


# ---------------------------------------------------- ahead-of-time build

_POINTER = {
    torch.float32: '*fp32',
    torch.bfloat16: '*bf16',
    torch.float16: '*fp16'
}


def compile_for_gpu(capability,
                    dtype=torch.float32,
                    kernel_size=(3, 3),
                    channels_last=False,
                    configs='largest'):
    """Compile the kernels for an NVIDIA GPU without one (``ptxas`` from
    the Triton wheel): GPU-only compile errors show on any machine.

    Args:
        capability (int): Compute capability, e.g. 80 or 90.
        dtype (torch.dtype): Storage dtype.
        kernel_size (tuple[int, int]): ``(KH, KW)``.
        channels_last (bool): The layout, which sets the unit stride the
            kernels are specialised for and the forward block shapes.
        configs (str): ``'largest'`` (the forward configuration with the
            largest block) or ``'all'`` (every autotuner configuration).

    Returns:
        list: The compiled kernels (forward ones, then the weight
        gradient); their ``asm`` holds the ``cubin``.
    """
    # optional: triton is needed only to compile for a GPU
    from triton.backends.compiler import GPUTarget  # optional: see above
    from triton.compiler import ASTSource  # optional: see above
    from triton.runtime.jit import JITFunction  # optional: see above

    global _SUM
    kh, kw = kernel_size
    ptr = _POINTER[dtype]
    unit = dict(
        sxc=1, syc=1, sgc=1) if channels_last else dict(
            sxw=1, syw=1, sgw=1)
    target = GPUTarget('cuda', capability, 32)
    fwd_configs = _fwd_configs(channels_last, interpret=False)
    if configs == 'largest':
        fwd_configs = [
            max(fwd_configs,
                key=lambda c: (math.prod(c.kwargs.values()), c.num_warps))
        ]
    bc, bh, bw, warps = _wgrad_blocks(channels_last, interpret=False)
    kh_per = min(kh, max(1, _WGRAD_TAPS // kw))
    builds = [(_dw_conv_fwd,
               dict(
                   KH=kh,
                   KW=kw,
                   HAS_BIAS=True,
                   CHANNELS_LAST=channels_last,
                   **cfg.kwargs), cfg.num_warps) for cfg in fwd_configs]
    builds.append((_dw_conv_wgrad,
                   dict(
                       KH=kh,
                       KW=kw,
                       KH_PER=kh_per,
                       TAPS=triton.next_power_of_2(kh_per * kw),
                       HAS_BIAS=True,
                       BLOCK_C=bc,
                       BLOCK_H=bh,
                       BLOCK_W=bw), warps))
    combine = _SUM
    if not isinstance(combine, JITFunction):
        # Triton was imported under TRITON_INTERPRET=1: compile the same
        # combine function.
        _SUM = JITFunction(combine.fn)
    compiled = []
    try:
        for fn, constants, num_warps in builds:
            kernel = JITFunction(fn)  # compiled, whatever TRITON_INTERPRET
            constants = dict(constants)
            constants.update({
                k: v
                for k, v in unit.items() if k in kernel.arg_names
            })
            signature = {}
            for name in kernel.arg_names:
                if name in constants:
                    signature[name] = 'constexpr'
                elif name in ('pw_ptr', 'pb_ptr'):
                    signature[name] = '*fp32'
                elif name.endswith('_ptr'):
                    signature[name] = ptr
                else:
                    signature[name] = 'i32'
            compiled.append(
                triton.compile(
                    ASTSource(kernel, signature, constants),
                    target=target,
                    options=dict(num_warps=num_warps)))
    finally:
        _SUM = combine
    return compiled
