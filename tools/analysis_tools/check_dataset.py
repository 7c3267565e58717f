# Copyright (c) mmvan contributors. All rights reserved.
"""List the images of a config's data set that cannot be read, before a long
run finds them.

    python tools/analysis_tools/check_dataset.py CONFIG [--split train]

Every image of the split is decoded exactly as the config's pipeline loads
it (mmcv's decoder with the loader's settings). Unreadable files (empty,
truncated, not an image) are listed with the reason and written to
``--out`` (default: none); the exit status is 1 when there is any.
"""
import argparse
import os.path as osp
import sys
import warnings

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmvan.datasets.loading import is_image_loader  # noqa: E402
from mmvan import cli  # noqa: E402


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('config')
    parser.add_argument(
        '--split',
        default='train',
        choices=['train', 'val', 'test'],
        help='which data loader of the config (default: train)')
    parser.add_argument('--out', help='write the list of bad files here')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. '
        'train_dataloader.dataset.data_root=...')
    return parser.parse_args(argv)


def _loader_step(pipeline):
    for step in pipeline or []:
        if is_image_loader(step):
            return step
    return dict(type='LoadImageFromFile')


def check(cfg, split):
    """``(total, [(path, reason), ...])`` for the split's images."""
    from mmengine.registry import DATASETS, DefaultScope, init_default_scope

    from mmvan.datasets.loading import LoadImageFromFile
    scope = cfg.get('default_scope', 'mmpretrain')
    init_default_scope(scope)
    loader = cfg.get(f'{split}_dataloader')
    if not loader:
        raise cli.UserError(f'The config has no {split}_dataloader.')
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
    from tqdm import tqdm

    from mmvan.utils.errors import DataError
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


def main(argv=None):
    args = parse_args(argv)
    cfg = cli.load_config(args.config, args.cfg_options)
    cli.check_data(cfg, [f'{args.split}_dataloader'])
    total, bad = check(cfg, args.split)
    for path, reason in bad:
        print(f'{path}\t{reason}')
    if args.out:
        from mmvan.utils.atomic import atomic_write
        atomic_write(
            args.out,
            ''.join(f'{p}\t{r}\n' for p, r in bad),
            mode='w',
            encoding='utf-8')
    print(f'{args.split}: {len(bad)} of {total} images unreadable' +
          (f'; listed in {args.out}' if args.out and bad else ''))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(cli.run_cli(main) or 0)
