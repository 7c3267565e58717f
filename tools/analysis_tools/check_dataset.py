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
import sys

from mmengine.config import DictAction

from mmvan import cli
from mmvan.analysis.dataset_check import check_dataset


def parse_args(argv=None):
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


def main(argv=None):
    return check_dataset(**vars(parse_args(argv)))


if __name__ == '__main__':
    sys.exit(cli.run_cli(main) or 0)
