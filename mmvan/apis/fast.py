# Copyright (c) mmvan contributors. All rights reserved.
"""The fastest exact inference path for models with VAN backbones."""
import torch

from .deploy import fuse_model


def optimize_for_inference(model,
                           channels_last=True,
                           compile=False,
                           chunk_mib=8):
    """Fold, change layout and optionally compile a model for inference.

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

    Returns:
        callable: ``f(x)`` running the optimised model under
        ``torch.inference_mode``.
    """
    fuse_model(model, channels_last=channels_last, chunk_mib=chunk_mib)
    runner = model
    if compile:
        import torch._inductor.config as inductor_config
        inductor_config.freezing = True
        runner = torch.compile(model)

    def forward(x):
        with torch.inference_mode():
            return runner(x)

    forward.model = model
    return forward
