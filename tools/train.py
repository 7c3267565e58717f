# Copyright (c) mmvan contributors. All rights reserved.
"""Train a model from a config (classification, detection or segmentation).

    python tools/train.py configs/van/van-b2_8xb128_in1k.py
    bash tools/dist_train.sh configs/van/van-b2_8xb128_in1k.py 8
"""
import argparse
import os
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
# mmengine imports pkg_resources, which warns on every start.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmvan.utils import cli  # noqa: E402


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
        '--amp',
        action='store_true',
        help='mixed precision training (fp16 on GPU, bf16 on CPU)')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate to the actual total batch size')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='do not pin memory in the data loaders')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='do not keep data loader workers between epochs')
    cli.add_launcher_args(
        parser,
        cfg_options_help='override config settings, '
        'e.g. model.backbone.arch=b1')
    return cli.parse_args(parser, argv)


def merge_args(cfg, args):
    cli.set_work_dir(cfg, args.work_dir, args.config)
    cfg.launcher = args.launcher
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.auto_scale_lr:
        cfg.setdefault('auto_scale_lr', {})['enable'] = True
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
    cfg = cli.load_config(args.config, args.cfg_options)
    cfg = merge_args(cfg, args)
    loaders = ['train_dataloader']
    if cfg.get('val_cfg') is not None:
        loaders.append('val_dataloader')
    cli.check_data(cfg, loaders)
    if not cfg.get('resume'):
        cli.check_pretrained(cfg)
    if cfg.resume and cfg.load_from and not osp.isfile(cfg.load_from):
        raise cli.UserError(f'--resume: checkpoint {cfg.load_from} does not '
                            f'exist.')

    from mmvan.engine.runner import Runner
    before = set(os.listdir(cfg.work_dir)) if osp.isdir(cfg.work_dir) \
        else None
    try:
        runner = Runner.from_cfg(cfg)
        runner.train()
    except Exception:
        # A run that fails before saving a checkpoint leaves nothing behind.
        _remove_new_outputs(cfg.work_dir, before)
        raise


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
            handler.close()
    if before is None:
        shutil.rmtree(work_dir, ignore_errors=True)
        return
    for name in created:
        path = osp.join(work_dir, name)
        if osp.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.remove(path)


if __name__ == '__main__':
    cli.run_cli(main)
