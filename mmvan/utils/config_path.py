# Copyright (c) mmvan contributors. All rights reserved.
"""``mmvan::`` config inheritance.

mmengine resolves ``_base_ = 'pkg::path'`` to ``<package>/.mim/configs/path``
for the packages in its ``MODULE2PACKAGE`` table, locating the package with
``get_installed_path``. That function looks in the distribution's
site-packages folder, where an editable install (``pip install -e .``) has no
``mmvan`` folder. mmvan adds itself to the table and answers the lookup for
itself with the folder of the imported package; every other package is
looked up as before.

Inheriting another package's experiment config (``mmdet::retinanet/...``)
makes mmengine read all of that package's metafiles (about 100 YAML files
for mmdet, over a second) for every config loaded; the answer is a path
that does not change while the process runs, so it is kept.

mmengine offers no public way to add a package to this lookup: its
``MODULE2PACKAGE`` table is a module constant, and ``get_installed_path``
cannot find an editable install (the ``.mim`` folder of mmvan's setup.py
lies in the source tree, not in site-packages). So
:func:`register_config_package` adds mmvan to the table and wraps the two
functions mmengine's ``Config`` calls; it is called only by
:func:`mmvan.apis.register_all_modules`, never on import.
"""
import functools
import os.path as osp

from mmengine.config import config as config_module
from mmengine.config import utils as config_utils
from mmengine.fileio import load


def _mmvan_aware(get_installed_path):

    @functools.wraps(get_installed_path)
    def wrapper(package):
        if package == 'mmvan':
            return osp.dirname(osp.dirname(osp.abspath(__file__)))
        return get_installed_path(package)

    wrapper.__mmvan_wrapped__ = True
    return wrapper


def register_config_package():
    """Make ``_base_ = 'mmvan::<path>'`` resolve (see the module)."""
    config_utils.MODULE2PACKAGE.setdefault('mmvan', 'mmvan')
    current = config_module.get_installed_path
    if not getattr(current, '__mmvan_wrapped__', False):
        config_module.get_installed_path = _mmvan_aware(current)
    original = config_utils._get_cfg_metainfo
    if not getattr(original, '__mmvan_wrapped__', False):
        _cfg_metainfo.mmengine_original = original
        config_utils._get_cfg_metainfo = _cfg_metainfo


@functools.lru_cache(maxsize=None)
def _package_configs(package_path):
    """Every experiment config a package's metafiles list, by name (the
    first entry of each), read once per process."""
    mim = osp.join(package_path, '.mim')
    configs = {}
    for meta_path in load(osp.join(mim, 'model-index.yml'))['Import']:
        for model in load(osp.join(mim, meta_path)).get('Models') or []:
            if 'Config' in model:
                configs.setdefault(model['Config'].partition('/')[-1], model)
    return configs


def _cfg_metainfo(package_path, cfg_path):
    """The metafile entry of experiment config ``cfg_path`` of the package
    at ``package_path`` (what mmengine looks up for ``pkg::name``)."""
    configs = _package_configs(package_path)
    if cfg_path not in configs:
        raise ValueError(f'{cfg_path} is not an experiment config of '
                         f'{package_path}; known: {sorted(configs)[:5]} ...')
    return dict(configs[cfg_path])


_cfg_metainfo.__mmvan_wrapped__ = True
