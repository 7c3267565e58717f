# Copyright (c) mmvan contributors. All rights reserved.
import torch.nn as nn
from mmengine.model import BaseModule

from .conv_impl import check_conv_impl, runs_triton, triton_depthwise
from .fused_conv import conv_binary
from .kernel_decomposition import decompose_kernel
from .phase_conv import dilated_depthwise


class LKA(BaseModule):
    """Large Kernel Attention.

    ``attn = conv1(conv_spatial(conv0(x)))`` and the output is ``x * attn``
    (no sigmoid), where ``conv0`` is an ``a x a`` depth-wise convolution,
    ``conv_spatial`` a ``b x b`` depth-wise convolution with dilation ``d``
    and ``conv1`` a point-wise convolution. On CPU the dilated convolution
    runs on its phase grids (:mod:`~mmvan.models.layers.phase_conv`), on
    CUDA the depth-wise convolutions run on the Triton kernels of
    :mod:`mmvan.ops` (see :mod:`~mmvan.models.layers.conv_impl`). The
    default ``kernel_size=21`` is VAN's released ``(5, 7, 3)``.

    Args:
        embed_dims (int): Number of channels.
        kernel_size (int): The large kernel, see
            :func:`~mmvan.models.layers.decompose_kernel`. Defaults to 21.
        init_cfg (dict, optional): Initialization config. Defaults to None.
        conv_impl (str): ``'auto'``, ``'triton'`` or ``'torch'``, see
            :mod:`~mmvan.models.layers.conv_impl`. Defaults to ``'auto'``.
    """

    def __init__(self,
                 embed_dims,
                 kernel_size=21,
                 init_cfg=None,
                 conv_impl='auto'):
        super().__init__(init_cfg=init_cfg)
        a, b, d = decompose_kernel(kernel_size)
        self.kernel_size = kernel_size
        self.conv_impl = check_conv_impl(conv_impl)
        self.conv0 = nn.Conv2d(
            embed_dims, embed_dims, a, padding=a // 2, groups=embed_dims)
        self.conv_spatial = nn.Conv2d(
            embed_dims,
            embed_dims,
            b,
            padding=d * (b - 1) // 2,
            dilation=d,
            groups=embed_dims)
        self.conv1 = nn.Conv2d(embed_dims, embed_dims, 1)

    def depthwise(self, x):
        """``conv_spatial(conv0(x))``."""
        if runs_triton(self.conv_impl, x):
            return triton_depthwise(self.conv_spatial,
                                    triton_depthwise(self.conv0, x))
        return dilated_depthwise(self.conv0(x), self.conv_spatial)

    def attention(self, x):
        """The attention tensor, shaped like ``x``."""
        return self.conv1(self.depthwise(x))

    def forward(self, x):
        return x * self.attention(x)

    def fused_forward(self, x):
        """``forward`` with the product fused into ``conv1`` (inference on
        CPU; other cases run the plain operations)."""
        return conv_binary(self.depthwise(x), x, self.conv1, 'mul')
