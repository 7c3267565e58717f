# Copyright (c) mmvan contributors. All rights reserved.
"""What the analysis tests share: demo images and checkpoints whose logits
are known (the tools and tiny configs come from ``tests/conftest.py``)."""
import os.path as osp

import pytest
import torch


def constant_logit_checkpoint(config, path, bias):
    """A checkpoint of ``config``'s classifier whose logits are ``bias``
    for every image (zero head weights)."""
    from mmvan.analysis.common import random_init
    from mmvan.apis import init_model
    model = random_init(init_model(config, deploy=False))
    with torch.no_grad():
        model.head.fc.weight.zero_()
        model.head.fc.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path


@pytest.fixture(scope='session')
def demo_images(tmp_path_factory):
    """A few deterministic demo texture images (64 x 64)."""
    from mmvan.datasets.demo_data import make_classification_demo
    root = str(tmp_path_factory.mktemp('demo') / 'demo_cls')
    make_classification_demo(
        root, num_train=1, num_val=1, size=64, odd_modes=False)
    return osp.join(root, 'val')


@pytest.fixture(scope='session')
def constant_checkpoint():
    """``constant_checkpoint(config, path, bias)``."""
    return constant_logit_checkpoint
