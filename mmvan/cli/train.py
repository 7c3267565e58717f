# Copyright (c) mmvan contributors. All rights reserved.
"""What ``tools/train.py`` runs: its options merged into the config, the
checks made before anything is built, the work dir's lock, the choice of
the checkpoint to resume, the hooks every run gets, and the clean-up of a
run that failed before it trained."""
import argparse
import os
import os.path as osp
import shutil
import sys

from mmengine.logging import MMLogger

from mmvan.cli import (apply_device_fallbacks, check_data, check_pretrained,
                       load_config, set_image_policy, set_work_dir)
from mmvan.engine import resume
from mmvan.engine.hooks import (DivergenceHook, EpochSeedHook,
                                UnreadableImageHook)
from mmvan.engine.runner import Runner
from mmvan.engine.scale import configure_training
from mmvan.engine.work_dir_lock import WorkDirLock, launch_rank
from mmvan.utils.errors import MMVanError, UserError
from mmvan.utils.quiet import VERBOSE_ENV

__all__ = [
    'positive_int_or_recipe', 'set_verbose', 'merge_args', 'merge_resume_args',
    'lock_work_dir', 'choose_resume', 'add_default_hooks',
    'keep_or_remove_outputs', 'train'
]


def positive_int_or_recipe(text):
    """``--effective-batch``'s argument type: a positive number of images
    or ``'recipe'``."""
    if text == 'recipe':
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f'expected a positive number of images, not {text!r}')
    return value


def set_verbose(verbose):
    """``--verbose``: mmengine's full console output in this process and
    the processes it starts."""
    if verbose:
        os.environ[VERBOSE_ENV] = '1'


def merge_args(cfg, args):
    """tools/train.py's options into ``cfg``."""
    set_work_dir(cfg, args.work_dir, args.config)
    cfg.launcher = args.launcher
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    merge_resume_args(cfg, args)
    if args.compile:
        cfg.compile = True
    # Channels-last training where it is measured faster (CPU); switch it
    # off with --cfg-options train_fast_path.layout=contiguous.
    if cfg.get('train_fast_path', 'unset') == 'unset':
        cfg.train_fast_path = dict(layout='auto')
    if args.auto_scale_lr:
        cfg.setdefault('auto_scale_lr', {})['enable'] = True
    configure_training(cfg, args.launcher, args.effective_batch, args.ema)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if not loader:
            continue
        if args.no_pin_memory:
            loader['pin_memory'] = False
        if args.no_persistent_workers or loader.get('num_workers', 0) == 0:
            loader['persistent_workers'] = False
    apply_device_fallbacks(cfg, args.launcher, args.amp)
    return cfg


def merge_resume_args(cfg, args):
    """``--resume [CKPT]`` and ``--load-from CKPT`` into the config."""
    if args.load_from is not None and args.resume is not None:
        raise UserError(
            '--load-from starts a new run from the weights of a checkpoint '
            'and --resume continues a run: give one of them.')
    if args.load_from is not None:
        cfg.resume = False
        cfg.load_from = args.load_from
    elif args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume


def lock_work_dir(work_dir):
    """The lock of ``work_dir`` for this run (see
    :mod:`mmvan.engine.work_dir_lock`), taken by the process of global rank
    0 only; None in the others."""
    if launch_rank() != 0:
        return None
    return WorkDirLock(work_dir).acquire()


def choose_resume(cfg):
    """``--resume`` without a path: the newest checkpoint of the work dir
    that can continue the run (not only the one ``last_checkpoint`` names);
    none is an error. ``--resume CKPT``: a checkpoint with an optimizer
    state. Without ``--resume``, refuse to overwrite an earlier run's
    checkpoints."""
    if cfg.get('resume') and cfg.get('load_from') is None:
        path, skipped = resume.find_resume_checkpoint(
            cfg.work_dir, resume.checkpoint_dir(cfg))
        for p, reason in skipped:
            print(f'--resume: skipped {p}: {reason}', file=sys.stderr)
        cfg.load_from = path
    elif cfg.get('resume'):
        resume.check_resume_checkpoint(cfg.load_from)
    else:
        resume.refuse_to_overwrite(cfg.work_dir, resume.checkpoint_dir(cfg))


def add_default_hooks(runner, image_policy):
    """Hooks every run gets unless its config has them: exact resume
    (EpochSeedHook), a stop at the first non-finite loss (DivergenceHook)
    and the count of skipped unreadable images (UnreadableImageHook)."""
    have = {type(h) for h in runner.hooks}
    if EpochSeedHook not in have:
        runner.register_hook(EpochSeedHook(), priority='VERY_HIGH')
    if DivergenceHook not in have:
        runner.register_hook(DivergenceHook(), priority='VERY_HIGH')
    if UnreadableImageHook not in have and image_policy['policy'] == 'skip':
        runner.register_hook(
            UnreadableImageHook(max_share=image_policy['max_share']),
            priority='VERY_HIGH')


def _log_file(runner):
    if runner is None:
        return None
    for handler in runner.logger.handlers:
        if hasattr(handler, 'baseFilename'):
            return handler.baseFilename
    return None


def keep_or_remove_outputs(runner, work_dir, before, error):
    """A run that failed before its first training iteration leaves nothing
    behind (its log would only repeat the error). Once it has trained, its
    log, config dump and scalars are kept, and the error names the log."""
    # The progress the training hooks recorded: asking the Runner for
    # ``iter`` would build its training loop, and with it a dataset that may
    # be what failed.
    hub = runner.message_hub if runner is not None else None
    trained = hub is not None and (hub.get_info('iter', 0) > 0
                                   or hub.get_info('epoch', 0) > 0)
    if trained:
        log = _log_file(runner)
        if log:
            if isinstance(error, MMVanError) and error.args:
                error.args = (f'{error.args[0]} The log of the run is '
                              f'{log}.', ) + error.args[1:]
            else:
                print(f'The log of the run is {log}.', file=sys.stderr)
        return
    _remove_new_outputs(work_dir, before)


def _remove_new_outputs(work_dir, before):
    if not osp.isdir(work_dir):
        return
    created = set(os.listdir(work_dir)) - (before or set())
    if any(name.endswith('.pth') for name in created):
        return
    # The log file is about to go: its handler is closed and taken off the
    # logger (a closed handler left on it fails the next record written).
    logger = MMLogger.get_current_instance()
    for handler in list(logger.handlers):
        if hasattr(handler, 'baseFilename'):
            logger.removeHandler(handler)
            try:
                handler.close()
            except OSError:  # e.g. a full disk refusing the last flush
                pass
    if before is None:
        shutil.rmtree(work_dir, ignore_errors=True)
        return
    for name in created:
        path = osp.join(work_dir, name)
        if osp.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif osp.exists(path):
            os.remove(path)


def train(args):
    """Train as tools/train.py does with its parsed ``args``: the config
    loaded and checked, the work dir locked, the run made and trained; a
    run that fails before it trains leaves nothing behind."""
    set_verbose(args.verbose)
    cfg = load_config(args.config, args.cfg_options)
    cfg = merge_args(cfg, args)
    loaders = ['train_dataloader']
    if cfg.get('val_cfg') is not None:
        loaders.append('val_dataloader')
    check_data(cfg, loaders)
    if not cfg.get('resume'):
        check_pretrained(cfg)
    image_policy = set_image_policy(cfg, train=True)

    existed = osp.isdir(cfg.work_dir)
    lock = lock_work_dir(cfg.work_dir)
    before = set(os.listdir(cfg.work_dir)) if existed else None
    runner = None
    try:
        choose_resume(cfg)
        runner = Runner.from_cfg(cfg)
        add_default_hooks(runner, image_policy)
        runner.train()
    except BaseException as e:
        keep_or_remove_outputs(runner, cfg.work_dir, before, e)
        raise
    finally:
        if lock is not None:
            lock.release()
