# Copyright (c) mmvan contributors. All rights reserved.
"""A recipe adapted to the machine it runs on: gloo for distributed runs
without GPUs, and the mixed precision of ``--amp`` for the device at hand.
``tools/train.py`` applies it (through :mod:`mmvan.cli`), and so does the
training-speed measurement (:mod:`mmvan.analysis.train_speed`)."""
import torch
import torch.distributed as dist

from mmvan.utils.config import sync_bn_to_bn
from mmvan.utils.errors import UserError


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
