# Copyright (c) mmvan contributors. All rights reserved.
"""The folded inference model (see :meth:`mmvan.models.VAN.switch_to_deploy`)
for any model that contains mmvan VAN backbones."""
import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper


def _to_channels_last(module, args):
    x = args[0]
    if isinstance(x, torch.Tensor) and x.dim() == 4:
        return (x.contiguous(memory_format=torch.channels_last), ) + tuple(
            args[1:])
    return None


def fuse_model(model, channels_last=True, chunk_mib=8):
    """Put ``model`` in eval mode and fold every mmvan VAN inside it.

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
    from mmvan.models.backbones.van import VAN
    if is_model_wrapper(model):
        model = model.module
    model.eval()
    count = 0
    for module in model.modules():
        if isinstance(module, VAN) and not module.deploy:
            module.switch_to_deploy(chunk_mib=chunk_mib)
            if channels_last:
                module.to(memory_format=torch.channels_last)
                module.register_forward_pre_hook(_to_channels_last)
            count += 1
    return count


class DeployHook(Hook):
    """Fold the VAN backbones once the checkpoint is loaded, before
    testing."""
    priority = 'LOWEST'

    def before_test(self, runner):
        count = fuse_model(runner.model)
        if count:
            print_log(
                f'Folded BatchNorms and layer scales of {count} VAN '
                f'backbone(s) for inference (--no-deploy to keep them).',
                logger='current')
