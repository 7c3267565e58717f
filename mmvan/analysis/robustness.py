# Copyright (c) mmvan contributors. All rights reserved.
"""Robustness benchmarks of ImageNet-1k classifiers.

- ImageNet-C (`Hendrycks & Dietterich, ICLR 2019
  <https://arxiv.org/abs/1903.12261>`_): top-1 error per corruption and
  severity; the corruption error ``CE_c = sum_s E_{c,s} / sum_s
  E^AlexNet_{c,s}``; mCE, the mean CE over the 15 standard corruptions and,
  as the LSKA paper reports it, over all 19; with the clean error, the
  relative ``CE_c = sum_s (E_{c,s} - E_clean) / sum_s (E^AlexNet_{c,s} -
  E^AlexNet_clean)`` and its mean.
- ImageNet-A and ImageNet-R: 200-class subsets; the 1000-way logits are
  restricted to the subset's classes before the arg-max.
- ImageNet-Sketch: the 1000 classes.
- Cue-conflict (`Geirhos et al., ICLR 2019
  <https://arxiv.org/abs/1811.12231>`_): 16-category decisions from the
  1000-way probabilities and the shape bias.

Images are labelled by the WordNet id of their class folder, so a partial
copy of a data set is labelled correctly. Reference tables (WordNet ids,
AlexNet errors) are in ``mmvan/analysis/data`` with their sources.
"""
import copy
import functools
import json
import os
import os.path as osp
import re
import tempfile

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from tqdm import tqdm

from mmvan.analysis.common import quiet_mmengine
from mmvan.apis import init_model
from mmvan.utils.config import load_config
from mmvan.utils.errors import UserError
from mmvan.zoo.index import repo_root

DATA_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'data')

IMAGENET_C_CORRUPTIONS = ('gaussian_noise', 'shot_noise', 'impulse_noise',
                          'defocus_blur', 'glass_blur', 'motion_blur',
                          'zoom_blur', 'snow', 'frost', 'fog', 'brightness',
                          'contrast', 'elastic_transform', 'pixelate',
                          'jpeg_compression')
# Released with ImageNet-C as held-out corruptions; LSKA's mCE covers them.
IMAGENET_C_EXTRA = ('speckle_noise', 'gaussian_blur', 'spatter', 'saturate')
SEVERITIES = (1, 2, 3, 4, 5)

BENCHMARKS = ('imagenet-c', 'imagenet-a', 'imagenet-r', 'imagenet-sketch',
              'cue-conflict')
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
WNID = re.compile(r'^n\d{8}$')


def _read_table(name):
    rows = []
    with open(osp.join(DATA_DIR, name), encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line:
                rows.append(line.split())
    return rows


@functools.lru_cache()
def imagenet_wnids():
    """The 1000 ImageNet-1k WordNet ids; position ``i`` is class ``i``."""
    return tuple(row[0] for row in _read_table('imagenet_wnids.txt'))


@functools.lru_cache()
def subset_wnids(benchmark):
    """The 200 WordNet ids of ``'imagenet-a'`` or ``'imagenet-r'``, in
    ImageNet-1k order."""
    files = {
        'imagenet-a': 'imagenet_a_wnids.txt',
        'imagenet-r': 'imagenet_r_wnids.txt'
    }
    if benchmark not in files:
        raise KeyError(f'{benchmark!r} has no class subset; subsets: '
                       f'{sorted(files)}.')
    return tuple(row[0] for row in _read_table(files[benchmark]))


def subset_indices(benchmark):
    """ImageNet-1k indices of a 200-class benchmark's classes, ascending
    (position ``j`` is the benchmark's class ``j``)."""
    position = {w: i for i, w in enumerate(imagenet_wnids())}
    return [position[w] for w in subset_wnids(benchmark)]


@functools.lru_cache()
def _alexnet_table():
    return {
        name: float(value)
        for name, value in _read_table('imagenet_c_alexnet.txt')
    }


def alexnet_errors():
    """AlexNet's ImageNet-C top-1 error per corruption (mean over the five
    severities, a fraction) for the 19 corruptions."""
    table = dict(_alexnet_table())
    table.pop('clean')
    return table


def alexnet_clean_error():
    """AlexNet's top-1 error on clean ImageNet-1k validation (a fraction)."""
    return _alexnet_table()['clean']


def top1_predictions(logits, indices=None):
    """ImageNet-1k class predicted from 1000-way ``logits``.

    Args:
        logits (Tensor): ``N x 1000``.
        indices (Sequence[int], optional): Restrict the arg-max to these
            classes (ImageNet-A / -R).

    Returns:
        Tensor: ``N`` ImageNet-1k indices.
    """
    logits = torch.as_tensor(logits)
    if indices is None:
        return logits.argmax(1)
    index = torch.as_tensor(list(indices)).long()
    return index[logits[:, index].argmax(1)]


def prediction_error(predictions, labels, indices=None):
    """Share of wrong ``predictions`` (a fraction).

    Raises:
        ValueError: No images, or (with ``indices``) a label outside them.
    """
    predictions = torch.as_tensor(predictions).long()
    labels = torch.as_tensor(labels).long()
    if len(labels) == 0:
        raise ValueError('No images to score.')
    if indices is not None and not torch.isin(
            labels, torch.as_tensor(list(indices))).all():
        raise ValueError('A label is not one of the subset classes.')
    return float((predictions != labels).float().mean())


def subset_top1_error(logits, labels, indices=None):
    """Top-1 error of 1000-way ``logits`` (a fraction), the arg-max
    restricted to ``indices`` when given (every label must be one of
    them)."""
    return prediction_error(top1_predictions(logits, indices), labels, indices)


def imagenet_c_summary(errors, clean_error=None):
    """CE, mCE and relative mCE from per-split errors.

    Args:
        errors (dict): ``{corruption: {severity: top-1 error}}``, errors as
            fractions.
        clean_error (float, optional): The model's clean top-1 error (a
            fraction), for the relative CE.

    Returns:
        dict: Everything in percent. ``corruptions``: per corruption its
        ``errors`` per severity, mean ``error``, ``ce`` and ``relative_ce``
        (None without the five severities, a reference or the clean
        error); ``mce_15`` / ``mce_19`` over the 15 standard / all 19
        corruptions and ``relative_mce_15`` / ``relative_mce_19`` (None
        unless every one has a value); ``mce_evaluated`` over the
        corruptions that have one; ``mean_error`` over every evaluated
        split; ``missing``: what the means lack.
    """
    alexnet = alexnet_errors()
    alex_clean = alexnet_clean_error()
    out = {}
    for name, per_severity in errors.items():
        sev = {int(s): float(e) for s, e in per_severity.items()}
        mean = float(np.mean(list(sev.values())))
        complete = set(sev) == set(SEVERITIES)
        ce = rce = None
        if complete and name in alexnet:
            # sum_s E / sum_s E_alex = mean_s E / mean_s E_alex.
            ce = 100 * mean / alexnet[name]
            if clean_error is not None:
                rce = 100 * (mean - clean_error) / (alexnet[name] - alex_clean)
        out[name] = dict(
            errors={
                s: 100 * e
                for s, e in sorted(sev.items())
            },
            error=100 * mean,
            ce=ce,
            relative_ce=rce)

    def mean_of(key, names):
        values = [out[n][key] for n in names if n in out]
        if len(values) < len(names) or any(v is None for v in values):
            return None
        return float(np.mean(values))

    all_19 = IMAGENET_C_CORRUPTIONS + IMAGENET_C_EXTRA
    evaluated = [n for n in out if out[n]['ce'] is not None]
    summary = dict(
        corruptions=out,
        mce_15=mean_of('ce', IMAGENET_C_CORRUPTIONS),
        mce_19=mean_of('ce', all_19),
        relative_mce_15=mean_of('relative_ce', IMAGENET_C_CORRUPTIONS),
        relative_mce_19=mean_of('relative_ce', all_19),
        mce_evaluated=(float(np.mean([out[n]['ce'] for n in evaluated]))
                       if evaluated else None),
        mean_error=(float(
            np.mean([e for n in out
                     for e in out[n]['errors'].values()])) if out else None),
        clean_error=None if clean_error is None else 100 * clean_error,
        missing=sorted(set(all_19) - set(out)) +
        sorted(n for n in out if len(out[n]['errors']) != len(SEVERITIES)))
    return summary


# ------------------------------------------------------------- data sets
def _is_image(name):
    return name.lower().endswith(IMAGE_EXTENSIONS)


def find_class_root(root):
    """The folder of ``<wnid>/`` class folders: ``root`` itself, or its
    only sub-folder that holds them (e.g. ``sketch/`` of ImageNet-Sketch,
    ``imagenet-a/`` of ImageNet-A). None if there is none."""
    if not osp.isdir(root):
        return None
    names = sorted(os.listdir(root))
    if any(WNID.match(n) and osp.isdir(osp.join(root, n)) for n in names):
        return root
    subs = [
        n for n in names if osp.isdir(osp.join(root, n))
        and find_class_root(osp.join(root, n)) == osp.join(root, n)
    ]
    return osp.join(root, subs[0]) if len(subs) == 1 else None


def wnid_samples(folder, allowed=None):
    """``[(relative path, ImageNet-1k index)]`` of every image in the
    ``<wnid>/`` sub-folders of ``folder``, sorted.

    Args:
        allowed (Sequence[str], optional): The wnids a benchmark may hold;
            a class folder outside them is an error.

    Raises:
        ValueError: A folder that is not a known ImageNet wnid.
    """
    position = {w: i for i, w in enumerate(imagenet_wnids())}
    allowed = None if allowed is None else set(allowed)
    samples = []
    for name in sorted(os.listdir(folder)):
        path = osp.join(folder, name)
        if not osp.isdir(path):
            continue
        if name not in position or (allowed is not None
                                    and name not in allowed):
            raise ValueError(
                f'{path}: not a class folder of this benchmark (expected '
                f'ImageNet WordNet ids such as {imagenet_wnids()[0]}).')
        for dirpath, _, files in sorted(os.walk(path)):
            for f in sorted(files):
                if _is_image(f):
                    rel = osp.relpath(osp.join(dirpath, f), folder)
                    samples.append((rel.replace(os.sep, '/'), position[name]))
    return samples


def write_annotation(samples, path):
    """Write ``samples`` as an mmpretrain annotation list
    (``<relative path> <label>`` per line)."""
    with open(path, 'w', encoding='utf-8') as f:
        for rel, label in samples:
            if ' ' in rel:
                raise ValueError(f'{rel}: file names with spaces cannot be '
                                 f'listed.')
            f.write(f'{rel} {label}\n')
    return path


def predict(model,
            dataset_cfg,
            batch_size=32,
            num_workers=0,
            progress=None,
            reduce=None):
    """Outputs and labels of a classifier on a data set.

    Args:
        model: An mmpretrain classifier (``model(x, mode='tensor')`` gives
            the logits) with its data preprocessor.
        dataset_cfg (dict): An mmpretrain dataset config.
        progress (callable, optional): Called with each batch's size.
        reduce (callable, optional): Applied to each batch's ``B x C``
            logits (e.g. :func:`top1_predictions`), so that only what is
            scored is kept (ImageNet-C has 4.75 M images).

    Returns:
        tuple[Tensor, Tensor]: The (reduced) logits of every image, in
        order, and the ``N`` labels.
    """
    loader_cfg = dict(
        batch_size=batch_size,
        num_workers=num_workers,
        persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dataset_cfg)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        loader = Runner.build_dataloader(loader_cfg)
    outputs, labels = [], []
    with torch.no_grad():
        for batch in loader:
            data = model.data_preprocessor(batch, False)
            out = model(data['inputs'], mode='tensor').float().cpu()
            outputs.append(out if reduce is None else reduce(out))
            labels.append(
                torch.cat([s.gt_label.view(-1)
                           for s in data['data_samples']]).cpu())
            if progress is not None:
                progress(len(labels[-1]))
    if not outputs:
        raise ValueError('The data set is empty.')
    return torch.cat(outputs), torch.cat(labels)


# ------------------------------------------------------------ cue-conflict
CUE_CONFLICT_CATEGORIES = ('airplane', 'bear', 'bicycle', 'bird', 'boat',
                           'bottle', 'car', 'cat', 'chair', 'clock', 'dog',
                           'elephant', 'keyboard', 'knife', 'oven', 'truck')
CUE_CONFLICT_NAME = re.compile(r'^([a-z]+)\d+-([a-z]+)\d+\.\w+$')


def cue_conflict_indices():
    """``{category: ImageNet-1k indices}`` of the 16 categories (Geirhos et
    al.'s WordNet mapping, as mmpretrain's ``ShapeBiasMetric`` holds it)."""
    from mmpretrain.evaluation import metrics  # optional: classification
    return {
        c: list(getattr(metrics.ShapeBiasMetric, f'{c}_indices'))
        for c in CUE_CONFLICT_CATEGORIES
    }


def category_predictions(logits):
    """16-category decision per image, as indices into
    :data:`CUE_CONFLICT_CATEGORIES`: the category whose ImageNet classes
    have the highest mean softmax probability (model-vs-human's default
    aggregation)."""
    probs = torch.as_tensor(logits).float().softmax(1)
    table = cue_conflict_indices()
    scores = torch.stack([
        probs[:, torch.tensor(table[c])].mean(1)
        for c in CUE_CONFLICT_CATEGORIES
    ], 1)
    return scores.argmax(1)


def category_decisions(logits):
    """:func:`category_predictions` as category names."""
    return [
        CUE_CONFLICT_CATEGORIES[i]
        for i in category_predictions(logits).tolist()
    ]


def cue_conflict_samples(root):
    """``[(relative path, shape, texture)]`` of the cue-conflict stimuli:
    ``<root>/<shape>/<shape><n>-<texture><m>.png``."""
    samples = []
    for shape in sorted(os.listdir(root)):
        folder = osp.join(root, shape)
        if not osp.isdir(folder):
            continue
        if shape not in CUE_CONFLICT_CATEGORIES:
            raise ValueError(f'{folder}: not one of the 16 cue-conflict '
                             f'categories {CUE_CONFLICT_CATEGORIES}.')
        for name in sorted(os.listdir(folder)):
            if not _is_image(name):
                continue
            m = CUE_CONFLICT_NAME.match(name)
            if not m or m[1] != shape or m[2] not in CUE_CONFLICT_CATEGORIES:
                raise ValueError(
                    f'{osp.join(folder, name)}: expected a name like '
                    f'{shape}1-bear2.png (shape, then texture).')
            samples.append((f'{shape}/{name}', shape, m[2]))
    return samples


def shape_bias(decisions, shapes, textures):
    """Shape bias of 16-category decisions on cue-conflict images.

    Images whose shape and texture categories are the same are left out;
    of the rest, a decision for the shape category is a shape decision, one
    for the texture category a texture decision, others are ignored.

    Returns:
        dict: ``shape_bias`` = shape / (shape + texture) decisions (None
        without any), ``shape_match`` and ``texture_match`` (shares of the
        conflicting images, in percent), ``accuracy`` (shape category,
        every image, in percent) and the counts.
    """
    n_shape = n_texture = n_conflict = 0
    for d, s, t in zip(decisions, shapes, textures):
        if s == t:
            continue
        n_conflict += 1
        n_shape += d == s
        n_texture += d == t
    decided = n_shape + n_texture
    return dict(
        shape_bias=n_shape / decided if decided else None,
        shape_match=100 * n_shape / n_conflict if n_conflict else None,
        texture_match=100 * n_texture / n_conflict if n_conflict else None,
        accuracy=100 *
        float(np.mean([d == s for d, s in zip(decisions, shapes)]))
        if len(shapes) else None,
        num_images=len(shapes),
        num_conflict=n_conflict,
        num_shape=n_shape,
        num_texture=n_texture)


# ----------------------------------------------------- running a benchmark
# mmvan's configs: the repository's for an editable install, the package's
# copy for an installed one.
CONFIG_DIR = osp.join(repo_root(), 'configs')
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


def _dataset_config(benchmark, path=None):
    """``(dataset cfg template, loader settings, benchmark config)`` of
    ``benchmark``, from ``path`` or mmvan's
    ``configs/_base_/datasets/<benchmark>.py``; cue-conflict without a
    ``path`` has none (the model config's test pipeline is used)."""
    if benchmark == 'cue-conflict' and not path:
        return None, {}, None
    path = path or osp.join(CONFIG_DIR, '_base_', 'datasets',
                            DATASET_CONFIGS[benchmark])
    if not osp.isfile(path):
        raise UserError(f'Dataset config {path} does not exist.')
    bench = Config.fromfile(path)
    loader = bench.test_dataloader
    return (copy.deepcopy(loader.dataset.to_dict()),
            dict(
                batch_size=loader.get('batch_size', 32),
                num_workers=loader.get('num_workers', 2)), bench)


def check_classifier(model):
    """Refuse a model that is not a 1000-way ImageNet classifier."""
    if getattr(model, 'task', None) != 'cls' or not hasattr(model, 'head'):
        raise UserError('The robustness benchmarks need an ImageNet-1k '
                        'classifier config (default_scope mmpretrain '
                        'with a head).')
    num = getattr(model.head, 'num_classes', None)
    if num != 1000:
        raise UserError(f'The benchmarks score 1000-way ImageNet '
                        f'predictions; this head has {num} classes.')


def build_splits(benchmark,
                 bench,
                 data_root,
                 corruptions=None,
                 severities=None):
    """``[(key, folder, samples)]``; samples ``[(rel path, label)]``."""
    hint = (f'Expected the {benchmark} data under {data_root} '
            f'(download: {DOWNLOAD[benchmark]}; layout in '
            f'configs/_base_/datasets/ and docs/analysis.md).')
    if not osp.isdir(data_root):
        raise UserError(f'{data_root}: no such folder. {hint}')
    try:
        if benchmark == 'imagenet-c':
            return _imagenet_c_splits(bench, data_root, hint, corruptions,
                                      severities)
        if benchmark == 'cue-conflict':
            samples = cue_conflict_samples(data_root)
            if not samples:
                raise UserError(f'{data_root}: no stimuli. {hint}')
            return [('cue-conflict', data_root, samples)]
        folder = find_class_root(data_root)
        if folder is None:
            raise UserError(f'{data_root}: no <wnid>/ class folders. {hint}')
        allowed = (
            subset_wnids(benchmark) if benchmark in ('imagenet-a',
                                                     'imagenet-r') else None)
        samples = wnid_samples(folder, allowed)
    except ValueError as e:
        raise UserError(str(e)) from None
    if not samples:
        raise UserError(f'{folder}: no images. {hint}')
    return [(benchmark, folder, samples)]


def _imagenet_c_splits(bench, data_root, hint, corruptions, severities):
    known = list(
        bench.get('corruptions', IMAGENET_C_CORRUPTIONS + IMAGENET_C_EXTRA))
    wanted = corruptions or known
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise UserError(f'--corruptions {" ".join(unknown)}: not '
                        f'ImageNet-C corruptions ({", ".join(known)}).')
    severities = severities or list(bench.get('severities', SEVERITIES))
    splits = []
    for name in wanted:
        for s in severities:
            folder = osp.join(data_root, name, str(s))
            if osp.isdir(folder):
                samples = wnid_samples(folder)
                if samples:
                    splits.append(((name, s), folder, samples))
    if not splits:
        raise UserError(f'{data_root}: no <corruption>/<severity>/ '
                        f'folders with images. {hint}')
    return splits


def evaluate_splits(model, splits, template, loader, benchmark, data_root,
                    tmp):
    """``{key: (predictions, labels)}`` of every split. All splits are
    listed in one annotation file and run as one data set (full batches,
    one progress bar), then cut apart again."""
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
    if benchmark == 'cue-conflict':
        return category_predictions
    indices = (
        subset_indices(benchmark) if benchmark in ('imagenet-a',
                                                   'imagenet-r') else None)
    return lambda logits: top1_predictions(logits, indices)


def summarise(benchmark, splits, outputs, clean_acc=None):
    """The summary of a benchmark's ``outputs`` (of
    :func:`evaluate_splits`): ImageNet-C's table with the relative CE when
    ``clean_acc`` (top-1 %) is given, cue-conflict's shape bias, or the
    top-1 error."""
    if benchmark == 'imagenet-c':
        errors = {}
        for (name, s), (preds, labels) in outputs.items():
            errors.setdefault(name, {})[s] = prediction_error(preds, labels)
        clean = None
        if clean_acc is not None:
            if not 0 < clean_acc <= 100:
                raise UserError('--clean-acc is a top-1 accuracy in %.')
            clean = 1 - clean_acc / 100
        summary = imagenet_c_summary(errors, clean)
        summary['num_images'] = sum(len(s) for _, _, s in splits)
        return summary
    if benchmark == 'cue-conflict':
        _, _, samples = splits[0]
        preds, _ = outputs['cue-conflict']
        decisions = [CUE_CONFLICT_CATEGORIES[i] for i in preds.tolist()]
        summary = shape_bias(decisions, [s[1] for s in samples],
                             [s[2] for s in samples])
        summary['decisions'] = {s[0]: d for s, d in zip(samples, decisions)}
        return summary
    preds, labels = outputs[benchmark]
    indices = (
        subset_indices(benchmark) if benchmark in ('imagenet-a',
                                                   'imagenet-r') else None)
    error = prediction_error(preds, labels, indices)
    return dict(
        top1_error=100 * error,
        top1_accuracy=100 * (1 - error),
        num_images=len(labels),
        num_classes=len(indices) if indices else 1000)


def _fmt(value, width=7, digits=1):
    if value is None:
        return f'{"-":>{width}}'
    return f'{value:>{width}.{digits}f}'


def print_table(benchmark, summary):
    """Print ``summary`` as a table."""
    if benchmark == 'imagenet-c':
        sev = SEVERITIES
        print(f'ImageNet-C, {summary["num_images"]} images: top-1 error (%) '
              f'per severity; CE and relative CE normalised by AlexNet (%)')
        head = (f'  {"corruption":<18}' + ''.join(f'{"s" + str(s):>7}'
                                                  for s in sev) +
                f'{"mean":>7}{"CE":>7}{"rel.CE":>8}')
        print(head)
        order = list(IMAGENET_C_CORRUPTIONS + IMAGENET_C_EXTRA)
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
    elif benchmark == 'cue-conflict':
        print(f'cue-conflict, {summary["num_images"]} images '
              f'({summary["num_conflict"]} with conflicting cues)')
        bias = summary['shape_bias']
        print(f'  shape bias      {_fmt(bias, 6, 3)}  '
              f'(shape {summary["num_shape"]}, texture '
              f'{summary["num_texture"]} decisions)')
        print(f'  shape accuracy  {_fmt(summary["accuracy"], 6)} %')
    else:
        print(f'{benchmark}, {summary["num_images"]} images, '
              f'{summary["num_classes"]} classes')
        print(f'  top-1 accuracy {summary["top1_accuracy"]:6.2f} %   '
              f'error {summary["top1_error"]:6.2f} %')


def run_benchmark(config,
                  checkpoint,
                  benchmark,
                  data_root=None,
                  dataset_config=None,
                  clean_acc=None,
                  corruptions=None,
                  severities=None,
                  batch_size=None,
                  num_workers=None,
                  out=None,
                  device='cpu',
                  no_deploy=False,
                  cfg_options=None):
    """Evaluate a classifier on a robustness benchmark as
    ``tools/analysis_tools/robustness.py`` does: the summary is printed as a
    table, written as JSON to ``out`` (default:
    ``work_dirs/robustness/<config>_<benchmark>.json``) and returned."""
    template, loader, bench = _dataset_config(benchmark, dataset_config)
    cfg = load_config(config, cfg_options)
    if template is None:  # cue-conflict: the model's own test pipeline
        template = dict(
            type='CustomDataset',
            pipeline=copy.deepcopy(
                cfg.test_dataloader.dataset.pipeline.to_list() if hasattr(
                    cfg.test_dataloader.dataset.pipeline, 'to_list'
                ) else list(cfg.test_dataloader.dataset.pipeline)))
        loader = dict(batch_size=32, num_workers=2)
    if batch_size:
        loader['batch_size'] = batch_size
    if num_workers is not None:
        loader['num_workers'] = num_workers
    data_root = data_root or (bench.get('data_root')
                              if bench is not None else 'data/cue-conflict')
    splits = build_splits(benchmark, bench or {}, data_root, corruptions,
                          severities)
    with quiet_mmengine():
        model = init_model(
            cfg, checkpoint, device=device, deploy=not no_deploy)
    check_classifier(model)
    with tempfile.TemporaryDirectory(prefix='mmvan-robustness-') as tmp:
        outputs = evaluate_splits(model, splits, template, loader, benchmark,
                                  data_root, tmp)
    summary = summarise(benchmark, splits, outputs, clean_acc)
    summary.update(
        benchmark=benchmark,
        config=config,
        checkpoint=checkpoint,
        data_root=data_root)
    out = out or osp.join(
        'work_dirs', 'robustness',
        f'{osp.splitext(osp.basename(config))[0]}_{benchmark}'
        '.json')
    if osp.dirname(out):
        os.makedirs(osp.dirname(out), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(summary, f, indent=2)
    print_table(benchmark, summary)
    print(f'saved {out}')
    return summary
