# Copyright (c) mmvan contributors. All rights reserved.
"""Train a model from a config (classification, detection or segmentation).

    python tools/train.py configs/van/van-b2_8xb128_in1k.py
    bash tools/dist_train.sh configs/van/van-b2_8xb128_in1k.py 8

The console shows the config, the model size, the data, the work dir, one
line per epoch and the metrics; the log file in the work dir has mmengine's
full output, which ``--verbose`` (or ``log_level='DEBUG'``) also prints.
"""
import argparse
import os
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
# mmengine imports pkg_resources, which warns on every start.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmvan.engine import resume  # noqa: E402
from mmvan.engine.scale import configure_training  # noqa: E402
from mmvan.engine.work_dir_lock import WorkDirLock, launch_rank  # noqa: E402
from mmvan import cli  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or from the latest '
        'checkpoint in the work dir when no path is given')
    parser.add_argument(
        '--load-from',
        metavar='CKPT',
        help='start a new run from the weights of this checkpoint (any '
        'format mmvan loads; the optimizer and schedule start afresh)')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision training (fp16 on GPU, bf16 on CPU)')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='torch.compile the train step (opt-in; the first iterations '
        'compile)')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate to the actual total batch size')
    parser.add_argument(
        '--effective-batch',
        nargs='?',
        const='recipe',
        type=_positive_int_or_recipe,
        metavar='N',
        help="images per optimizer step on any number of processes, by "
        "gradient accumulation at the recipe's learning rate (without N: "
        "the recipe's batch, auto_scale_lr.base_batch_size)")
    parser.add_argument(
        '--ema',
        nargs='?',
        const=True,
        type=float,
        metavar='MOMENTUM',
        help='keep an exponential moving average of the weights, which '
        'validation evaluates and checkpoints hold beside the weights as '
        'trained (default momentum 2e-4, timm\'s decay 0.9998)')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='do not pin memory in the data loaders')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='do not keep data loader workers between epochs')
    parser.add_argument(
        '--verbose',
        action='store_true',
        help="mmengine's full console output (environment, config, hook "
        'table, every logged iteration); the log file always has it')
    cli.add_launcher_args(
        parser,
        cfg_options_help='override config settings, '
        'e.g. model.backbone.arch=b1')
    return cli.parse_args(parser, argv)


def _positive_int_or_recipe(text):
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


def merge_args(cfg, args):
    cli.set_work_dir(cfg, args.work_dir, args.config)
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
    cli.apply_device_fallbacks(cfg, args.launcher, args.amp)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    if args.verbose:
        from mmvan.utils.quiet import VERBOSE_ENV
        os.environ[VERBOSE_ENV] = '1'
    cfg = cli.load_config(args.config, args.cfg_options)
    cfg = merge_args(cfg, args)
    loaders = ['train_dataloader']
    if cfg.get('val_cfg') is not None:
        loaders.append('val_dataloader')
    cli.check_data(cfg, loaders)
    if not cfg.get('resume'):
        cli.check_pretrained(cfg)
    image_policy = cli.set_image_policy(cfg, train=True)

    from mmvan.engine.runner import Runner
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


def merge_resume_args(cfg, args):
    """``--resume [CKPT]`` and ``--load-from CKPT`` into the config."""
    if args.load_from is not None and args.resume is not None:
        raise cli.UserError(
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
    from mmvan.engine.hooks import (DivergenceHook, EpochSeedHook,
                                    UnreadableImageHook)
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
    trained = runner is not None and (runner.iter > 0 or runner.epoch > 0)
    if trained:
        log = _log_file(runner)
        if log:
            from mmvan.utils.errors import MMVanError
            if isinstance(error, MMVanError) and error.args:
                error.args = (f'{error.args[0]} The log of the run is '
                              f'{log}.', ) + error.args[1:]
            else:
                print(f'The log of the run is {log}.', file=sys.stderr)
        return
    _remove_new_outputs(work_dir, before)


def _remove_new_outputs(work_dir, before):
    import shutil

    from mmengine.logging import MMLogger
    if not osp.isdir(work_dir):
        return
    created = set(os.listdir(work_dir)) - (before or set())
    if any(name.endswith('.pth') for name in created):
        return
    for handler in list(MMLogger.get_current_instance().handlers):
        if hasattr(handler, 'baseFilename'):
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


if __name__ == '__main__':
    cli.run_cli(main)
