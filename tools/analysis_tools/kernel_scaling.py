# Copyright (c) mmvan contributors. All rights reserved.
"""LKA against LSKA as the kernel grows (``mmvan.analysis.kernel_scaling``,
whose docstring ``--help`` shows), by default for k in 7, 11, 23, 35, 41,
53.

    python tools/analysis_tools/kernel_scaling.py --arch b0 --out-file k.png
"""
import argparse

from mmvan import cli
from mmvan.analysis import kernel_scaling as ks


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=ks.__doc__,
        epilog=__doc__,
        formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--arch', default='b0')
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--shape', type=int, default=224)
    p.add_argument('--kernels', type=int, nargs='+', default=list(ks.KERNELS))
    p.add_argument(
        '--attentions',
        nargs='+',
        choices=ks.ATTENTIONS,
        default=list(ks.ATTENTIONS))
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--out-file', default='kernel_scaling.png')
    p.add_argument('--json', help='also write the table as JSON')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return ks.report(
        arch=args.arch,
        attentions=args.attentions,
        kernels=args.kernels,
        batch_size=args.batch_size,
        shape=args.shape,
        repeats=args.repeats,
        out_file=args.out_file,
        json_file=args.json)


if __name__ == '__main__':
    cli.run_cli(main)
