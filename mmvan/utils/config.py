# Copyright (c) mmvan contributors. All rights reserved.
"""Reading a config (``--cfg-options`` checked against it), SyncBN on one
process and the work dir: what the library (``mmvan.apis``) and the tools
share. The checks a run makes on its config live in :mod:`mmvan.cli`."""
import difflib
import os
import os.path as osp

from mmengine.config import Config

from mmvan.registry import (HOOKS, LOOPS, MODELS, OPTIM_WRAPPERS, TRANSFORMS,
                            WEIGHT_INITIALIZERS)
from .atomic import creation_blocker
from .errors import UserError

# Top-level settings a config may leave out that the tools still read.
RUNTIME_KEYS = ('work_dir', 'load_from', 'load_from_strict', 'resume',
                'unreadable_images', 'train_fast_path', 'compile',
                'effective_batch', 'ema', 'preemption')


def load_config(path, cfg_options=None):
    """``Config.fromfile`` with clear errors, then ``--cfg-options``.

    A ``--cfg-options`` key whose first part is not in the config is an
    error with suggestions (a typo would otherwise be silently ignored).

    A config may inherit mmvan's with ``_base_ = 'mmvan::...'``. mmengine
    then marks the inherited dicts with ``_scope_='mmvan'``, but mmvan's
    configs name their task library's types (``ImageClassifier``,
    ``RetinaNet``, ...) under that library's ``default_scope`` and mmvan's
    own with the ``mmvan.`` prefix: the mark is removed where mmvan has no
    such type, so the types are found where the config means them.
    """
    if not osp.isfile(path):
        hint = ''
        folder = osp.dirname(path) or '.'
        if osp.isdir(folder):
            close = difflib.get_close_matches(
                osp.basename(path), os.listdir(folder), n=3)
            if close:
                hint = f' Did you mean: {", ".join(close)}?'
        raise UserError(f'Config file {path} does not exist.{hint}')
    try:
        cfg = Config.fromfile(path)
    except (SyntaxError, NameError, FileNotFoundError, KeyError) as e:
        raise UserError(f'Cannot read config {path}: '
                        f'{type(e).__name__}: {e}') from None
    _drop_mmvan_scope(cfg._cfg_dict)
    if cfg_options:
        for key in cfg_options:
            top = key.split('.', 1)[0]
            if top not in cfg and top not in RUNTIME_KEYS:
                close = difflib.get_close_matches(top, list(cfg.keys()), n=3)
                hint = f' Did you mean: {", ".join(close)}?' if close else ''
                raise UserError(
                    f'--cfg-options key {key!r}: {top!r} is not a key of '
                    f'{path}.{hint}')
        cfg.merge_from_dict(cfg_options)
    return cfg


def _mmvan_type(name):
    """Whether ``name`` is a type mmvan's registries (or mmengine's, their
    parents) build."""
    return any(
        registry.get(name) is not None
        for registry in (MODELS, HOOKS, LOOPS, OPTIM_WRAPPERS, TRANSFORMS,
                         WEIGHT_INITIALIZERS))


def _drop_mmvan_scope(node):
    if isinstance(node, dict):
        kind = node.get('type')
        if node.get('_scope_') == 'mmvan' and not (isinstance(kind, str)
                                                   and _mmvan_type(kind)):
            del node['_scope_']
        for value in node.values():
            _drop_mmvan_scope(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _drop_mmvan_scope(value)


def sync_bn_to_bn(node):
    """Replace ``SyncBN`` by ``BN`` in every ``norm_cfg`` / ``out_norm_cfg``
    of a config (sub)tree, in place.

    torch's SyncBatchNorm synchronises only CUDA tensors; on CPU, and in
    single-model uses such as inference or FLOP counting, plain BN computes
    the same.
    """
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ('norm_cfg', 'out_norm_cfg') and isinstance(
                    value, dict) and value.get('type') == 'SyncBN':
                value['type'] = 'BN'
            else:
                sync_bn_to_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            sync_bn_to_bn(value)
    return node


def set_work_dir(cfg, work_dir, config_path):
    """``--work-dir`` if given, else the config's, else
    ``./work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])
    check_work_dir(cfg.work_dir)


def check_work_dir(work_dir):
    """The work dir must be a folder, or creatable as one."""
    path = osp.abspath(osp.expanduser(str(work_dir)))
    if osp.exists(path) and not osp.isdir(path):
        raise UserError(f'work dir {work_dir} is a file, not a folder: give '
                        f'--work-dir a folder (it is created if missing).')
    parent, blocker = creation_blocker(path)
    if blocker == 'file':
        raise UserError(f'work dir {work_dir} cannot be created: {parent} '
                        f'is a file, not a folder.')
    if blocker == 'permission':
        raise UserError(f'work dir {work_dir} cannot be written: no '
                        f'permission in {parent}. Give --work-dir a folder '
                        f'you can write to.')
