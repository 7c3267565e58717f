# Copyright (c) mmvan contributors. All rights reserved.
"""``mmvan::`` config inheritance.

mmengine resolves ``_base_ = 'pkg::path'`` to ``<package>/.mim/configs/path``
for the packages in its ``MODULE2PACKAGE`` table, locating the package with
``get_installed_path``. That function looks in the distribution's
site-packages folder, where an editable install (``pip install -e .``) has no
``mmvan`` folder. mmvan adds itself to the table and answers the lookup for
itself with the folder of the imported package; every other package is
looked up as before.
"""
import functools
import os.path as osp


def _mmvan_aware(get_installed_path):

    @functools.wraps(get_installed_path)
    def wrapper(package):
        if package == 'mmvan':
            return osp.dirname(osp.dirname(osp.abspath(__file__)))
        return get_installed_path(package)

    wrapper.__mmvan_wrapped__ = True
    return wrapper


def register_config_package():
    from mmengine.config import config as config_module
    from mmengine.config.utils import MODULE2PACKAGE
    MODULE2PACKAGE.setdefault('mmvan', 'mmvan')
    current = config_module.get_installed_path
    if not getattr(current, '__mmvan_wrapped__', False):
        config_module.get_installed_path = _mmvan_aware(current)
