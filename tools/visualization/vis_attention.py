# Copyright (c) mmvan contributors. All rights reserved.
"""Where a VAN looks (``mmvan.analysis.attention``, whose docstring
``--help`` shows).

    python tools/visualization/vis_attention.py demo/cat.jpg \
        configs/van/van-b0_8xb128_in1k.py mmvan://van-b0_3rdparty_in1k \
        --out-file attn.png

"""
import argparse

from mmvan import cli
from mmvan.analysis import attention
from mmvan.analysis.attention import REDUCTIONS, visualize_attention


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=attention.__doc__,
        epilog=__doc__,
        formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('img')
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?', help='default: random init')
    parser.add_argument('--out-file', required=True, help='PNG to write')
    parser.add_argument('--stages', type=int, nargs='+', default=[0, 1, 2, 3])
    parser.add_argument(
        '--block', type=int, default=-1, help='block index in each stage')
    parser.add_argument('--reduce', choices=REDUCTIONS, default='mean-abs')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        help='resize the image to H W (default: keep its size)')
    parser.add_argument('--device', default='cpu')
    return parser.parse_args(argv)


def main(argv=None):
    return visualize_attention(**vars(parse_args(argv)))


if __name__ == '__main__':
    cli.run_cli(main)
