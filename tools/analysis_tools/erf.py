# Copyright (c) mmvan contributors. All rights reserved.
"""Effective receptive fields of VAN models, side by side.

RepLKNet's measure (Ding et al., CVPR 2022): the gradient of the central
pixel of the last stage's feature map with respect to the input, averaged
over N images, log-scaled; and the high-contribution area ratios at
thresholds 0.2 / 0.3 / 0.5 / 0.99 (the share of the image covered by the
smallest centred square holding that share of the contribution).

    python tools/analysis_tools/erf.py configs/van/van-b0_8xb128_in1k.py \
        --data data/imagenet/val --num-images 50 --out-file erf.png

Several models: one config per panel, or one config and several
``--kernel-size`` values (LKA k=21 against LSKA k=23/35/53 at one scale):

    python tools/analysis_tools/erf.py configs/van/van-b0_8xb128_in1k.py \
        configs/van/van-lska-b0_8xb128_in1k.py \
        configs/van/van-lska-b0_8xb128_in1k.py \
        configs/van/van-lska-b0_8xb128_in1k.py --kernel-size 21 23 35 53 \
        --data data/demo_cls/val --num-images 8 --out-file erf.png

Without ``--checkpoint`` the models have VAN's random initialisation
(seeded). The PNG is written with a JSON of the ratios beside it.
"""
import argparse

from mmengine.config import DictAction

from mmvan import cli
from mmvan.analysis.erf import compare_erfs


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('configs', nargs='+', metavar='CONFIG')
    parser.add_argument(
        '--checkpoint',
        nargs='+',
        default=None,
        help='one per config (or one for all); "none" for random weights')
    parser.add_argument(
        '--kernel-size',
        type=int,
        nargs='+',
        default=None,
        help='backbone kernel_size per config; with one config, one panel '
        'per size')
    parser.add_argument('--labels', nargs='+', help='panel titles')
    parser.add_argument(
        '--data',
        required=True,
        help='a folder of images (searched '
        'recursively, sorted; the first --num-images are used)')
    parser.add_argument('--num-images', type=int, default=50)
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=[1024],
        help='input H [W] (default 1024, as RepLKNet)')
    parser.add_argument('--out-file', required=True, help='PNG to write')
    parser.add_argument(
        '--save-scores',
        action='store_true',
        help='also write the mean contribution scores (.npz)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    if len(args.shape) == 1:
        args.shape = args.shape * 2
    if len(args.shape) != 2 or min(args.shape) < 32:
        parser.error('--shape takes H [W], each at least 32.')
    return args


def main(argv=None):
    return compare_erfs(**vars(parse_args(argv)))


if __name__ == '__main__':
    cli.run_cli(main)
