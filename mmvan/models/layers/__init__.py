# Copyright (c) mmvan contributors. All rights reserved.
from .kernel_decomposition import LKA_KERNELS, LSKA_KERNELS, decompose_kernel
from .lka import LKA
from .lska import LSKA

__all__ = ['LKA', 'LSKA', 'LKA_KERNELS', 'LSKA_KERNELS', 'decompose_kernel']
