# Copyright (c) mmvan contributors. All rights reserved.
"""mmpretrain-style access to the model zoo.

    >>> from mmvan.apis import get_model, list_models
    >>> list_models('van-b2*')
    ['van-b2_3rdparty-hf_in1k', 'van-b2_3rdparty-mmpretrain_in1k', ...]
    >>> model = get_model('van-b2_3rdparty_in1k', pretrained=True)
"""
from typing import List, Optional, Union

import torch.nn as nn

from mmvan.utils.errors import CheckpointError
from mmvan.zoo.index import find_model
from mmvan.zoo.index import list_models as _list_models
from .inference import init_model


def list_models(pattern: Optional[str] = None,
                task: Optional[str] = None) -> List[str]:
    """Names of the zoo's models (every metafile entry), sorted.

    Args:
        pattern (str, optional): A wildcard pattern such as ``'van-b2*'``;
            without wildcards, names containing it.
        task (str, optional): e.g. ``'Image Classification'``.
    """
    return _list_models(pattern, task=task)


def get_model(model: str,
              pretrained: Union[bool, str] = False,
              device: str = 'cpu',
              deploy: bool = False,
              **kwargs) -> nn.Module:
    """Build a zoo model by name, optionally with its released weights.

    Args:
        model (str): A zoo name (or alias), see :func:`list_models`.
        pretrained (bool | str): True loads the zoo's weights for it, a
            string loads that checkpoint (path, URL or ``mmvan://`` name);
            False leaves the model as initialised by its config.
        device (str): Where to put the model.
        deploy (bool): Fold the VAN backbones for inference (see
            :func:`mmvan.apis.init_model`). Defaults to False: the model as
            trained.
        **kwargs: Overrides of the config's ``model``, e.g.
            ``head=dict(num_classes=200)``.

    Returns:
        nn.Module: In eval mode, with ``cfg``, ``dataset_meta`` and ``task``.
    """
    info = find_model(model)
    if not info.config:
        raise CheckpointError(f'{model}: the zoo gives no config for it.')
    if pretrained is True:
        checkpoint = f'mmvan://{info.name}'
    elif pretrained:
        checkpoint = str(pretrained)
    else:
        checkpoint = None
    cfg_options = {'model': kwargs} if kwargs else None
    return init_model(
        info.config,
        checkpoint,
        device=device,
        cfg_options=cfg_options,
        deploy=deploy)
