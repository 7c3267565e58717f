# Copyright (c) mmvan contributors. All rights reserved.
"""The VAN MLP's middle, ``gelu(dwconv3x3(x) + bias)``, in one kernel.

The MLP's hidden map is ``mlp_ratio`` (8 or 4) times wider than the block,
so the passes over it dominate a training step's memory traffic. Unfused,
the 3x3 depth-wise convolution writes its output, GELU reads it and writes
its own, and the backward pass reads the stored pre-activation again:

- forward: PyTorch 4 passes over the hidden map (conv read + write, GELU
  read + write); here 2 (read ``x``, write ``y``);
- backward: PyTorch 7 (GELU backward reads the pre-activation and the
  gradient and writes its gradient; the input-gradient convolution reads
  and writes; the weight-gradient convolution reads ``x`` and the gradient)
  plus the stored pre-activation; here 5. The pre-activation is recomputed
  from ``x`` (which the weight gradient reads anyway) instead of being
  stored, and the weight and bias gradients are summed per tile while the
  gradient of the pre-activation is written (a fixed-order reduction, so
  the result is deterministic).

:func:`dwconv_gelu` runs the Triton kernels on CUDA tensors (and on CPU
tensors under ``TRITON_INTERPRET=1``, Triton's interpreter, which the tests
use), on their GPU (made the current device for each launch); everything
else, or ``impl='torch'``, runs :func:`dwconv_gelu_reference`, the plain
PyTorch operations: other dtypes, empty maps, and maps past the launch
grid's limits or the kernels' 32-bit offsets within a plane. The kernels
accumulate in float32 for float32, float16 and bfloat16 inputs; the output
has the input's dtype and the weight gradient the weight's (under autocast
an fp32 weight stays fp32). GELU is the exact, erf-based one
(``nn.GELU()``'s default).
"""
import functools
import logging
import warnings
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor

from mmvan.utils.errors import ConfigError
from .depthwise_conv import (GRID_YZ_LIMIT, KernelFallbackWarning,
                             is_channels_last, launch_device, sample_span)

try:  # Triton is optional: without it every call runs PyTorch's ops.
    import triton

    from . import dwconv_gelu_kernels as kernel_source
except ImportError:  # pragma: no cover - installed with torch on Linux
    triton = kernel_source = None

IMPLS = ('auto', 'triton', 'torch')
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Largest tile of output pixels one program computes.
_TILE_PIXELS = 1024
# Channels-last: elements (pixels x channels) of a program's tile, and the
# pixel tiles one weight-gradient program sums over (fewer partial sums to
# add up afterwards).
_CL_TILE = 2048
_CL_TILES_PER_PROGRAM = 16
# Reasons already logged, so that each is said once.
_LOGGED = set()
# The cause, once the kernels have failed on a GPU.
_BROKEN = []


def dwconv_gelu_reference(x, weight, bias=None):
    """``gelu(conv2d(x, weight, bias, padding=1, groups=C))`` with PyTorch's
    own operations (exact GELU)."""
    return F.gelu(F.conv2d(x, weight, bias, padding=1, groups=x.shape[1]))


def interpreting():
    """Whether Triton runs in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return triton is not None and bool(triton.knobs.runtime.interpret)


def _log_once(message, level=logging.WARNING):
    if message not in _LOGGED:
        _LOGGED.add(message)
        print_log(message, logger='current', level=level)


def _uncovered(x, weight, bias):
    """Why the kernels cannot run these arguments, or None."""
    if triton is None:
        return 'Triton is not installed'
    if x.dim() != 4:
        return f'a {x.dim()}-D input'
    c = x.shape[1]
    if tuple(weight.shape) != (c, 1, 3, 3):
        return f'weight shape {tuple(weight.shape)} (wants ({c}, 1, 3, 3))'
    if bias is not None and tuple(bias.shape) != (c, ):
        return f'bias shape {tuple(bias.shape)}'
    tensors = [x, weight] + ([] if bias is None else [bias])
    for t in tensors:
        if t.dtype not in DTYPES:
            return f'dtype {t.dtype}'
        if t.device != x.device:
            return 'tensors on different devices'
    if x.device.type != 'cuda' and not (x.device.type == 'cpu'
                                        and interpreting()):
        return f'device {x.device.type}'
    if x.numel() == 0:
        return 'an empty input'
    # The grid: (sample, channel) planes on its first dimension, a plane's
    # tiles on its second (at most 65535 tiles of 1024 pixels: the planes
    # of the outputs, which are NCHW or laid out as ``x``, span less than
    # 2**31 elements if ``x``'s do).
    if is_channels_last(x):
        # Pixel tiles of all images on the grid's first dimension, channel
        # blocks on its second; offsets within a sample are 32-bit.
        grid, _, _, _ = _launch_config_cl(x)
        if grid[0] >= 2**31:
            return f'{grid[0]} pixel tiles (2**31 or more)'
        if sample_span(x) >= 2**31:
            return 'a channels-last sample spanning 2**31 elements or more'
        return None
    grid, _, _, _ = _launch_config(x)
    if grid[0] >= 2**31:
        return f'{grid[0]} (sample, channel) planes (2**31 or more)'
    if grid[1] > GRID_YZ_LIMIT:
        return f'{grid[1]} tiles a plane (over {GRID_YZ_LIMIT})'
    if _plane_span(x) >= 2**31:
        return 'a plane spanning 2**31 elements or more'
    return None


def _plane_span(t):
    """Elements one (sample, channel) plane of ``t`` spans: the kernels'
    offsets within a plane are 32-bit integers (those of the sample and
    channel 64-bit)."""
    h, w = t.shape[2:]
    return (h - 1) * t.stride(2) + (w - 1) * t.stride(3) + 1


def uses_triton(x, weight, bias=None, impl='auto'):
    """Whether :func:`dwconv_gelu` runs the Triton kernels for these
    arguments (``'auto'``: on CUDA tensors)."""
    if impl not in IMPLS:
        raise ConfigError(f'impl must be one of {IMPLS}, got {impl!r}.')
    if impl == 'torch' or (impl == 'auto' and x.device.type != 'cuda'):
        return False
    why = _uncovered(x, weight, bias)
    if why is not None:
        _log_once(f'dwconv_gelu: {why} is not covered by the Triton kernels; '
                  f'running PyTorch\'s operations.')
        return False
    return not _BROKEN


def dwconv_gelu(x, weight, bias=None, impl='auto'):
    """``gelu(conv2d(x, weight, bias, padding=1, groups=C))``, the VAN MLP's
    depth-wise 3x3 convolution and its activation, fused.

    Args:
        x (Tensor): ``(N, C, H, W)``, NCHW or channels-last.
        weight (Tensor): ``(C, 1, 3, 3)``.
        bias (Tensor, optional): ``(C, )``.
        impl (str): ``'auto'`` (the Triton kernels on CUDA tensors, PyTorch's
            operations elsewhere), ``'triton'`` (the kernels wherever they
            run: CUDA, or CPU under ``TRITON_INTERPRET=1``) or ``'torch'``.
            Arguments the kernels do not cover (other dtypes or kernel
            sizes) run PyTorch's operations, logged once.

    Returns:
        Tensor: shaped, laid out and typed like ``x``.
    """
    if not uses_triton(x, weight, bias, impl):
        return dwconv_gelu_reference(x, weight, bias)
    return torch.ops.mmvan.dwconv3x3_gelu(x, weight, bias)


@functools.lru_cache(maxsize=None)
def _kernels(interpret):
    """The three kernels, compiled by Triton or run by its interpreter
    (``triton.jit`` decides when it is called)."""
    del interpret  # the cache key: jit reads TRITON_INTERPRET itself
    return (triton.jit(kernel_source.forward_kernel),
            triton.jit(kernel_source.grad_kernel),
            triton.jit(kernel_source.input_grad_kernel))


@functools.lru_cache(maxsize=None)
def _kernels_cl(interpret):
    """The channels-last kernels, as :func:`_kernels`."""
    del interpret  # the cache key: jit reads TRITON_INTERPRET itself
    return (triton.jit(kernel_source.forward_cl_kernel),
            triton.jit(kernel_source.grad_cl_kernel),
            triton.jit(kernel_source.input_grad_cl_kernel))


def _launch_config_cl(x):
    """``(grid, BLOCK_P, BLOCK_C, num_warps)`` of the channels-last
    kernels: tiles of ``BLOCK_P`` consecutive pixels of one image by
    ``BLOCK_C`` channels."""
    n, c, h, w = x.shape
    block_c = min(64, triton.next_power_of_2(c))
    block_p = min(triton.next_power_of_2(h * w), _CL_TILE // block_c)
    grid = (n * triton.cdiv(h * w, block_p), triton.cdiv(c, block_c))
    return grid, block_p, block_c, _warps(block_p, block_c)


def _launch_config(x):
    """``(grid, BLOCK_H, BLOCK_W, num_warps)`` for ``x``'s planes."""
    n, c, h, w = x.shape
    block_w = min(64, triton.next_power_of_2(w))
    block_h = min(triton.next_power_of_2(h), max(1, _TILE_PIXELS // block_w))
    tiles = triton.cdiv(h, block_h) * triton.cdiv(w, block_w)
    return (n * c, tiles), block_h, block_w, _warps(block_h, block_w)


def _warps(block_h, block_w):
    """Warps of a program: one per 256 pixels of its tile, 1 to 4."""
    return max(1, min(4, block_h * block_w // 256))


def _forward(x, weight, bias):
    if is_channels_last(x):
        return _forward_cl(x, weight, bias)
    forward, _, _ = _kernels(interpreting())
    y = torch.empty_like(x)
    grid, bh, bw, warps = _launch_config(x)
    w, b = _weight_operands(weight, bias)
    with launch_device(x):
        forward[grid](
            x,
            w,
            b,
            y,
            x.shape[1],
            x.shape[2],
            x.shape[3],
            *x.stride(),
            *y.stride(),
            HAS_BIAS=bias is not None,
            BLOCK_H=bh,
            BLOCK_W=bw,
            num_warps=warps)
    return y


def _forward_cl(x, weight, bias):
    forward, _, _ = _kernels_cl(interpreting())
    y = torch.empty_like(x)
    grid, block_p, block_c, warps = _launch_config_cl(x)
    w, b = _weight_operands(weight, bias)
    with launch_device(x):
        forward[grid](
            x,
            w,
            b,
            y,
            *x.shape[1:],
            *x.stride(),
            *y.stride(),
            HAS_BIAS=bias is not None,
            BLOCK_P=block_p,
            BLOCK_C=block_c,
            num_warps=warps)
    return y


def _weight_operands(weight, bias):
    """The weight and bias contiguous, as the kernels read them (the weight
    stands in for a missing bias)."""
    w = weight.contiguous()
    return w, (w if bias is None else bias.contiguous())


def _weight_grads(sums, weight, bias):
    """The weight and bias gradients from the kernels' sums, ``(C, 10)``:
    the nine taps, then the bias; new tensors, not views of ``sums`` (a
    custom op's outputs may not alias each other)."""
    grad_weight = sums[:, :9].to(
        weight.dtype, copy=True).contiguous().view(weight.shape)
    grad_bias = sums[:, 9].to(
        weight.dtype if bias is None else bias.dtype, copy=True)
    return grad_weight, grad_bias


def _backward_operands(grad, x, weight, bias, span):
    """The backward kernels' operands: the weight and bias (see
    :func:`_weight_operands`), the gradient, laid out as ``x`` when its
    strides reach past the kernels' 32-bit offsets (``span``: the extent
    they address with them, a plane or a sample, which for ``x`` fits),
    and the pre-activation gradient to write."""
    w, b = _weight_operands(weight, bias)
    if span(grad) >= 2**31:
        grad = torch.empty_like(x).copy_(grad)
    return w, b, grad, torch.empty_like(x)


def _backward_cl(grad, x, weight, bias, need_input):
    _, grad_kernel, input_kernel = _kernels_cl(interpreting())
    grid, block_p, block_c, warps = _launch_config_cl(x)
    w, b, grad, gz = _backward_operands(grad, x, weight, bias, sample_span)
    n, c, h, w_ = x.shape
    p_tiles = grid[0] // n
    per_program = min(_CL_TILES_PER_PROGRAM, p_tiles)
    rows = n * triton.cdiv(p_tiles, per_program)
    parts = torch.empty((rows, 10, c), dtype=torch.float32, device=x.device)
    with launch_device(x):
        grad_kernel[(rows, grid[1])](
            x,
            w,
            b,
            grad,
            gz,
            parts,
            c,
            h,
            w_,
            *x.stride(),
            *grad.stride(),
            *gz.stride(),
            per_program,
            HAS_BIAS=bias is not None,
            BLOCK_P=block_p,
            BLOCK_C=block_c,
            num_warps=warps)
    grad_weight, grad_bias = _weight_grads(parts.sum(0).t(), weight, bias)
    if not need_input:
        return x.new_empty(0), grad_weight, grad_bias
    grad_x = torch.empty_like(x)
    with launch_device(x):
        input_kernel[grid](
            gz,
            w,
            grad_x,
            c,
            h,
            w_,
            *gz.stride(),
            *grad_x.stride(),
            BLOCK_P=block_p,
            BLOCK_C=block_c,
            num_warps=warps)
    return grad_x, grad_weight, grad_bias


def _backward(grad, x, weight, bias, need_input):
    if is_channels_last(x):
        return _backward_cl(grad, x, weight, bias, need_input)
    _, grad_kernel, input_kernel = _kernels(interpreting())
    grid, bh, bw, warps = _launch_config(x)
    w, b, grad, gz = _backward_operands(grad, x, weight, bias, _plane_span)
    n_tiles = grid[1]
    parts = torch.empty((grid[0], n_tiles, 10),
                        dtype=torch.float32,
                        device=x.device)
    with launch_device(x):
        grad_kernel[grid](
            x,
            w,
            b,
            grad,
            gz,
            parts,
            x.shape[1],
            x.shape[2],
            x.shape[3],
            *x.stride(),
            *grad.stride(),
            *gz.stride(),
            n_tiles,
            HAS_BIAS=bias is not None,
            BLOCK_H=bh,
            BLOCK_W=bw,
            num_warps=warps)
    n, c = x.shape[:2]
    sums = parts.view(n, c, n_tiles, 10).sum(dim=(0, 2))
    grad_weight, grad_bias = _weight_grads(sums, weight, bias)
    if not need_input:
        return x.new_empty(0), grad_weight, grad_bias
    grad_x = torch.empty_like(x)
    with launch_device(x):
        input_kernel[grid](
            gz,
            w,
            grad_x,
            x.shape[1],
            x.shape[2],
            x.shape[3],
            *gz.stride(),
            *grad_x.stride(),
            BLOCK_H=bh,
            BLOCK_W=bw,
            num_warps=warps)
    return grad_x, grad_weight, grad_bias


def failure():
    """Why the kernels were switched off in this process (after a failure
    on a GPU), or None while they run."""
    return _BROKEN[0] if _BROKEN else None


def _give_up(error):
    """Stop using the kernels after a failure on a GPU, with one
    :class:`~mmvan.ops.KernelFallbackWarning` naming the cause."""
    if not _BROKEN:
        _BROKEN.append(f'{type(error).__name__}: {error}')
        warnings.warn(
            f'dwconv_gelu: the Triton kernels failed ({_BROKEN[0]}); '
            f'running PyTorch\'s operations from now on.',
            KernelFallbackWarning,
            stacklevel=2)


def _reference_grads(grad, x, weight, bias):
    with torch.enable_grad():
        inputs = [t.detach().requires_grad_() for t in (x, weight)]
        if bias is not None:
            inputs.append(bias.detach().requires_grad_())
        y = dwconv_gelu_reference(*inputs)
        grads = torch.autograd.grad(y, inputs, grad)
    if bias is None:
        grads = grads + (grads[1].new_zeros(x.shape[1]), )
    return grads


@torch.library.custom_op('mmvan::dwconv3x3_gelu', mutates_args=())
def _dwconv_gelu_op(x: Tensor, weight: Tensor,
                    bias: Optional[Tensor]) -> Tensor:
    if _BROKEN:
        return dwconv_gelu_reference(x, weight, bias)
    if x.device.type != 'cuda':  # the interpreter: errors are errors
        return _forward(x, weight, bias)
    try:
        return _forward(x, weight, bias)
    except Exception as e:  # noqa: B902 - any compile or launch failure
        _give_up(e)
        return dwconv_gelu_reference(x, weight, bias)


@_dwconv_gelu_op.register_fake
def _(x, weight, bias):
    return torch.empty_like(x)


@torch.library.custom_op('mmvan::dwconv3x3_gelu_backward', mutates_args=())
def _dwconv_gelu_backward_op(grad: Tensor, x: Tensor, weight: Tensor,
                             bias: Optional[Tensor], need_input: bool
                             ) -> Tuple[Tensor, Tensor, Tensor]:
    if not _BROKEN:
        if x.device.type != 'cuda':
            return _backward(grad, x, weight, bias, need_input)
        try:
            return _backward(grad, x, weight, bias, need_input)
        except Exception as e:  # noqa: B902 - any compile or launch failure
            _give_up(e)
    grad_x, grad_weight, grad_bias = _reference_grads(grad, x, weight, bias)
    return (grad_x if need_input else x.new_empty(0)), grad_weight, grad_bias


@_dwconv_gelu_backward_op.register_fake
def _(grad, x, weight, bias, need_input):
    grad_x = torch.empty_like(x) if need_input else x.new_empty(0)
    dtype = weight.dtype if bias is None else bias.dtype
    return (grad_x, torch.empty_like(weight),
            weight.new_empty(x.shape[1], dtype=dtype))


def _setup_context(ctx, inputs, output):
    x, weight, bias = inputs
    ctx.has_bias = bias is not None
    ctx.save_for_backward(x, weight, bias)


def _backward_formula(ctx, grad):
    x, weight, bias = ctx.saved_tensors
    grad_x, grad_weight, grad_bias = torch.ops.mmvan.dwconv3x3_gelu_backward(
        grad, x, weight, bias, ctx.needs_input_grad[0])
    return (grad_x if ctx.needs_input_grad[0] else None,
            grad_weight if ctx.needs_input_grad[1] else None,
            grad_bias if ctx.has_bias and ctx.needs_input_grad[2] else None)


torch.library.register_autograd(
    'mmvan::dwconv3x3_gelu', _backward_formula, setup_context=_setup_context)

_POINTER = {
    torch.float32: '*fp32',
    torch.float16: '*fp16',
    torch.bfloat16: '*bf16'
}


def compile_for_gpu(capability,
                    dtype=torch.float32,
                    block=(16, 64),
                    channels_last=False):
    """Compile the three kernels for an NVIDIA GPU of compute
    ``capability`` (e.g. 80, 90) without one: Triton's compiler and the
    wheel's ``ptxas`` run on the CPU, so errors that only the GPU compiler
    sees (and the interpreter does not) show here.

    Args:
        capability (int): The compute capability, e.g. 90 for sm_90.
        dtype (torch.dtype): The activations' dtype (weights in float32).
        block (tuple[int, int]): ``(BLOCK_H, BLOCK_W)``, e.g. ``(16, 64)``
            for VAN's 56x56 maps, ``(16, 16)`` for 14x14, ``(8, 8)`` for
            7x7 (see ``_launch_config``); with ``channels_last``
            ``(BLOCK_P, BLOCK_C)``, e.g. ``(32, 64)`` (see
            ``_launch_config_cl``).
        channels_last (bool): Compile the channels-last kernels.

    Returns:
        list: the compiled kernels (their ``asm`` holds the ``cubin``).
    """
    # optional: triton is needed only to compile for a GPU
    from triton.backends.compiler import GPUTarget  # optional: see above
    from triton.compiler import ASTSource  # optional: see above
    from triton.runtime.jit import JITFunction  # optional: see above
    act = _POINTER[dtype]
    pointers = dict(
        x_ptr=act,
        y_ptr=act,
        g_ptr=act,
        gz_ptr=act,
        gx_ptr=act,
        w_ptr='*fp32',
        b_ptr='*fp32',
        part_ptr='*fp32')
    if channels_last:
        constants = dict(HAS_BIAS=True, BLOCK_P=block[0], BLOCK_C=block[1])
        sources = (kernel_source.forward_cl_kernel,
                   kernel_source.grad_cl_kernel,
                   kernel_source.input_grad_cl_kernel)
    else:
        constants = dict(HAS_BIAS=True, BLOCK_H=block[0], BLOCK_W=block[1])
        sources = (kernel_source.forward_kernel, kernel_source.grad_kernel,
                   kernel_source.input_grad_kernel)
    compiled = []
    combine = kernel_source.SUM
    if not isinstance(combine, JITFunction):
        # Triton was imported under TRITON_INTERPRET=1: its standard
        # library is interpreted; compile the same combine function.
        kernel_source.SUM = JITFunction(combine.fn)
    try:
        for fn in sources:
            kernel = JITFunction(fn)  # compiled, whatever TRITON_INTERPRET
            signature = {
                p.name:
                'constexpr' if p.name in constants else pointers.get(
                    p.name, 'i32')
                for p in kernel.params
            }
            source = ASTSource(
                fn=kernel,
                signature=signature,
                constexprs={
                    k: v
                    for k, v in constants.items() if k in signature
                })
            compiled.append(
                triton.compile(
                    source,
                    target=GPUTarget('cuda', capability, 32),
                    options=dict(num_warps=_warps(*block))))
    finally:
        kernel_source.SUM = combine
    return compiled
