# Copyright (c) mmvan contributors. All rights reserved.
"""Predictors: the exported part of a model as a function from a float
tensor batch to the list of its output tensors, on a backend's runtime
(:class:`RuntimePredictor`) or in PyTorch (:class:`TorchPredictor`)."""
import numpy as np
import torch

from mmvan.models.utils.deploy import fuse_model
from .runtimes import BackendUnsupportedError


class RuntimePredictor:
    """A loaded runtime (:class:`~mmvan.backends.Runtime`) as a tensor ->
    list of tensors function."""

    def __init__(self, runtime):
        self.runtime = runtime

    def __call__(self, x):
        arr = x.detach().to('cpu', torch.float32).contiguous().numpy()
        return [torch.from_numpy(np.asarray(o)) for o in self.runtime(arr)]


class TorchPredictor:
    """The folded part in PyTorch, float32 or bfloat16 (weights and
    activations; outputs returned as float32)."""

    def __init__(self, graph, precision='fp32'):
        if precision not in ('fp32', 'bf16'):
            raise BackendUnsupportedError(
                f"backend 'pytorch' has no {precision} mode; int8 runs on "
                f"backend='onnxruntime'.")
        fuse_model(graph)
        self.dtype = torch.bfloat16 if precision == 'bf16' else torch.float32
        self.graph = graph.to(self.dtype)

    def __call__(self, x):
        x = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            outs = self.graph(x)
        outs = outs if isinstance(outs, (tuple, list)) else (outs, )
        return [o.float() for o in outs]
