# Copyright (c) mmvan contributors. All rights reserved.
"""Evaluate the model zoo's released weights against their metafile results.

    python tools/analysis_tools/validate_zoo.py --data-root data/imagenet
    python tools/analysis_tools/validate_zoo.py --data-root data/imagenet \\
        --models 'van-b[0-3]_3rdparty*' --tolerance 0.2

Every zoo model matching ``--models`` whose data set is present is tested
with its config (weights fetched from the zoo and folded, as
``tools/test.py`` does) and its primary metric is compared with the
metafile's. Models whose data is absent, or whose weights cannot be fetched,
are listed as skipped with the reason. The table is printed and written to
``<out-dir>/validate_zoo.json`` and ``.md``; the logs of each model go to
``<out-dir>/<name>/``. The exit status is 1 when a model fails.

``--backend onnxruntime|openvino [--precision bf16|int8]`` tests the
exported models instead (as ``tools/test.py --backend`` does); a reduced
precision also reports its top-1 agreement with fp32.
"""
import argparse
import json
import os
import os.path as osp
import sys
import tempfile
import warnings

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmvan import cli  # noqa: E402

# Zoo task -> (metafile metric, runner metric, scale to the metafile's
# unit, data-root option).
TASKS = {
    'Image Classification':
    ('Top 1 Accuracy', 'accuracy/top1', 1.0, 'data_root'),
    'Semantic Segmentation': ('mIoU', 'mIoU', 1.0, 'ade20k_root'),
    'Object Detection': ('box AP', 'coco/bbox_mAP', 100.0, 'coco_root'),
    'Instance Segmentation': ('mask AP', 'coco/segm_mAP', 100.0, 'coco_root'),
}
DATASETS = {
    'ImageNet-1k': 'data_root',
    'ADE20K': 'ade20k_root',
    'COCO': 'coco_root',
    # No option yet: listed as skipped, never tested on ImageNet's root.
    'CUB-200-2011': None,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        '--data-root', help='ImageNet-1k (train/ val/ meta/ as in mmpretrain)')
    parser.add_argument('--ade20k-root', help='ADEChallengeData2016')
    parser.add_argument('--coco-root', help='COCO 2017')
    parser.add_argument(
        '--models',
        help='wildcard pattern of zoo names (default: every model)')
    parser.add_argument(
        '--tolerance',
        type=float,
        default=0.2,
        help='largest |measured - expected| that passes, in the metric\'s '
        'unit (points of top-1 / mIoU / AP); default 0.2')
    parser.add_argument(
        '--out-dir',
        default='work_dirs/validate_zoo',
        help='where the table and the logs go')
    parser.add_argument(
        '--metafile',
        help='another model index or metafile (default: model-index.yml)')
    parser.add_argument('--batch-size', type=int, help='test batch size')
    parser.add_argument(
        '--num-workers', type=int, help='test data loader workers')
    parser.add_argument(
        '--backend',
        choices=['pytorch', 'auto', 'onnxruntime', 'openvino'],
        default='pytorch',
        help='engine that runs the models (default: folded PyTorch)')
    parser.add_argument(
        '--precision',
        choices=['fp32', 'bf16', 'int8'],
        default='fp32',
        help='bf16: openvino or pytorch; int8: onnxruntime')
    return parser.parse_args(argv)


def _split(info):
    """The config's test split and metric of a zoo entry, or a reason to
    skip it."""
    task = TASKS.get(info.task)
    if task is None:
        return None, f'no validation for task {info.task!r}'
    if task[0] not in info.metrics:
        return None, f'the metafile gives no {task[0]}'
    if not info.config or not osp.isfile(info.config):
        return None, f'config {info.config} not found'
    return task, None


def _root_for(info, task, args):
    option = DATASETS.get(info.dataset, task[3])
    if option is None:
        return None, None
    return option, getattr(args, option)


def evaluate(info, root, task, args):
    """Test one zoo model; returns the measured metric in the metafile's
    unit and, for a reduced ``--precision``, the top-1 agreement with fp32
    (else None)."""
    from mmvan.engine.hooks import DeployHook
    from mmvan.engine.runner import Runner
    cfg = cli.load_config(info.config)
    cfg.work_dir = osp.join(args.out_dir, info.name)
    cfg.load_from = f'mmvan://{info.name}'
    cfg.log_level = 'WARNING'
    cfg.launcher = 'none'
    loader = cfg.test_dataloader
    loader.dataset.data_root = root
    if args.batch_size:
        loader.batch_size = args.batch_size
    if args.num_workers is not None:
        loader.num_workers = args.num_workers
        if args.num_workers == 0:
            loader.persistent_workers = False
    cfg.model.setdefault('backbone', {}).pop('init_cfg', None)
    if cfg.get('default_scope') == 'mmseg':
        cfg.model.pretrained = None
    cli.apply_device_fallbacks(cfg)
    runner = Runner.from_cfg(cfg)
    if args.backend != 'pytorch' or args.precision != 'fp32':
        from mmvan.engine.hooks import BackendHook
        runner.register_hook(
            BackendHook(args.backend, args.precision, cfg.load_from),
            priority='LOWEST')
    else:
        runner.register_hook(DeployHook(), priority='LOWEST')
    metrics = runner.test()
    return (float(metrics[task[1]]) * task[2],
            metrics.get('agreement/top1_vs_fp32'))


def validate(args):
    from mmvan.utils.checkpoint import CheckpointError
    from mmvan.zoo import load_index
    from mmvan.zoo.index import list_models
    from mmvan.zoo import ManualDownloadError
    index = args.metafile
    names = list_models(args.models, index=index)
    if not names:
        raise cli.UserError(f'No zoo model matches {args.models!r}.')
    by_name = {m.name: m for m in load_index(index)}
    rows = []
    for name in names:
        info = by_name[name]
        row = dict(
            model=name,
            dataset=info.dataset,
            metric=None,
            expected=None,
            measured=None,
            diff=None,
            status='skipped',
            reason='')
        rows.append(row)
        task, reason = _split(info)
        if task is None:
            row['reason'] = reason
            continue
        row['metric'] = task[0]
        row['expected'] = float(info.metrics[task[0]])
        option, root = _root_for(info, task, args)
        if option is None:
            row['reason'] = f'{info.dataset}: not supported by validate_zoo'
            continue
        if not root:
            row['reason'] = (f'{info.dataset}: no --{option.replace("_", "-")}'
                             f' given')
            continue
        cfg = cli.load_config(info.config)
        cfg.test_dataloader.dataset.data_root = root
        try:
            cli.check_data(cfg, ['test_dataloader'])
        except cli.UserError as e:
            row['reason'] = str(e).splitlines()[1].strip()
            continue
        print(f'{name}: testing on {info.dataset} ...', flush=True)
        try:
            measured, agreement = evaluate(info, root, task, args)
        except ManualDownloadError as e:
            # Not a failure of the weights: they are not here.
            row['reason'] = str(e)
            continue
        except CheckpointError as e:
            row['status'] = 'error'
            row['reason'] = str(e)
            continue
        row['measured'] = round(measured, 3)
        if agreement is not None:
            row['top1_vs_fp32'] = round(agreement, 3)
        row['diff'] = round(measured - row['expected'], 3)
        row['status'] = ('pass' if abs(row['diff']) <= args.tolerance +
                         1e-9 else 'fail')
    return rows


def markdown(rows, tolerance):
    lines = [
        f'Tolerance: |measured - expected| <= {tolerance}', '',
        '| model | dataset | metric | expected | measured | diff | result |',
        '| --- | --- | --- | --- | --- | --- | --- |'
    ]

    def fmt(v):
        return '' if v is None else f'{v:.2f}'

    for r in rows:
        result = r['status'] + (f' ({r["reason"]})' if r['reason'] else '')
        if r.get('top1_vs_fp32') is not None:
            result += f' (top-1 agreement with fp32 {r["top1_vs_fp32"]} %)'
        lines.append(f'| {r["model"]} | {r["dataset"] or ""} | '
                     f'{r["metric"] or ""} | {fmt(r["expected"])} | '
                     f'{fmt(r["measured"])} | {fmt(r["diff"])} | {result} |')
    return '\n'.join(lines) + '\n'


def table(rows, tolerance):
    """The short box printed at the end."""
    width = max(len(r['model']) for r in rows)
    head = (f'{"model":<{width}}  {"expected":>8}  {"measured":>8}  '
            f'{"diff":>6}  result')
    out = [head, '-' * len(head)]

    def fmt(v, w):
        return f'{v:>{w}.2f}' if v is not None else ' ' * (w - 1) + '-'

    for r in rows:
        result = r['status']
        if r['reason']:
            result += f': {r["reason"]}'
        if r.get('top1_vs_fp32') is not None:
            result += f' (top-1 vs fp32 {r["top1_vs_fp32"]} %)'
        out.append(f'{r["model"]:<{width}}  {fmt(r["expected"], 8)}  '
                   f'{fmt(r["measured"], 8)}  {fmt(r["diff"], 6)}  {result}')
    counts = {
        s: sum(r['status'] == s for r in rows)
        for s in ('pass', 'fail', 'error', 'skipped')
    }
    out.append('-' * len(head))
    out.append(f'tolerance {tolerance}: ' +
               ', '.join(f'{v} {k}' for k, v in counts.items()))
    return '\n'.join(out)


def _write(path, text):
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.validate_zoo.')
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def main(argv=None):
    args = parse_args(argv)
    if args.backend not in ('pytorch', 'auto'):
        from mmvan.backends import get_runtime
        get_runtime(args.backend).import_module()  # one line if missing
    if args.metafile:
        # mmvan://<name> resolves through the same index.
        os.environ['MMVAN_MODEL_INDEX'] = osp.abspath(args.metafile)
    rows = validate(args)
    _write(
        osp.join(args.out_dir, 'validate_zoo.json'),
        json.dumps(
            dict(
                tolerance=args.tolerance,
                backend=args.backend,
                precision=args.precision,
                models=rows),
            indent=2))
    _write(
        osp.join(args.out_dir, 'validate_zoo.md'),
        markdown(rows, args.tolerance))
    print(table(rows, args.tolerance))
    print(f'Written to {osp.join(args.out_dir, "validate_zoo.json")} and '
          f'.md')
    return 1 if any(r['status'] in ('fail', 'error') for r in rows) else 0


if __name__ == '__main__':
    sys.exit(cli.run_cli(main) or 0)
