# Copyright (c) mmvan contributors. All rights reserved.
"""Dilated depth-wise convolutions run on the dilation's phase grids (CPU).

A depth-wise convolution with dilation ``d`` only ever combines pixels whose
row indices agree modulo ``d`` and whose column indices agree modulo ``d``.
Split the map into its ``d x d`` phase grids (every ``d``-th pixel, from
each of the ``d x d`` offsets), stack them along the batch, and the dilated
convolution becomes the same kernel *without* dilation on each grid, with
padding ``(k - 1) // 2``; putting the grids back in place gives the dilated
result. The sums are the same terms, so outputs and gradients equal the
dilated convolution's to float rounding.

oneDNN has no fast kernel for dilated depth-wise convolutions: its ``7x7``
dilation-3 convolution takes longer than the split, the grid convolution and
the merge together (figures in docs/benchmark.md). VAN's attention modules
use this on CPU; on other devices, and while tracing or exporting, the plain
dilated convolution runs (it is one node in an exported graph; on CUDA the
VAN backbone's ``conv_impl`` chooses the kernels). The folded inference
model (``deploy=True``) keeps its zero-stuffed dense kernels
(:func:`~mmvan.models.layers.undilate_`), which are faster at batch 1.
:func:`plain_dilated_convolutions` turns the split off for a block of code
(``tools/analysis_tools/get_flops.py`` counts the model's FLOPs as defined
with it).
"""
import contextlib

import torch
import torch.nn.functional as F

from mmvan.models.utils.layout import memory_format_of

# > 0 inside :func:`plain_dilated_convolutions`.
_PLAIN = [0]


def _grid_view(grids, d):
    """``(B * d * d, C, Hg, Wg)`` channels-last grids as ``(B, d, d, C, Hg,
    Wg)``, a view."""
    n, c, hg, wg = grids.shape
    return grids.permute(0, 2, 3, 1).view(n // (d * d), d, d, hg, wg,
                                          c).permute(0, 1, 2, 5, 3, 4)


def _split(x, d):
    b, c, h, w = x.shape
    hg, wg = -(-h // d), -(-w // d)
    # The grids are channels-last whatever ``x`` is: each phase is then a
    # run of whole pixels (C contiguous values), and oneDNN's depth-wise
    # kernels are fastest in that layout.
    grids = torch.empty((b * d * d, c, hg, wg),
                        dtype=x.dtype,
                        device=x.device,
                        memory_format=torch.channels_last)
    view = _grid_view(grids, d)
    for i in range(d):
        for j in range(d):
            phase = x[:, :, i::d, j::d]
            ph, pw = phase.shape[-2:]
            view[:, i, j, :, :ph, :pw] = phase
            if ph < hg:
                view[:, i, j, :, ph:, :] = 0
            if pw < wg:
                view[:, i, j, :, :ph, pw:] = 0
    return grids


def _merge(grids, d, size, memory_format):
    n, c, hg, wg = grids.shape
    x = torch.empty((n // (d * d), c, *size),
                    dtype=grids.dtype,
                    device=grids.device,
                    memory_format=memory_format)
    view = _grid_view(grids.contiguous(memory_format=torch.channels_last), d)
    for i in range(d):
        for j in range(d):
            phase = x[:, :, i::d, j::d]
            phase.copy_(view[:, i, j, :, :phase.shape[-2], :phase.shape[-1]])
    return x


class _PhaseSplit(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x, d):
        ctx.d, ctx.size, ctx.layout = d, tuple(
            x.shape[-2:]), memory_format_of(x)
        return _split(x, d)

    @staticmethod
    def backward(ctx, grad):
        # Splitting copies each pixel once and pads with zeros: its adjoint
        # puts each grid pixel back and drops the padding.
        return _merge(grad, ctx.d, ctx.size, ctx.layout), None


class _PhaseMerge(torch.autograd.Function):

    @staticmethod
    def forward(ctx, grids, d, size, memory_format):
        ctx.d = d
        return _merge(grids, d, size, memory_format)

    @staticmethod
    def backward(ctx, grad):
        return _split(grad, ctx.d), None, None, None


def phase_split(x, d):
    """``(B, C, H, W) -> (B * d * d, C, ceil(H / d), ceil(W / d))``: the
    ``d x d`` phase grids of ``x`` stacked along the batch (image-major),
    zero-padded at the bottom and right, channels-last. Grid
    ``i * d + j`` of an image holds its pixels ``[i::d, j::d]``."""
    return _PhaseSplit.apply(x, d)


def phase_merge(grids, d, size, memory_format=torch.contiguous_format):
    """The inverse of :func:`phase_split`: the ``(H, W) = size`` map, in
    ``memory_format``."""
    return _PhaseMerge.apply(grids, d, tuple(size), memory_format)


def _splittable(conv):
    """The common dilation of a same-size, stride-1 dilated depth-wise
    convolution, else None (also for a module that is no convolution, such
    as an ``nn.Identity`` put in its place)."""
    if not isinstance(conv, torch.nn.Conv2d):
        return None
    dh, dw = conv.dilation
    kh, kw = conv.kernel_size
    if conv.groups != conv.in_channels or tuple(conv.stride) != (1, 1):
        return None
    if isinstance(conv.padding, str) or conv.padding_mode != 'zeros':
        return None
    # The dilation of a 1-wide axis does not matter.
    d = {dh if kh > 1 else None, dw if kw > 1 else None} - {None}
    if len(d) != 1:
        return None
    d = d.pop()
    if d < 2 or tuple(conv.padding) != (d * (kh - 1) // 2, d * (kw - 1) // 2):
        return None
    if kh % 2 == 0 or kw % 2 == 0:
        return None
    return d


def _zero_padding(grids, d, size):
    """``grids`` with the padding :func:`phase_split` added set back to
    zero (a convolution writes its bias and neighbours there, and the next
    one must read zeros outside the image)."""
    _, _, hg, wg = grids.shape
    h, w = size
    if (hg * d, wg * d) == (h, w):
        return grids
    offsets = torch.arange(d, device=grids.device)[:, None]
    rows = offsets + d * torch.arange(hg, device=grids.device) < h
    cols = offsets + d * torch.arange(wg, device=grids.device) < w
    inside = rows[:, None, :, None] & cols[None, :, None, :]
    inside = inside.reshape(1, d * d, 1, hg, wg).to(grids.dtype)
    return (grids.unflatten(0, (-1, d * d)) * inside).flatten(0, 1)


@contextlib.contextmanager
def plain_dilated_convolutions():
    """Run dilated depth-wise convolutions as themselves inside the block,
    also on CPU: e.g. to count the FLOPs of the model as defined (the grids
    are padded to a multiple of the dilation, so a counter that watches the
    operators would count more multiply-adds)."""
    _PLAIN[0] += 1
    try:
        yield
    finally:
        _PLAIN[0] -= 1


def use_phase_split(x):
    """Whether dilated depth-wise convolutions on ``x`` run split."""
    if _PLAIN[0] or x.device.type != 'cpu' or x.dim() != 4:
        return False
    if torch.jit.is_scripting() or torch.jit.is_tracing():
        return False
    return not torch.onnx.is_in_onnx_export()


def dilated_depthwise(x, *convs):
    """``convs[-1](...convs[0](x))`` for dilated depth-wise convolutions
    with one dilation, run on the phase grids where that is faster
    (:func:`use_phase_split`); the grids are split once and merged once.
    """
    dilations = {_splittable(conv) for conv in convs}
    if len(dilations) != 1 or None in dilations or not use_phase_split(x):
        for conv in convs:
            x = conv(x)
        return x
    d = dilations.pop()
    size = tuple(x.shape[-2:])
    grids = phase_split(x, d)
    for n, conv in enumerate(convs):
        if n:
            grids = _zero_padding(grids, d, size)
        kh, kw = conv.kernel_size
        grids = F.conv2d(
            grids,
            conv.weight,
            conv.bias,
            padding=((kh - 1) // 2, (kw - 1) // 2),
            groups=conv.groups)
    return phase_merge(grids, d, size, memory_format_of(x))
