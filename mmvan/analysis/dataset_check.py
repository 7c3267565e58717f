# Copyright (c) mmvan contributors. All rights reserved.
"""The images of a config's data set that cannot be read, found before a
long run finds them: every image of the split decoded exactly as the
config's pipeline loads it (mmcv's decoder with the loader's settings).
"""
import sys

from mmengine.registry import DATASETS, DefaultScope, init_default_scope
from tqdm import tqdm

from mmvan.datasets.loading import LoadImageFromFile, is_image_loader
from mmvan.utils.atomic import atomic_write
from mmvan.utils.config import load_config
from mmvan.utils.data_check import check_data
from mmvan.utils.errors import DataError, UserError

__all__ = ['unreadable_images', 'check_dataset']


def _loader_step(pipeline):
    for step in pipeline or []:
        if is_image_loader(step):
            return step
    return dict(type='LoadImageFromFile')


def unreadable_images(cfg, split):
    """``(total, [(path, reason), ...])`` for the split's images."""
    scope = cfg.get('default_scope', 'mmpretrain')
    init_default_scope(scope)
    loader = cfg.get(f'{split}_dataloader')
    if not loader:
        raise UserError(f'The config has no {split}_dataloader.')
    ds_cfg = loader.dataset.copy()
    pipeline = ds_cfg.get('pipeline')
    inner = ds_cfg
    while 'pipeline' not in inner and isinstance(inner.get('dataset'), dict):
        inner = inner['dataset']
        pipeline = inner.get('pipeline')
    step = dict(_loader_step(pipeline))
    step.pop('type', None)
    step.pop('on_error', None)
    decode = LoadImageFromFile(on_error='raise', **step)
    # Only the annotations are needed: an empty pipeline.
    inner['pipeline'] = []
    with DefaultScope.overwrite_default_scope(scope):
        dataset = DATASETS.build(ds_cfg)
    bad = []
    total = len(dataset)
    for i in tqdm(
            range(total),
            desc=f'checking {split} images',
            unit='img',
            disable=not sys.stderr.isatty()):
        info = dataset.get_data_info(i)
        path = info.get('img_path')
        if path is None:
            continue
        try:
            decode(dict(img_path=path))
        except DataError as e:
            reason = str(e).split(': ', 1)[-1].split('. Replace')[0]
            bad.append((path, reason))
    return total, bad


def check_dataset(config, split='train', out=None, cfg_options=None):
    """List the images of ``config``'s ``split`` that cannot be read, as
    ``tools/analysis_tools/check_dataset.py`` does: each printed with the
    reason and, with ``out``, written there. Returns the exit status: 1
    when there is any, else 0."""
    cfg = load_config(config, cfg_options)
    check_data(cfg, [f'{split}_dataloader'])
    total, bad = unreadable_images(cfg, split)
    for path, reason in bad:
        print(f'{path}\t{reason}')
    if out:
        atomic_write(
            out,
            ''.join(f'{p}\t{r}\n' for p, r in bad),
            mode='w',
            encoding='utf-8')
    print(f'{split}: {len(bad)} of {total} images unreadable' +
          (f'; listed in {out}' if out and bad else ''))
    return 1 if bad else 0
