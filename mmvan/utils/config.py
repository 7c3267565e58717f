# Copyright (c) mmvan contributors. All rights reserved.
"""Reading and adapting a config for a run: ``--cfg-options`` checked
against the config, the work dir, pretrained references, CPU fallbacks for
GPU recipes and the image-loading policy. The library (``mmvan.apis``) and
the tools share these."""
import difflib
import os
import os.path as osp
import re

from mmvan.datasets.loading import dataset_pipelines, is_image_loader
from .errors import UserError

# Top-level settings a config may leave out that the tools still read.
RUNTIME_KEYS = ('work_dir', 'load_from', 'load_from_strict', 'resume',
                'unreadable_images', 'train_fast_path', 'compile',
                'effective_batch', 'ema', 'preemption')


def load_config(path, cfg_options=None):
    """``Config.fromfile`` with clear errors, then ``--cfg-options``.

    A ``--cfg-options`` key whose first part is not in the config is an
    error with suggestions (a typo would otherwise be silently ignored).
    """
    from mmengine.config import Config

    import mmvan  # noqa: F401  (mmvan:: inheritance, safe loading)
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
    parent = path
    while not osp.exists(parent):
        parent = osp.dirname(parent)
    if not osp.isdir(parent):
        raise UserError(f'work dir {work_dir} cannot be created: {parent} '
                        f'is a file, not a folder.')
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f'work dir {work_dir} cannot be written: no '
                        f'permission in {parent}. Give --work-dir a folder '
                        f'you can write to.')


def check_pretrained(cfg):
    """A local ``Pretrained`` checkpoint in the model config must exist
    before training starts."""
    missing = []

    def visit(node):
        if isinstance(node, dict):
            init = node.get('init_cfg')
            inits = init if isinstance(init, (list, tuple)) else [init]
            for item in inits:
                if isinstance(item, dict) and item.get('type') == 'Pretrained':
                    ckpt = item.get('checkpoint')
                    if isinstance(ckpt, str) and ckpt.startswith('mmvan://'):
                        from mmvan.zoo import find_model
                        find_model(ckpt[len('mmvan://'):])
                    elif isinstance(ckpt, str) and not re.match(
                            r'\w+://', ckpt) and not osp.isfile(ckpt):
                        missing.append(ckpt)
            for value in node.values():
                visit(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                visit(value)

    visit(cfg.get('model', {}))
    if missing:
        raise UserError(
            f'pretrained checkpoint {missing[0]} not found. Point the '
            f'backbone at a file, an URL or a zoo name with --cfg-options '
            f'model.backbone.init_cfg.checkpoint=mmvan://NAME (any known '
            f'format loads; mmvan.apis.list_models() lists the names), or '
            f'train from scratch with --cfg-options '
            f'model.backbone.init_cfg=None.')


def apply_device_fallbacks(cfg, launcher='none', amp=False):
    """Adapt a recipe to the machine: gloo for distributed runs without
    GPUs, and the mixed precision of ``--amp``.

    ``--amp`` on a GPU with bfloat16 (Ampere or later) trains under
    bfloat16 autocast without a loss scaler
    (:class:`mmvan.engine.optimizers.BF16AutocastOptimWrapper`); with
    ``optim_wrapper.dtype='float16'`` in the config, or on an older GPU,
    under float16 autocast with mmengine's dynamic loss scaling; on CPU
    under bfloat16 autocast (:class:`mmvan.engine.optimizers.
    CPUAmpOptimWrapper`).

    mmengine's ``init_dist`` selects a CUDA device unconditionally, so on a
    machine without GPUs the process group of a ``--launcher pytorch`` run
    (``tools/dist_train.sh``) is created here, with gloo; the Runner then
    uses it as it is.
    """
    import torch
    has_cuda = torch.cuda.is_available()
    if launcher != 'none' and not has_cuda:
        if launcher != 'pytorch':
            raise UserError(
                f'--launcher {launcher} needs GPUs; on a machine without '
                f'them use tools/dist_train.sh (--launcher pytorch).')
        cfg.setdefault('env_cfg', {})
        cfg.env_cfg.setdefault('dist_cfg', {})
        cfg.env_cfg.dist_cfg['backend'] = 'gloo'
        # On CPU each process normalises its own batch.
        sync_bn_to_bn(cfg.model)
        # DistributedDataParallel takes no device ids for CPU modules.
        wrapper = cfg.get('model_wrapper_cfg') or dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        wrapper['device_ids'] = None
        cfg.model_wrapper_cfg = wrapper
        import torch.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group(backend='gloo')
    if amp:
        optim_wrapper = cfg.optim_wrapper
        if optim_wrapper.get('type', 'OptimWrapper') in ('OptimWrapper',
                                                         'AmpOptimWrapper'):
            dtype = str(optim_wrapper.get('dtype')
                        or 'auto').replace('torch.', '')
            if dtype not in ('auto', 'bfloat16', 'float16'):
                raise UserError(f"--amp: optim_wrapper.dtype must be "
                                f"'bfloat16' or 'float16', got {dtype!r}.")
            if has_cuda and dtype != 'float16' and (
                    torch.cuda.is_bf16_supported()):
                optim_wrapper['type'] = 'mmvan.BF16AutocastOptimWrapper'
                optim_wrapper.pop('loss_scale', None)
                optim_wrapper.pop('dtype', None)
            elif has_cuda:
                if dtype == 'bfloat16':
                    raise UserError(
                        f'--amp: optim_wrapper.dtype=bfloat16, but '
                        f'{torch.cuda.get_device_name()} has no bfloat16; '
                        f'use float16.')
                optim_wrapper['type'] = 'AmpOptimWrapper'
                optim_wrapper['dtype'] = 'float16'
                optim_wrapper.setdefault('loss_scale', 'dynamic')
            else:
                optim_wrapper['type'] = 'mmvan.CPUAmpOptimWrapper'
                optim_wrapper.pop('loss_scale', None)
                optim_wrapper['dtype'] = 'bfloat16'
        else:
            raise UserError(
                f'--amp: the config already uses optim wrapper '
                f'{optim_wrapper.type!r}; set mixed precision there.')
    return cfg


def set_image_policy(cfg, train=True):
    """Load images with ``mmvan.LoadImageFromFile``, which names an
    unreadable file: skipped and counted in training (the config's
    ``unreadable_images=dict(policy='skip'|'raise', max_share=0.001)``),
    an error naming it in validation and testing.

    Returns:
        dict: the training policy (``policy``, ``max_share``).
    """
    policy = dict(policy='skip', max_share=0.001)
    policy.update(cfg.get('unreadable_images') or {})
    if policy['policy'] not in ('skip', 'raise'):
        raise UserError(f"unreadable_images.policy must be 'skip' or "
                        f"'raise', got {policy['policy']!r}.")
    loaders = {
        'train_dataloader': policy['policy'] if train else 'raise',
        'val_dataloader': 'raise',
        'test_dataloader': 'raise'
    }
    for name, on_error in loaders.items():
        loader = cfg.get(name)
        if not loader:
            continue
        for pipeline in dataset_pipelines(loader.get('dataset')):
            for step in pipeline:
                if is_image_loader(step):
                    step['type'] = 'mmvan.LoadImageFromFile'
                    step['on_error'] = on_error
    return policy
