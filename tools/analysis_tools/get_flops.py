# Copyright (c) mmvan contributors. All rights reserved.
"""Parameters and FLOPs of a config's model (``mmvan.analysis.flops``,
whose docstring ``--help`` shows).

    python tools/analysis_tools/get_flops.py configs/van/van-b2_8xb128_in1k.py
    python tools/analysis_tools/get_flops.py CONFIG --shape 512 512
"""
import argparse

from mmvan import cli
from mmvan.analysis import flops
from mmvan.analysis.flops import complexity, report


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=flops.__doc__,
        epilog=__doc__,
        formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('config')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=None,
        help='input H W (default: 224 224 for classifiers, 512 512 for '
        'segmentors, 800 1280 for detectors, 1024 1024 for Mask2Former, the '
        "codec's input size for pose models)")
    parser.add_argument(
        '--device',
        default='meta',
        help="where the model runs: 'meta' (default; falls back to the CPU "
        'for a model that reads tensor values) or a torch device')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    info = complexity(args.config, args.shape, args.device)
    print(report(args.config, info))
    return info


if __name__ == '__main__':
    cli.run_cli(main)
