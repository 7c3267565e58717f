# Copyright (c) mmvan contributors. All rights reserved.
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper

from mmvan.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class BF16AutocastOptimWrapper(OptimWrapper):
    """Mixed precision with bfloat16 autocast and no loss scaler, on the
    device the model is on (a GPU with bfloat16, such as Ampere or later).

    bfloat16 has float32's exponent range, so gradients do not underflow
    and need no scaling: mmengine's ``AmpOptimWrapper`` would still scale
    the loss, unscale every gradient and check it for inf/NaN at each step.
    ``tools/train.py --amp`` picks this wrapper on a GPU that supports
    bfloat16 (``optim_wrapper.dtype='float16'`` keeps fp16 with a loss
    scaler).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.cast_dtype = torch.bfloat16

    @contextmanager
    def optim_context(self, model):
        device = next((p.device.type for p in model.parameters()), 'cpu')
        with super().optim_context(model):
            with torch.autocast(device, dtype=self.cast_dtype):
                yield
