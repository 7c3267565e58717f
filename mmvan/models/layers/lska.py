# Copyright (c) mmvan contributors. All rights reserved.
import torch.nn as nn
from mmengine.model import BaseModule

from .conv_impl import check_conv_impl, runs_triton, triton_depthwise
from .fused_conv import conv_binary
from .kernel_decomposition import LSKA_KERNELS, decompose_kernel
from .phase_conv import dilated_depthwise


class LSKA(BaseModule):
    """Large Separable Kernel Attention.

    LKA with each 2-D depth-wise kernel split into a horizontal ``1 x k``
    and a vertical ``k x 1`` one: ``conv0h -> conv0v -> conv_spatial_h ->
    conv_spatial_v -> conv1``, output ``x * attn``. Its cost grows linearly
    rather than quadratically with the kernel size. On CPU the two dilated
    convolutions run on their phase grids, split and merged once
    (:mod:`~mmvan.models.layers.phase_conv`); on CUDA all four run on the
    Triton kernels of :mod:`mmvan.ops` (see
    :mod:`~mmvan.models.layers.conv_impl`).

    Args:
        embed_dims (int): Number of channels.
        kernel_size (int): One of 7, 11, 23, 35, 41, 53. Defaults to 23.
        init_cfg (dict, optional): Initialization config. Defaults to None.
        conv_impl (str): ``'auto'``, ``'triton'`` or ``'torch'``, see
            :mod:`~mmvan.models.layers.conv_impl`. Defaults to ``'auto'``.
    """

    def __init__(self,
                 embed_dims,
                 kernel_size=23,
                 init_cfg=None,
                 conv_impl='auto'):
        super().__init__(init_cfg=init_cfg)
        a, b, d = decompose_kernel(kernel_size, LSKA_KERNELS)
        self.kernel_size = kernel_size
        self.conv_impl = check_conv_impl(conv_impl)
        c = embed_dims
        pad = d * (b - 1) // 2
        self.conv0h = nn.Conv2d(c, c, (1, a), padding=(0, a // 2), groups=c)
        self.conv0v = nn.Conv2d(c, c, (a, 1), padding=(a // 2, 0), groups=c)
        self.conv_spatial_h = nn.Conv2d(
            c, c, (1, b), padding=(0, pad), dilation=d, groups=c)
        self.conv_spatial_v = nn.Conv2d(
            c, c, (b, 1), padding=(pad, 0), dilation=d, groups=c)
        self.conv1 = nn.Conv2d(c, c, 1)

    def depthwise(self, x):
        """The four depth-wise convolutions, in order."""
        if runs_triton(self.conv_impl, x):
            for conv in (self.conv0h, self.conv0v, self.conv_spatial_h,
                         self.conv_spatial_v):
                x = triton_depthwise(conv, x)
            return x
        attn = self.conv0v(self.conv0h(x))
        return dilated_depthwise(attn, self.conv_spatial_h,
                                 self.conv_spatial_v)

    def attention(self, x):
        """The attention tensor, shaped like ``x``."""
        return self.conv1(self.depthwise(x))

    def forward(self, x):
        return x * self.attention(x)

    def fused_forward(self, x):
        """``forward`` with the product fused into ``conv1`` (inference on
        CPU; other cases run the plain operations)."""
        return conv_binary(self.depthwise(x), x, self.conv1, 'mul')
