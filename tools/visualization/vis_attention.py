# Copyright (c) mmvan contributors. All rights reserved.
"""Where a VAN looks: LKA / LSKA attention maps over an image.

    python tools/visualization/vis_attention.py demo/cat.jpg \
        configs/van/van-b0_8xb128_in1k.py mmvan://van-b0_3rdparty_in1k \
        --out-file attn.png

For each chosen stage, the attention tensor ``conv1(...)`` of one block
(the last by default) is captured with a forward hook, reduced over channels
(mean absolute value by default), upsampled to the image and drawn over it;
one panel per stage, with a colour bar. Works for LKA and LSKA, any input
size, and classifiers, detectors and segmentors alike (the backbone is run
on the image as the test pipeline prepares it).
"""
import argparse

from mmvan import cli
from mmvan.analysis.attention import REDUCTIONS, visualize_attention


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
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
