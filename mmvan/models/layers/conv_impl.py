# Copyright (c) mmvan contributors. All rights reserved.
"""Which implementation runs VAN's depth-wise convolutions.

``conv_impl`` of :class:`mmvan.models.VAN` (and of its blocks, attentions
and MLPs):

- ``'auto'``: the Triton kernels of :mod:`mmvan.ops` on CUDA tensors; on
  every other device the existing paths (on CPU: oneDNN, the phase grids of
  dilated convolutions, the fused inference post-ops), unchanged;
- ``'triton'``: the Triton kernels wherever they run (CUDA, or CPU tensors
  under ``TRITON_INTERPRET=1``); calls they do not cover run PyTorch's op,
  logged once;
- ``'torch'``: PyTorch's own operations everywhere, as before the kernels
  existed.

While tracing, scripting or exporting to ONNX the PyTorch operations run
(an exported graph holds standard operators only).
"""
import torch

from mmvan.ops import depthwise_conv2d
from mmvan.ops.dwconv_gelu import dwconv_gelu
from mmvan.utils.errors import ConfigError

CONV_IMPLS = ('auto', 'triton', 'torch')


def check_conv_impl(conv_impl):
    """``conv_impl`` if it is one of :data:`CONV_IMPLS`, else a
    :class:`~mmvan.utils.errors.ConfigError`."""
    if conv_impl not in CONV_IMPLS:
        raise ConfigError(f'conv_impl must be one of {CONV_IMPLS}, got '
                          f'{conv_impl!r}.')
    return conv_impl


def runs_triton(conv_impl, x):
    """Whether the depth-wise convolutions on ``x`` go to the Triton
    kernels under ``conv_impl``."""
    if conv_impl == 'torch' or (conv_impl == 'auto'
                                and x.device.type != 'cuda'):
        return False
    if torch.jit.is_scripting() or torch.jit.is_tracing():
        return False
    return not torch.onnx.is_in_onnx_export()


def triton_depthwise(conv, x):
    """``conv(x)`` for a depth-wise ``nn.Conv2d`` on the Triton kernels."""
    return depthwise_conv2d(
        x,
        conv.weight,
        conv.bias,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        impl='triton')


def triton_depthwise_gelu(conv, x, fused=True):
    """``gelu(conv(x))`` (exact GELU) for the MLP's 3x3 depth-wise
    ``conv``: one fused kernel (:func:`mmvan.ops.dwconv_gelu.dwconv_gelu`),
    or with ``fused=False`` the depth-wise kernel and PyTorch's GELU."""
    if fused and tuple(conv.padding) == (1, 1) and tuple(
            conv.stride) == (1, 1) and tuple(conv.dilation) == (1, 1):
        return dwconv_gelu(x, conv.weight, conv.bias, impl='triton')
    return torch.nn.functional.gelu(triton_depthwise(conv, x))
