# Copyright (c) mmvan contributors. All rights reserved.
"""mmvan's registries.

``MODELS`` is a child of mmengine's root ``MODELS`` with scope ``mmvan``.
Because its ``locations`` name ``mmvan.models``, a config running under the
default scope of mmpretrain, mmdet or mmseg can say ``type='mmvan.VAN'``
without ``custom_imports``: mmengine imports ``mmvan.registry`` for the
``mmvan`` prefix and this registry imports ``mmvan.models`` on first use.
"""
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope='mmvan', locations=['mmvan.models'])
