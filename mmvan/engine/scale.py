# Copyright (c) mmvan contributors. All rights reserved.
"""Training at the recipe's scale on the processes there are.

What ``tools/train.py`` sets up from ``--effective-batch``, ``--ema`` and the
config keys ``effective_batch``, ``ema`` and ``preemption``:

- the effective batch: with ``W`` processes of ``B`` images, gradients are
  accumulated over ``A = N / (W * B)`` iterations
  (``optim_wrapper.accumulative_counts``) and the recipe's learning rate is
  kept. Each iteration normalises its BatchNorms over its own ``B`` images,
  so ``B`` equal to the recipe's per-GPU batch keeps its statistics exactly;
- an exponential moving average of the weights (:class:`~.hooks.EMAHook`);
- pre-emption-safe runs (:class:`~.hooks.PreemptionHook`, with the training
  loop that resumes within an epoch), on unless ``preemption=False``.
"""
import os

from mmvan.utils.errors import ConfigError, UserError
from .hooks.ema_hook import DEFAULT_MOMENTUM
from .hooks.preemption_hook import stop_signals

_WORLD_SIZE_VARS = dict(
    pytorch='WORLD_SIZE', slurm='SLURM_NTASKS', mpi='OMPI_COMM_WORLD_SIZE')


def world_size(launcher='none', environ=None):
    """The number of training processes a launch starts, from the
    launcher's environment (1 without a launcher)."""
    environ = os.environ if environ is None else environ
    name = _WORLD_SIZE_VARS.get(launcher)
    if name is None:
        return 1
    try:
        return max(int(environ.get(name, 1)), 1)
    except ValueError:
        return 1


def working_batch_sizes(total, processes):
    """Per-process batch sizes that make ``total`` with ``processes``
    processes and a whole accumulation."""
    if total % processes:
        return []
    share = total // processes
    return [b for b in range(1, share + 1) if share % b == 0]


def accumulation_for(total, processes, per_process):
    """``total / (processes * per_process)``, the iterations per optimizer
    step.

    Raises:
        UserError: when it is smaller than one iteration or not whole; the
            message lists the per-process batch sizes that work.
    """
    if total < 1:
        raise UserError(f'--effective-batch must be positive, not {total}.')
    step = processes * per_process
    plural = 'es' if processes != 1 else ''
    sizes = working_batch_sizes(total, processes)
    if sizes:
        listed = ', '.join(str(b) for b in sizes)
        hint = (f' Per-process batch sizes that work with {processes} '
                f'process{plural}: {listed} '
                f'(train_dataloader.batch_size).')
    else:
        hint = (f' No per-process batch size works: {total} images do not '
                f'split over {processes} processes.')
    if total < step:
        raise UserError(
            f'--effective-batch {total} is smaller than one iteration of '
            f'{processes} process{plural} x {per_process} images '
            f'({step}).{hint}')
    if total % step:
        raise UserError(
            f'--effective-batch {total} is not a whole number of '
            f'iterations of {processes} process{plural} x {per_process} '
            f'images ({total} / {step} = {total / step:.3g}).{hint}')
    return total // step


def _replace_hook(cfg, hook):
    """Put ``hook`` in ``custom_hooks`` in place of any of its type (a
    run's dumped config trained again keeps one)."""
    same = (hook['type'], )
    if hook['type'] == 'mmvan.EMAHook':
        same += ('EMAHook', )
    cfg.custom_hooks = [
        h for h in cfg.get('custom_hooks', []) if h.get('type') not in same
    ] + [hook]


def set_effective_batch(cfg, total, processes):
    """Accumulate gradients so that an optimizer step sees ``total``
    images (``total='recipe'``: the config's
    ``auto_scale_lr.base_batch_size``); returns the accumulation."""
    if total == 'recipe':
        total = (cfg.get('auto_scale_lr') or {}).get('base_batch_size')
        if not total:
            raise UserError(
                '--effective-batch without a number takes the recipe\'s '
                'batch from auto_scale_lr.base_batch_size, which this '
                'config does not set: give the number.')
    total = int(total)
    if (cfg.get('auto_scale_lr') or {}).get('enable'):
        raise UserError(
            '--effective-batch keeps the recipe\'s learning rate and '
            'accumulates gradients; --auto-scale-lr scales the learning '
            'rate to the batch there is instead. Use one of them.')
    optim = cfg.get('optim_wrapper')
    if not isinstance(optim, dict) or 'optimizer' not in optim:
        raise ConfigError(
            '--effective-batch needs one optim_wrapper with an optimizer '
            '(this config has several or none).')
    per_process = cfg.train_dataloader.batch_size
    accumulation = accumulation_for(total, processes, per_process)
    optim['accumulative_counts'] = accumulation
    cfg.effective_batch = total
    _replace_hook(
        cfg,
        dict(
            type='mmvan.EffectiveBatchHook',
            effective_batch=total,
            per_process=per_process,
            accumulation=accumulation))
    return accumulation


def set_ema(cfg, momentum):
    """Keep an exponential moving average of the weights
    (``momentum=None``: the default, 2e-4)."""
    momentum = DEFAULT_MOMENTUM if momentum is None else float(momentum)
    if not 0 < momentum < 0.5:
        hint = ''
        if 0.5 <= momentum < 1:
            hint = (f' (a decay of {momentum} in timm\'s convention is a '
                    f'momentum of {1 - momentum:.6g} here)')
        raise UserError(
            f'--ema {momentum}: the momentum is the weight of the current '
            f'weights in each update, between 0 and 0.5{hint}.')
    cfg.ema = momentum
    _replace_hook(cfg, dict(type='mmvan.EMAHook', momentum=momentum))


def set_preemption(cfg):
    """Stop at SIGTERM / SIGUSR1 with a resumable checkpoint, and resume
    epoch-based runs within the epoch. Starts recording the signals now, so
    that one received while the run is set up is not lost."""
    train_cfg = cfg.get('train_cfg')
    if isinstance(train_cfg, dict):
        kind = train_cfg.get('type')
        if kind is None and train_cfg.get('by_epoch', False):
            train_cfg.pop('by_epoch')
            train_cfg['type'] = 'mmvan.EpochBasedTrainLoop'
        elif kind == 'EpochBasedTrainLoop':
            train_cfg['type'] = 'mmvan.EpochBasedTrainLoop'
    _replace_hook(cfg, dict(type='mmvan.PreemptionHook'))
    stop_signals.listen()


def configure_training(cfg, launcher='none', effective_batch=None, ema=None):
    """Apply ``effective_batch`` (a number or 'recipe'), ``ema`` (True or a
    momentum) and pre-emption safety to a training config, from the
    arguments or else the config's keys of those names."""
    if effective_batch is None:
        effective_batch = cfg.get('effective_batch')
    if effective_batch is not None:
        set_effective_batch(cfg, effective_batch, world_size(launcher))
    if ema is None:
        ema = cfg.get('ema')
    if ema is not None and ema is not False:
        set_ema(cfg, None if ema is True else ema)
    if cfg.get('preemption', True):
        set_preemption(cfg)
    return cfg


def configure_evaluation(cfg, weights='ema'):
    """Evaluate a checkpoint's EMA weights (``'ema'``, when it has them) or
    its weights as trained (``'raw'``), and say which: the checkpoint's
    weights are chosen as they load, so a training config's EMA hook has
    nothing left to do and is left out."""
    cfg.custom_hooks = [
        h for h in cfg.get('custom_hooks', [])
        if h.get('type') not in ('EMAHook', 'mmvan.EMAHook')
    ] + [dict(type='mmvan.CheckpointWeightsHook', weights=weights)]
    return cfg
