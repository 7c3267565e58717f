# Copyright (c) mmvan contributors. All rights reserved.
"""Share of the GPU's memory bandwidth that each depth-wise kernel of VAN
reaches (forward, input and weight gradients; the fused MLP op), Triton
against PyTorch, at VAN-b2 stage-1 and stage-3 shapes; the GPU's name
first. Needs a CUDA GPU (see :mod:`mmvan.analysis.kernel_bandwidth`).

    python tools/analysis_tools/kernel_bandwidth.py --batch-size 32 \\
        --dtypes fp32 bf16
"""
import argparse

from mmvan import cli
from mmvan.analysis import kernel_bandwidth as kb


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Memory-bandwidth share of every depth-wise kernel at '
        'VAN-b2 stage-1 and stage-3 shapes (needs a CUDA GPU).')
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument(
        '--dtypes',
        nargs='+',
        choices=sorted(kb.DTYPES),
        default=['fp32', 'bf16'])
    p.add_argument('--repeats', type=int, default=20)
    p.add_argument(
        '--peak-gbs',
        type=float,
        help='the GPU\'s peak memory bandwidth in GB/s (default: from the '
        'table by the GPU\'s name, else measured by a 1 GiB copy)')
    args = p.parse_args(argv)
    if args.batch_size < 1 or args.repeats < 1:
        p.error('--batch-size and --repeats must be positive')
    if args.peak_gbs is not None and args.peak_gbs <= 0:
        p.error('--peak-gbs must be positive')
    return args


def main(argv=None):
    args = parse_args(argv)
    return kb.report(args.batch_size, args.dtypes, args.repeats, args.peak_gbs)


if __name__ == '__main__':
    cli.run_cli(main)
