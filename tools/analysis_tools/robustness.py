# Copyright (c) mmvan contributors. All rights reserved.
"""Robustness of an ImageNet-1k classifier: ImageNet-C, -A, -R, -Sketch
and the cue-conflict shape bias.

    python tools/analysis_tools/robustness.py \
        configs/van/van-lska-b0_8xb128_in1k.py CKPT \
        --benchmark imagenet-c --data-root data/imagenet-c [--clean-acc 75.4]

- ``imagenet-c``: top-1 error per corruption and severity, the corruption
  error normalised by AlexNet's published errors (CE), mCE over the 15
  standard corruptions and over all 19 (as the LSKA paper reports it), and
  the relative CE / mCE when ``--clean-acc`` (top-1 %) is given. Every
  ``<corruption>/<severity>`` folder present is evaluated.
- ``imagenet-a`` / ``imagenet-r``: top-1 on the 200-class subsets, the
  1000-way logits restricted to the subset's classes.
- ``imagenet-sketch``: top-1 over the 1000 classes.
- ``cue-conflict``: Geirhos et al.'s stimuli
  (``<root>/<shape>/<shape>N-<texture>M.png``), 16-category decisions and
  the shape bias.

Images are labelled by their WordNet-id folders (a partial copy is scored
correctly). The data sets are described in ``configs/_base_/datasets/``
(layout, download, test pipeline); the results are printed as a table and
written as JSON (``--out``).
"""
import argparse
import copy
import json
import os
import os.path as osp
import sys
import tempfile
import warnings

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
warnings.filterwarnings('ignore')

from mmvan import cli  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATASET_CONFIGS = {
    'imagenet-c': 'imagenet_c.py',
    'imagenet-a': 'imagenet_a.py',
    'imagenet-r': 'imagenet_r.py',
    'imagenet-sketch': 'imagenet_sketch.py',
}
DOWNLOAD = {
    'imagenet-c':
    'https://github.com/hendrycks/robustness',
    'imagenet-a':
    'https://github.com/hendrycks/natural-adv-examples',
    'imagenet-r':
    'https://github.com/hendrycks/imagenet-r',
    'imagenet-sketch':
    'https://github.com/HaohanWang/ImageNet-Sketch',
    'cue-conflict':
    'https://github.com/bethgelab/model-vs-human (release '
    'v0.1, cue-conflict.tar.gz)',
}


def parse_args(argv=None):
    from mmengine.config import DictAction

    from mmvan.analysis.robustness import BENCHMARKS
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='an ImageNet-1k classifier config')
    parser.add_argument('checkpoint', help='path, URL or mmvan:// name')
    parser.add_argument('--benchmark', required=True, choices=BENCHMARKS)
    parser.add_argument(
        '--data-root',
        help='the benchmark\'s folder (default: the dataset config\'s)')
    parser.add_argument(
        '--dataset-config',
        help='default: configs/_base_/datasets/<benchmark>.py (cue-conflict:'
        ' the model config\'s test pipeline)')
    parser.add_argument(
        '--clean-acc',
        type=float,
        help='ImageNet-C: the model\'s clean top-1 accuracy in %% (for the '
        'relative mCE)')
    parser.add_argument(
        '--corruptions', nargs='+', help='ImageNet-C: only these')
    parser.add_argument(
        '--severities', type=int, nargs='+', help='ImageNet-C: only these')
    parser.add_argument('--batch-size', type=int, default=None)
    parser.add_argument('--num-workers', type=int, default=None)
    parser.add_argument(
        '--out',
        help='JSON file (default: work_dirs/robustness/'
        '<config>_<benchmark>.json)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--no-deploy',
        action='store_true',
        help='run the model unfolded (as trained)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the model config')
    return parser.parse_args(argv)


def dataset_config(args):
    """``(dataset cfg template, loader settings, benchmark config)``."""
    from mmengine.config import Config
    if args.benchmark == 'cue-conflict' and not args.dataset_config:
        return None, {}, None
    path = args.dataset_config or osp.join(
        ROOT, 'configs', '_base_', 'datasets', DATASET_CONFIGS[args.benchmark])
    if not osp.isfile(path):
        raise cli.UserError(f'Dataset config {path} does not exist.')
    bench = Config.fromfile(path)
    loader = bench.test_dataloader
    return (copy.deepcopy(loader.dataset.to_dict()),
            dict(
                batch_size=loader.get('batch_size', 32),
                num_workers=loader.get('num_workers', 2)), bench)


def check_classifier(model):
    if getattr(model, 'task', None) != 'cls' or not hasattr(model, 'head'):
        raise cli.UserError('The robustness benchmarks need an ImageNet-1k '
                            'classifier config (default_scope mmpretrain '
                            'with a head).')
    num = getattr(model.head, 'num_classes', None)
    if num != 1000:
        raise cli.UserError(f'The benchmarks score 1000-way ImageNet '
                            f'predictions; this head has {num} classes.')


def build_splits(args, bench, data_root):
    """``[(key, folder, samples)]``; samples ``[(rel path, label)]``."""
    from mmvan.analysis import robustness as rb
    hint = (f'Expected the {args.benchmark} data under {data_root} '
            f'(download: {DOWNLOAD[args.benchmark]}; layout in '
            f'configs/_base_/datasets/ and docs/analysis.md).')
    if not osp.isdir(data_root):
        raise cli.UserError(f'{data_root}: no such folder. {hint}')
    try:
        if args.benchmark == 'imagenet-c':
            return _imagenet_c_splits(args, bench, data_root, hint)
        if args.benchmark == 'cue-conflict':
            samples = rb.cue_conflict_samples(data_root)
            if not samples:
                raise cli.UserError(f'{data_root}: no stimuli. {hint}')
            return [('cue-conflict', data_root, samples)]
        folder = rb.find_class_root(data_root)
        if folder is None:
            raise cli.UserError(
                f'{data_root}: no <wnid>/ class folders. {hint}')
        allowed = (
            rb.subset_wnids(args.benchmark)
            if args.benchmark in ('imagenet-a', 'imagenet-r') else None)
        samples = rb.wnid_samples(folder, allowed)
    except ValueError as e:
        raise cli.UserError(str(e)) from None
    if not samples:
        raise cli.UserError(f'{folder}: no images. {hint}')
    return [(args.benchmark, folder, samples)]


def _imagenet_c_splits(args, bench, data_root, hint):
    from mmvan.analysis import robustness as rb
    known = list(
        bench.get('corruptions',
                  rb.IMAGENET_C_CORRUPTIONS + rb.IMAGENET_C_EXTRA))
    wanted = args.corruptions or known
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise cli.UserError(f'--corruptions {" ".join(unknown)}: not '
                            f'ImageNet-C corruptions ({", ".join(known)}).')
    severities = args.severities or list(
        bench.get('severities', rb.SEVERITIES))
    splits = []
    for name in wanted:
        for s in severities:
            folder = osp.join(data_root, name, str(s))
            if osp.isdir(folder):
                samples = rb.wnid_samples(folder)
                if samples:
                    splits.append(((name, s), folder, samples))
    if not splits:
        raise cli.UserError(f'{data_root}: no <corruption>/<severity>/ '
                            f'folders with images. {hint}')
    return splits


def evaluate(model, splits, template, loader, benchmark, data_root, tmp):
    """``{key: (predictions, labels)}`` of every split. All splits are
    listed in one annotation file and run as one data set (full batches,
    one progress bar), then cut apart again."""
    from tqdm import tqdm

    from mmvan.analysis.robustness import predict, write_annotation
    rows = []
    for _, folder, samples in splits:
        prefix = osp.relpath(folder, data_root).replace(os.sep, '/')
        prefix = '' if prefix == '.' else prefix + '/'
        for rel, label, *_ in samples:
            rows.append((prefix + rel, label if isinstance(label, int) else 0))
    ds = copy.deepcopy(template)
    ds.update(
        data_root=data_root,
        ann_file=write_annotation(rows, osp.join(tmp, 'samples.txt')),
        data_prefix='',
        with_label=True)
    ds.pop('classes', None)
    ds.pop('metainfo', None)
    with tqdm(
            total=len(rows), desc=benchmark, unit='img', leave=False,
            disable=None) as bar:
        preds, labels = predict(
            model,
            ds,
            batch_size=loader['batch_size'],
            num_workers=loader['num_workers'],
            progress=bar.update,
            reduce=reducer(benchmark))
    results, start = {}, 0
    for key, _, samples in splits:
        end = start + len(samples)
        results[key] = (preds[start:end], labels[start:end])
        start = end
    return results


def reducer(benchmark):
    """What is kept of each batch's logits: the predicted ImageNet-1k class
    (restricted to the 200 classes of ImageNet-A / -R), or the cue-conflict
    category."""
    from mmvan.analysis import robustness as rb
    if benchmark == 'cue-conflict':
        return rb.category_predictions
    indices = (
        rb.subset_indices(benchmark) if benchmark in ('imagenet-a',
                                                      'imagenet-r') else None)
    return lambda logits: rb.top1_predictions(logits, indices)


def summarise(args, splits, outputs):
    from mmvan.analysis import robustness as rb
    if args.benchmark == 'imagenet-c':
        errors = {}
        for (name, s), (preds, labels) in outputs.items():
            errors.setdefault(name, {})[s] = rb.prediction_error(preds, labels)
        clean = None
        if args.clean_acc is not None:
            if not 0 < args.clean_acc <= 100:
                raise cli.UserError('--clean-acc is a top-1 accuracy in %.')
            clean = 1 - args.clean_acc / 100
        summary = rb.imagenet_c_summary(errors, clean)
        summary['num_images'] = sum(len(s) for _, _, s in splits)
        return summary
    if args.benchmark == 'cue-conflict':
        _, _, samples = splits[0]
        preds, _ = outputs['cue-conflict']
        decisions = [rb.CUE_CONFLICT_CATEGORIES[i] for i in preds.tolist()]
        summary = rb.shape_bias(decisions, [s[1] for s in samples],
                                [s[2] for s in samples])
        summary['decisions'] = {s[0]: d for s, d in zip(samples, decisions)}
        return summary
    preds, labels = outputs[args.benchmark]
    indices = (
        rb.subset_indices(args.benchmark)
        if args.benchmark in ('imagenet-a', 'imagenet-r') else None)
    error = rb.prediction_error(preds, labels, indices)
    return dict(
        top1_error=100 * error,
        top1_accuracy=100 * (1 - error),
        num_images=len(labels),
        num_classes=len(indices) if indices else 1000)


def _fmt(value, width=7, digits=1):
    if value is None:
        return f'{"-":>{width}}'
    return f'{value:>{width}.{digits}f}'


def print_table(args, summary):
    from mmvan.analysis import robustness as rb
    if args.benchmark == 'imagenet-c':
        sev = rb.SEVERITIES
        print(f'ImageNet-C, {summary["num_images"]} images: top-1 error (%) '
              f'per severity; CE and relative CE normalised by AlexNet (%)')
        head = (f'  {"corruption":<18}' + ''.join(f'{"s" + str(s):>7}'
                                                  for s in sev) +
                f'{"mean":>7}{"CE":>7}{"rel.CE":>8}')
        print(head)
        order = list(rb.IMAGENET_C_CORRUPTIONS + rb.IMAGENET_C_EXTRA)
        rows = summary['corruptions']
        for name in sorted(rows, key=order.index):
            r = rows[name]
            print(f'  {name:<18}' +
                  ''.join(_fmt(r['errors'].get(s)) for s in sev) +
                  _fmt(r['error']) + _fmt(r['ce']) + _fmt(r['relative_ce'], 8))
        print(f'  mCE (15 standard)   {_fmt(summary["mce_15"], 6)}   '
              f'relative {_fmt(summary["relative_mce_15"], 6)}')
        print(f'  mCE (all 19, LSKA)  {_fmt(summary["mce_19"], 6)}   '
              f'relative {_fmt(summary["relative_mce_19"], 6)}')
        if summary['mce_15'] is None and summary['mce_evaluated'] is not None:
            print(f'  mCE (evaluated)     {_fmt(summary["mce_evaluated"], 6)}'
                  f'   (missing: {", ".join(summary["missing"])})')
        print(f'  mean top-1 error    {_fmt(summary["mean_error"], 6)}')
    elif args.benchmark == 'cue-conflict':
        print(f'cue-conflict, {summary["num_images"]} images '
              f'({summary["num_conflict"]} with conflicting cues)')
        bias = summary['shape_bias']
        print(f'  shape bias      {_fmt(bias, 6, 3)}  '
              f'(shape {summary["num_shape"]}, texture '
              f'{summary["num_texture"]} decisions)')
        print(f'  shape accuracy  {_fmt(summary["accuracy"], 6)} %')
    else:
        print(f'{args.benchmark}, {summary["num_images"]} images, '
              f'{summary["num_classes"]} classes')
        print(f'  top-1 accuracy {summary["top1_accuracy"]:6.2f} %   '
              f'error {summary["top1_error"]:6.2f} %')


def main(argv=None):
    args = parse_args(argv)
    from mmvan.analysis.common import quiet_mmengine
    from mmvan.apis import init_model
    template, loader, bench = dataset_config(args)
    cfg = cli.load_config(args.config, args.cfg_options)
    if template is None:  # cue-conflict: the model's own test pipeline
        template = dict(
            type='CustomDataset',
            pipeline=copy.deepcopy(
                cfg.test_dataloader.dataset.pipeline.to_list() if hasattr(
                    cfg.test_dataloader.dataset.pipeline, 'to_list'
                ) else list(cfg.test_dataloader.dataset.pipeline)))
        loader = dict(batch_size=32, num_workers=2)
    if args.batch_size:
        loader['batch_size'] = args.batch_size
    if args.num_workers is not None:
        loader['num_workers'] = args.num_workers
    data_root = args.data_root or (bench.get('data_root') if bench is not None
                                   else 'data/cue-conflict')
    splits = build_splits(args, bench or {}, data_root)
    with quiet_mmengine():
        model = init_model(
            cfg,
            args.checkpoint,
            device=args.device,
            deploy=not args.no_deploy)
    check_classifier(model)
    with tempfile.TemporaryDirectory(prefix='mmvan-robustness-') as tmp:
        outputs = evaluate(model, splits, template, loader, args.benchmark,
                           data_root, tmp)
    summary = summarise(args, splits, outputs)
    summary.update(
        benchmark=args.benchmark,
        config=args.config,
        checkpoint=args.checkpoint,
        data_root=data_root)
    out = args.out or osp.join(
        'work_dirs', 'robustness',
        f'{osp.splitext(osp.basename(args.config))[0]}_{args.benchmark}'
        '.json')
    if osp.dirname(out):
        os.makedirs(osp.dirname(out), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(summary, f, indent=2)
    print_table(args, summary)
    print(f'saved {out}')
    return summary


if __name__ == '__main__':
    cli.run_cli(main)
