# Copyright (c) mmvan contributors. All rights reserved.
"""The model zoo's released weights evaluated against their metafile results.

Every zoo model whose data set is present is tested with its config
(weights fetched from the zoo and folded, as ``tools/test.py`` does, or on
an exported backend) and its primary metric is compared with the
metafile's; models whose data is absent, or whose weights cannot be
fetched, are listed as skipped with the reason.
"""
import contextlib
import json
import os
import os.path as osp
import tempfile

from mmvan.backends import get_runtime
from mmvan.engine.hooks import BackendHook, DeployHook
from mmvan.engine.runner import Runner
from mmvan.utils.config import load_config
from mmvan.utils.data_check import check_data
from mmvan.utils.errors import CheckpointError, UserError
from mmvan.zoo import ManualDownloadError, list_models, load_index

__all__ = [
    'TASKS', 'DATASETS', 'evaluate', 'validate', 'markdown', 'table',
    'validate_zoo'
]

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


def _root_for(info, task, roots):
    option = DATASETS.get(info.dataset, task[3])
    if option is None:
        return None, None
    return option, roots.get(option)


def evaluate(info,
             root,
             task,
             out_dir,
             batch_size=None,
             num_workers=None,
             backend='pytorch',
             precision='fp32'):
    """Test one zoo model; returns the measured metric in the metafile's
    unit and, for a reduced ``precision``, the top-1 agreement with fp32
    (else None)."""
    cfg = load_config(info.config)
    cfg.work_dir = osp.join(out_dir, info.name)
    cfg.load_from = f'mmvan://{info.name}'
    cfg.log_level = 'WARNING'
    cfg.launcher = 'none'
    loader = cfg.test_dataloader
    loader.dataset.data_root = root
    if batch_size:
        loader.batch_size = batch_size
    if num_workers is not None:
        loader.num_workers = num_workers
        if num_workers == 0:
            loader.persistent_workers = False
    cfg.model.setdefault('backbone', {}).pop('init_cfg', None)
    if cfg.get('default_scope') == 'mmseg':
        cfg.model.pretrained = None
    runner = Runner.from_cfg(cfg)
    if backend != 'pytorch' or precision != 'fp32':
        runner.register_hook(
            BackendHook(backend, precision, cfg.load_from), priority='LOWEST')
    else:
        runner.register_hook(DeployHook(), priority='LOWEST')
    metrics = runner.test()
    return (float(metrics[task[1]]) * task[2],
            metrics.get('agreement/top1_vs_fp32'))


def validate(data_root=None,
             ade20k_root=None,
             coco_root=None,
             models=None,
             tolerance=0.2,
             out_dir='work_dirs/validate_zoo',
             metafile=None,
             batch_size=None,
             num_workers=None,
             backend='pytorch',
             precision='fp32'):
    """Test every zoo model matching the wildcard ``models`` whose data set
    root is given (``data_root`` for ImageNet-1k, ``ade20k_root``,
    ``coco_root``) and compare its primary metric with the metafile's.

    Returns:
        list[dict]: One row per model: model, dataset, metric, expected,
        measured, diff, status (pass, fail, error or skipped) and reason.
    """
    roots = dict(
        data_root=data_root, ade20k_root=ade20k_root, coco_root=coco_root)
    index = metafile
    names = list_models(models, index=index)
    if not names:
        raise UserError(f'No zoo model matches {models!r}.')
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
        option, root = _root_for(info, task, roots)
        if option is None:
            row['reason'] = f'{info.dataset}: not supported by validate_zoo'
            continue
        if not root:
            row['reason'] = (f'{info.dataset}: no --{option.replace("_", "-")}'
                             f' given')
            continue
        cfg = load_config(info.config)
        cfg.test_dataloader.dataset.data_root = root
        try:
            check_data(cfg, ['test_dataloader'])
        except UserError as e:
            row['reason'] = str(e).splitlines()[1].strip()
            continue
        print(f'{name}: testing on {info.dataset} ...', flush=True)
        try:
            measured, agreement = evaluate(info, root, task, out_dir,
                                           batch_size, num_workers, backend,
                                           precision)
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
        row['status'] = ('pass' if abs(row['diff']) <= tolerance +
                         1e-9 else 'fail')
    return rows


def markdown(rows, tolerance):
    """The table of :func:`validate`'s rows in Markdown."""
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


@contextlib.contextmanager
def _model_index(metafile):
    """``mmvan://<name>`` resolves through ``metafile`` (when given) while
    the validation runs; the caller's setting comes back afterwards."""
    if not metafile:
        yield
        return
    before = os.environ.get('MMVAN_MODEL_INDEX')
    os.environ['MMVAN_MODEL_INDEX'] = osp.abspath(metafile)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop('MMVAN_MODEL_INDEX', None)
        else:
            os.environ['MMVAN_MODEL_INDEX'] = before


def validate_zoo(backend='pytorch',
                 precision='fp32',
                 tolerance=0.2,
                 out_dir='work_dirs/validate_zoo',
                 metafile=None,
                 **kwargs):
    """:func:`validate` as ``tools/analysis_tools/validate_zoo.py`` runs it:
    the table printed and written to ``<out_dir>/validate_zoo.json`` and
    ``.md``; a missing backend is an error before any work. Returns the
    exit status: 1 when a model fails, else 0."""
    if backend not in ('pytorch', 'auto'):
        get_runtime(backend).import_module()  # one line if missing
    with _model_index(metafile):
        rows = validate(
            tolerance=tolerance,
            out_dir=out_dir,
            metafile=metafile,
            backend=backend,
            precision=precision,
            **kwargs)
    _write(
        osp.join(out_dir, 'validate_zoo.json'),
        json.dumps(
            dict(
                tolerance=tolerance,
                backend=backend,
                precision=precision,
                models=rows),
            indent=2))
    _write(osp.join(out_dir, 'validate_zoo.md'), markdown(rows, tolerance))
    print(table(rows, tolerance))
    print(f'Written to {osp.join(out_dir, "validate_zoo.json")} and '
          f'.md')
    return 1 if any(r['status'] in ('fail', 'error') for r in rows) else 0
