# Copyright (c) mmvan contributors. All rights reserved.
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmvan.models.utils.deploy import fuse_model
from mmvan.registry import HOOKS


@HOOKS.register_module()
class DeployHook(Hook):
    """Fold the VAN backbones once the checkpoint is loaded, before
    testing (:func:`mmvan.apis.fuse_model`)."""
    priority = 'LOWEST'

    def before_test(self, runner):
        count = fuse_model(runner.model)
        if count:
            print_log(
                f'Folded BatchNorms and layer scales of {count} VAN '
                f'backbone(s) for inference (--no-deploy to keep them).',
                logger='current')
