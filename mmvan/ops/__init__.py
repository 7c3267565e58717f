# Copyright (c) mmvan contributors. All rights reserved.
"""GPU kernels (Triton) behind ``torch.library`` custom ops, each with a
PyTorch reference beside it."""
from .depthwise_conv import (IMPLS, KernelFallbackWarning, depthwise_conv2d,
                             depthwise_conv2d_reference, select_impl)

__all__ = [
    'IMPLS', 'KernelFallbackWarning', 'depthwise_conv2d',
    'depthwise_conv2d_reference', 'select_impl'
]
