# Copyright (c) mmvan contributors. All rights reserved.
"""A dataset's files, checked before a run starts: one message naming what
is missing and where to get it, instead of a traceback from the loader."""
import os
import os.path as osp
import re

from .errors import UserError

# Where each dataset type expects its data, and how to get it.
_DATA_HINTS = {
    'ImageNet':
    ('ImageNet-1k: download it from https://image-net.org, then arrange '
     'it as <data_root>/train/<wnid>/*.JPEG and <data_root>/val/... '
     '(optionally with meta/train.txt and meta/val.txt annotation '
     'lists); see configs/van/README.md.'),
    'CustomDataset':
    ('an image folder: <data_root>/<data_prefix>/<class>/<image> or an '
     'annotation list file.'),
    'CocoDataset':
    ('COCO 2017: download train2017, val2017 and annotations from '
     'https://cocodataset.org and place them under <data_root>.'),
    'ADE20KDataset':
    ('ADE20K (ADEChallengeData2016): download it from '
     'http://sceneparsing.csail.mit.edu and place images/ and '
     'annotations/ under <data_root>.'),
}


def _iter_datasets(dataset_cfg):
    if dataset_cfg is None:
        return
    inner = dataset_cfg.get('dataset')
    if inner is not None:
        yield from _iter_datasets(inner)
        return
    datasets = dataset_cfg.get('datasets')
    if datasets is not None:
        for d in datasets:
            yield from _iter_datasets(d)
        return
    yield dataset_cfg


def _dataset_paths(ds):
    """The files and folders a dataset config needs."""
    root = ds.get('data_root', '') or ''
    paths = []
    if root:
        paths.append(root)
    ann = ds.get('ann_file', '') or ''
    if ann:
        paths.append(osp.join(root, ann))
    prefix = ds.get('data_prefix', None)
    if isinstance(prefix, str):
        prefixes = [prefix]
    elif isinstance(prefix, dict):
        prefixes = [v for v in prefix.values() if isinstance(v, str)]
    else:
        prefixes = []
    split = ds.get('split', None)
    if str(ds.get('type', '')).split('.')[-1] == 'CUB':
        # CUB's split is a column of its lists, not a folder.
        if root:
            paths.append(osp.join(root, 'images.txt'))
    elif split and not ann and not prefixes:
        prefixes = [split]
    for p in prefixes:
        if p:
            paths.append(osp.join(root, p))
    return paths


def check_data(cfg, loaders):
    """Fail with one message when a dataset's files are missing.

    Args:
        cfg (Config): The config.
        loaders (list[str]): e.g. ``['train_dataloader', 'val_dataloader']``.
    """
    missing = []
    for name in loaders:
        loader = cfg.get(name)
        if not loader:
            continue
        for ds in _iter_datasets(loader.get('dataset')):
            for path in _dataset_paths(ds):
                if not osp.exists(path) and not re.match(r'\w+://', path):
                    missing.append((name, ds.get('type', '?'), path))
                    break
    if not missing:
        for name in loaders:
            for ds in _iter_datasets((cfg.get(name) or {}).get('dataset')):
                _check_imagenet_layout(name, ds)
        return
    lines = []
    for name, ds_type, path in missing:
        short_type = str(ds_type).split('.')[-1]
        hint = _DATA_HINTS.get(short_type, '')
        lines.append(f'{name} ({short_type}): {path} not found '
                     f'(looked in {osp.abspath(path)}).' +
                     (f' Expected {hint}' if hint else ''))
    raise UserError('dataset not found.\n  ' + '\n  '.join(lines) +
                    '\n  Point the config at your copy with --cfg-options '
                    f'{missing[0][0]}.dataset.data_root=/path/to/data.')


def _check_imagenet_layout(name, ds):
    """ImageNet without an annotation list needs its 1000 class folders;
    with fewer, mmpretrain fails with a traceback: say what to do."""
    if str(ds.get('type', '')).split('.')[-1] != 'ImageNet':
        return
    root, split = ds.get('data_root') or '', ds.get('split')
    if ds.get('ann_file') or not split or osp.isfile(
            osp.join(root, 'meta', f'{split}.txt')):
        return
    folder = osp.join(root, split)
    if not osp.isdir(folder):
        return
    classes = [d for d in os.listdir(folder) if osp.isdir(osp.join(folder, d))]
    if len(classes) != 1000:
        raise UserError(
            f'{name} (ImageNet): {folder} has {len(classes)} class folders '
            f'and there is no {osp.join(root, "meta", split + ".txt")}. '
            f'ImageNet-1k needs its 1000 class folders, or an annotation '
            f'list meta/{split}.txt of "relative/path label" lines. For a '
            f'data set of your own, use type=\'CustomDataset\' with its '
            f'classes.')
