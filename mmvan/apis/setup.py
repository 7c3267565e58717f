# Copyright (c) mmvan contributors. All rights reserved.
"""The one call that switches on mmvan's extension points of mmengine and
torch: :func:`register_all_modules`.

Importing mmvan (or building ``type='mmvan.VAN'`` from another library's
scope) registers mmvan's modules in mmvan's own registries and changes
nothing else. The tools call :func:`register_all_modules` through
:func:`mmvan.cli.run_cli`; a Python user calls it once, as mmpretrain's
``register_all_modules``.
"""
import datetime
import warnings

from mmengine.registry import DefaultScope

import mmvan.datasets  # noqa: F401  (registers the transforms)
import mmvan.models  # noqa: F401  (registers the models)
from mmvan.utils.atomic import register_atomic_backend
from mmvan.utils.checkpoint import setup_safe_loading
from mmvan.utils.config_path import register_config_package
from mmvan.utils.quiet import quiet_init_report
from mmvan.zoo import register_schemes


def register_all_modules(init_default_scope: bool = False) -> None:
    """Switch on mmvan's extension points (calling it again changes
    nothing):

    - torch's safe loader accepts the objects of mmengine's training
      checkpoints, and mmengine's local checkpoint loads use it;
    - mmengine's ``CheckpointLoader`` loads ``mmvan://<name>`` and
      downloads http(s) checkpoints once, with a completeness check;
    - the atomic local file backend is registered (the checkpoint hooks ask
      for it by name);
    - ``_base_ = 'mmvan::<config>'`` resolves in any config;
    - the per-parameter initialisation report of a model built outside a
      training run is logged at DEBUG level, not to the console.

    Args:
        init_default_scope (bool): Also make ``mmvan`` the default registry
            scope (as mmpretrain's ``register_all_modules`` does). Defaults
            to False: mmvan's configs name ``mmvan.`` types under
            mmpretrain's, mmdet's, mmseg's or mmpose's scope.
    """
    setup_safe_loading()
    register_schemes()
    register_atomic_backend()
    register_config_package()
    quiet_init_report()
    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None:
        DefaultScope.get_instance('mmvan', scope_name='mmvan')
    elif current.scope_name != 'mmvan':
        warnings.warn(f'The current default scope "{current.scope_name}" is '
                      f'not "mmvan"; register_all_modules makes a new one.')
        DefaultScope.get_instance(
            f'mmvan-{datetime.datetime.now()}', scope_name='mmvan')
