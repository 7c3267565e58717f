# Copyright (c) mmvan contributors. All rights reserved.
"""The fastest exact inference path for models with VAN backbones."""
from typing import Callable, Tuple

import torch
import torch.nn as nn

from mmvan.backends import module_predictor, pick_backend
from mmvan.models.utils.deploy import fuse_model


def optimize_for_inference(model: nn.Module,
                           channels_last: bool = True,
                           compile: bool = False,
                           chunk_mib: float = 8,
                           backend: str = 'pytorch',
                           precision: str = 'fp32',
                           shape: Tuple[int, int] = (224, 224)) -> Callable:
    """Fold, change layout and optionally compile a model for inference,
    or run it on a backend's inference runtime.

    Every step computes the same function as the trained model (the folded
    and compiled outputs differ from it by float32 rounding only, about
    1e-5 relative).

    Args:
        model (nn.Module): A model containing mmvan VAN backbones, or a VAN.
        channels_last (bool): Store the VAN weights and activations
            channels-last, which oneDNN's CPU convolutions run faster; their
            inputs are converted on the way in.
        compile (bool): ``torch.compile`` (inductor) with weight freezing,
            which fuses the element-wise work into the convolutions. The
            first call compiles (tens of seconds on a small CPU).
        chunk_mib (float): Slice size of the batch in eager mode (see
            :func:`mmvan.apis.fuse_model`); 0 runs whole batches.
        backend (str): ``'pytorch'`` (default: the steps above),
            ``'onnxruntime'``, ``'openvino'`` or ``'auto'`` (the fastest
            exact runtime installed, :func:`mmvan.backends.pick_backend`).
            A runtime runs the folded model exported to ONNX, checked
            against ``model`` on the check images at ``shape`` (1e-4
            relative in fp32, or :class:`~mmvan.backends.BackendCheckError`);
            ``model`` itself is left as it is.
        precision (str): ``'fp32'``, or ``'bf16'`` (OpenVINO, PyTorch) when
            asked for.
        shape (tuple): Height and width of the check images.

    Returns:
        callable: ``f(x)`` running the optimised model under
        ``torch.inference_mode``; its ``backend`` and ``report`` attributes
        say what runs it.
    """
    if backend == 'auto':
        device = next(iter(model.parameters()), torch.empty(0)).device
        backend = pick_backend(device.type, precision)
    if backend != 'pytorch' or precision != 'fp32':
        return _backend_forward(model, backend, precision, shape)
    fuse_model(model, channels_last=channels_last, chunk_mib=chunk_mib)
    compiled = model
    if compile:
        # Weight freezing for this compilation only (inductor's option).
        compiled = torch.compile(model, options={'freezing': True})

    def forward(x):
        with torch.inference_mode():
            return compiled(x)

    forward.model = model
    forward.backend, forward.report = 'pytorch', None
    return forward


def _backend_forward(model, backend, precision, shape):
    predictor, report, as_tuple = module_predictor(model, backend, precision,
                                                   shape)

    def forward(x):
        outs = tuple(o.to(x.device) for o in predictor(x))
        return outs if as_tuple else outs[0]

    forward.model = model
    forward.backend, forward.report = backend, report
    forward.predictor = predictor
    return forward
