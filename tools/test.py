# Copyright (c) mmvan contributors. All rights reserved.
"""Evaluate a checkpoint (classification, detection or segmentation).

    python tools/test.py configs/van/van-b2_8xb128_in1k.py van-b2.pth
    python tools/test.py configs/van/van-b2_8xb128_in1k.py \
        mmvan://van-b2_3rdparty_in1k

The checkpoint may be a path, an URL or a zoo name, in any format mmvan
converts; every tensor of the model must load.

``--backend onnxruntime|openvino`` evaluates the exported model (a
classifier whole, a detector's or segmentor's backbone) with the same data
and metrics; it is checked against PyTorch on real images first. A reduced
``--precision`` (bf16, int8) also runs fp32 and reports the top-1
agreement with it.
"""
import argparse
import os
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
# mmengine imports pkg_resources, which warns on every start.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmvan.engine.scale import configure_evaluation  # noqa: E402
from mmvan import cli  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument(
        'checkpoint',
        help='checkpoint: a file, an http(s):// URL or mmvan://<zoo name>')
    parser.add_argument('--work-dir', help='the dir to save the results')
    parser.add_argument(
        '--out', help='dump the predictions to a pickle (or json) file')
    parser.add_argument(
        '--out-item',
        choices=['metrics', 'pred'],
        default='pred',
        help='what --out stores: the predictions or the metrics')
    parser.add_argument(
        '--tta', action='store_true', help='test time augmentation')
    parser.add_argument(
        '--no-deploy',
        action='store_true',
        help='evaluate the model as trained, without folding BatchNorms and '
        'layer scales (the folded model computes the same outputs)')
    parser.add_argument(
        '--backend',
        choices=['pytorch', 'auto', 'onnxruntime', 'openvino'],
        default='pytorch',
        help='run the model on this engine (default: the folded PyTorch '
        'model); auto: the fastest exact engine installed')
    parser.add_argument(
        '--precision',
        choices=['fp32', 'bf16', 'int8'],
        default='fp32',
        help='bf16: openvino or pytorch; int8: onnxruntime, calibrated on '
        'the first 32 validation images. Reports the agreement with fp32')
    parser.add_argument(
        '--weights',
        choices=['ema', 'raw'],
        default='ema',
        help='of a checkpoint saved with an EMA (train.py --ema): its EMA '
        'weights (default) or its weights as trained')
    parser.add_argument(
        '--verbose',
        action='store_true',
        help="mmengine's full console output (the log file always has it)")
    cli.add_launcher_args(parser)
    return cli.parse_args(parser, argv)


def merge_args(cfg, args):
    cfg.launcher = args.launcher
    cli.set_work_dir(cfg, args.work_dir, args.config)
    cfg.load_from = args.checkpoint
    configure_evaluation(cfg, args.weights)
    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise cli.UserError(
                f'--tta: {args.config} defines no tta_model / tta_pipeline.')
        cfg.model = dict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    engine = args.backend != 'pytorch' or args.precision != 'fp32'
    if engine and (args.no_deploy or args.tta):
        raise cli.UserError(
            f'--backend {args.backend} --precision {args.precision} runs the '
            f'exported folded model: it cannot be combined with '
            f'{"--no-deploy" if args.no_deploy else "--tta"}.')
    if engine and args.weights == 'raw':
        raise cli.UserError(
            '--weights raw runs in PyTorch: the exported engines are cached '
            'per checkpoint file. Write the weights as trained to their own '
            'file first (tools/model_converters/van2mmvan.py --weights raw).')
    if args.out:
        if not args.out.endswith(('.pkl', '.pickle', '.json')):
            raise cli.UserError('--out must end with .pkl, .pickle or .json.')
    cli.apply_device_fallbacks(cfg, args.launcher)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    if args.verbose:
        from mmvan.utils.quiet import VERBOSE_ENV
        os.environ[VERBOSE_ENV] = '1'
    if args.backend not in ('pytorch', 'auto'):
        # A missing engine: one line naming it and the pip command.
        from mmvan.backends import get_engine
        get_engine(args.backend).import_module()
    cfg = cli.load_config(args.config, args.cfg_options)
    cfg = merge_args(cfg, args)
    # A path, an URL or mmvan://<name>: fetched (once) and read before
    # anything is built or written, so a wrong name or an unreadable file
    # fails at once.
    from mmvan.zoo import load_source_weights
    load_source_weights(args.checkpoint)
    cli.check_data(cfg, ['test_dataloader'])
    cli.set_image_policy(cfg, train=False)

    from mmvan.engine.runner import Runner
    runner = Runner.from_cfg(cfg)
    if args.backend != 'pytorch' or args.precision != 'fp32':
        from mmvan.backends.hook import BackendHook
        runner.register_hook(
            BackendHook(args.backend, args.precision, args.checkpoint),
            priority='LOWEST')
    elif not args.no_deploy and not args.tta:
        from mmvan.apis.deploy import DeployHook
        runner.register_hook(DeployHook(), priority='LOWEST')
    if args.out and args.out_item == 'pred':
        from mmengine.evaluator import DumpResults
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    metrics = runner.test()
    if args.out and args.out_item == 'metrics':
        import mmengine
        mmengine.dump(metrics, args.out)
    return metrics


if __name__ == '__main__':
    cli.run_cli(main)
