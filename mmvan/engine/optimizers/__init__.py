# Copyright (c) mmvan contributors. All rights reserved.
from .bf16_optimizer_wrapper import BF16AutocastOptimWrapper
from .cpu_amp_optimizer_wrapper import CPUAmpOptimWrapper

__all__ = ['BF16AutocastOptimWrapper', 'CPUAmpOptimWrapper']
