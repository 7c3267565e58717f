# Copyright (c) mmvan contributors. All rights reserved.
"""The folded inference form of any model that contains mmvan VAN backbones
(see :meth:`mmvan.models.VAN.switch_to_deploy`).

Not exported by :mod:`mmvan.models.utils`: this module imports the backbone,
which imports that package.
"""
import torch.nn as nn
from mmengine.model import is_model_wrapper

from ..backbones.van import VAN
from .layout import to_channels_last


def fuse_model(model: nn.Module,
               channels_last: bool = True,
               chunk_mib: float = 8) -> int:
    """Put ``model`` in eval mode and fold every mmvan VAN inside it (a VAN
    folded already, e.g. built with ``deploy=True``, gets the budget and
    layout).

    Args:
        model (nn.Module): Any model; its VAN backbones are changed.
        channels_last (bool): Also keep each VAN's weights and feature maps
            channels-last (oneDNN's fast layout on CPU); its inputs are
            converted on the way in.
        chunk_mib (float): On CPU without autograd, run each stage over
            slices of the batch whose MLP hidden map fits in this many MiB
            (see :meth:`mmvan.models.VAN.switch_to_deploy`); 0 runs whole
            batches.

    Returns:
        int: The number of VAN backbones folded.
    """
    if is_model_wrapper(model):
        model = model.module
    model.eval()
    count = 0
    for module in model.modules():
        if isinstance(module, VAN) and not getattr(module, '_fused', False):
            module.switch_to_deploy(chunk_mib=chunk_mib)
            if channels_last:
                to_channels_last(module)
            module._fused = True
            count += 1
    return count
