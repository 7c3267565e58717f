# Copyright (c) mmvan contributors. All rights reserved.
"""The folded inference model (see :meth:`mmvan.models.VAN.switch_to_deploy`)
for any model that contains mmvan VAN backbones."""
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper


def fuse_model(model, channels_last=True, chunk_mib=8):
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
    from mmvan.models.backbones.van import VAN
    from mmvan.models.utils import to_channels_last
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
