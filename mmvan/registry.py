# Copyright (c) mmvan contributors. All rights reserved.
"""mmvan's registries.

Each is a child of the matching mmengine root registry with scope
``mmvan``. Because their ``locations`` name mmvan's modules, a config running
under the default scope of mmpretrain, mmdet or mmseg can say
``type='mmvan.VAN'`` or ``type='mmvan.EpochSeedHook'`` without
``custom_imports``: mmengine imports ``mmvan.registry`` for the ``mmvan``
prefix and the registry imports its locations on first use.
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import \
    WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope='mmvan', locations=['mmvan.models'])
HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, scope='mmvan', locations=['mmvan.engine'])
LOOPS = Registry(
    'loop', parent=MMENGINE_LOOPS, scope='mmvan', locations=['mmvan.engine'])
OPTIM_WRAPPERS = Registry(
    'optim wrapper',
    parent=MMENGINE_OPTIM_WRAPPERS,
    scope='mmvan',
    locations=['mmvan.engine'])
TRANSFORMS = Registry(
    'transform',
    parent=MMENGINE_TRANSFORMS,
    scope='mmvan',
    locations=['mmvan.datasets'])
# ``init_cfg=dict(type='mmvan.PretrainedVAN', ...)``: strict, converting
# loads of any checkpoint reference (:mod:`mmvan.zoo.checkpoint`).
WEIGHT_INITIALIZERS = Registry(
    'weight initializer',
    parent=MMENGINE_WEIGHT_INITIALIZERS,
    scope='mmvan',
    locations=['mmvan.zoo'])
