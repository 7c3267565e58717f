# Copyright (c) mmvan contributors. All rights reserved.
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper

from mmvan.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """Mixed precision on CPU: the training forward runs under bfloat16
    autocast.

    mmengine's ``AmpOptimWrapper`` needs a GPU. bfloat16 has float32's range,
    so no loss scaling is needed. ``tools/train.py --amp`` picks this wrapper
    when no GPU is present.
    """

    def __init__(self, dtype='bfloat16', **kwargs):
        super().__init__(**kwargs)
        if dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError('CPU autocast supports bfloat16 only, got '
                             f'{dtype!r}.')
        self.cast_dtype = torch.bfloat16

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model):
            with torch.autocast('cpu', dtype=self.cast_dtype):
                yield
