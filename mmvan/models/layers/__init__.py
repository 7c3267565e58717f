# Copyright (c) mmvan contributors. All rights reserved.
from .fused_conv import conv_binary, conv_gelu, undilate_
from .kernel_decomposition import LKA_KERNELS, LSKA_KERNELS, decompose_kernel
from .lka import LKA
from .lska import LSKA

__all__ = [
    'conv_binary', 'conv_gelu', 'undilate_', 'LKA', 'LSKA', 'LKA_KERNELS',
    'LSKA_KERNELS', 'decompose_kernel'
]
