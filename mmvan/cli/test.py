# Copyright (c) mmvan contributors. All rights reserved.
"""What ``tools/test.py`` runs: its options merged into the config, the
checkpoint read before anything is built, and the run made with the hook
that folds the model or puts it on an exported backend."""
import mmengine
from mmengine.evaluator import DumpResults
from mmengine.logging import print_log

from mmvan.backends import get_runtime
from mmvan.cli import (apply_device_fallbacks, check_data, load_config,
                       set_image_policy, set_work_dir)
from mmvan.cli.train import set_verbose
from mmvan.engine.hooks import BackendHook, DeployHook
from mmvan.engine.runner import Runner
from mmvan.engine.scale import configure_evaluation
from mmvan.utils.atomic import atomic_backend_args
from mmvan.utils.errors import UserError
from mmvan.zoo import load_source_weights

__all__ = ['merge_args', 'test']


def merge_args(cfg, args):
    """tools/test.py's options into ``cfg``; the combinations that cannot
    run are refused."""
    cfg.launcher = args.launcher
    set_work_dir(cfg, args.work_dir, args.config)
    cfg.load_from = args.checkpoint
    configure_evaluation(cfg, args.weights)
    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise UserError(
                f'--tta: {args.config} defines no tta_model / tta_pipeline.')
        cfg.model = dict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    exported = args.backend != 'pytorch' or args.precision != 'fp32'
    if exported and (args.no_deploy or args.tta):
        raise UserError(
            f'--backend {args.backend} --precision {args.precision} runs the '
            f'exported folded model: it cannot be combined with '
            f'{"--no-deploy" if args.no_deploy else "--tta"}.')
    if exported and args.weights == 'raw':
        raise UserError(
            '--weights raw runs in PyTorch: the exported models are cached '
            'per checkpoint file. Write the weights as trained to their own '
            'file first (tools/model_converters/van2mmvan.py --weights raw).')
    if args.out:
        if not args.out.endswith(('.pkl', '.pickle', '.json')):
            raise UserError('--out must end with .pkl, .pickle or .json.')
    apply_device_fallbacks(cfg, args.launcher)
    return cfg


def test(args):
    """Evaluate as tools/test.py does with its parsed ``args``; returns the
    metrics."""
    set_verbose(args.verbose)
    if args.backend not in ('pytorch', 'auto'):
        # A missing runtime: one line naming it and the pip command.
        get_runtime(args.backend).import_module()
    cfg = load_config(args.config, args.cfg_options)
    cfg = merge_args(cfg, args)
    # A path, an URL or mmvan://<name>: fetched (once) and read before
    # anything is built or written, so a wrong name or an unreadable file
    # fails at once.
    load_source_weights(args.checkpoint)
    check_data(cfg, ['test_dataloader'])
    set_image_policy(cfg, train=False)

    runner = Runner.from_cfg(cfg)
    if args.backend != 'pytorch' or args.precision != 'fp32':
        runner.register_hook(
            BackendHook(args.backend, args.precision, args.checkpoint),
            priority='LOWEST')
    elif not args.no_deploy and not args.tta:
        runner.register_hook(DeployHook(), priority='LOWEST')
    if args.out and args.out_item == 'pred':
        runner.test_evaluator.metrics.append(
            AtomicDumpResults(out_file_path=args.out))
    metrics = runner.test()
    if args.out and args.out_item == 'metrics':
        mmengine.dump(metrics, args.out, backend_args=_out_backend(args.out))
    return metrics


def _out_backend(path):
    """A local ``--out`` file is written whole or not at all, like the
    checkpoints (an earlier file stays intact when the disk is full); a
    remote one goes through mmengine's backends as before."""
    return atomic_backend_args() if '://' not in str(path) else None


class AtomicDumpResults(DumpResults):
    """mmengine's ``DumpResults`` (``--out-item pred``), written through
    :func:`_out_backend`."""

    def compute_metrics(self, results):
        mmengine.dump(
            results,
            self.out_file_path,
            backend_args=_out_backend(self.out_file_path))
        print_log(
            f'Results has been saved to {self.out_file_path}.',
            logger='current')
        return {}
