# Copyright (c) mmvan contributors. All rights reserved.
"""Parameters and FLOPs of a config's whole model and of its backbone, for
every task: classifiers, detectors (one- and two-stage), segmentors,
panoptic models (Mask2Former) and top-down pose models.

A FLOP is a multiply-add, as in the VAN paper: torch's FlopCounterMode
counts the convolutions, linear layers and matrix products (attention
included) and the total is halved; normalisations, activations and
element-wise products are not counted. The model is built and run on the
meta device (no weights, no memory); a model that reads
tensor values during its forward (Mask2Former's deformable attention) runs
on the CPU instead.

Two-stage detectors are counted as mmdet 2's ``forward_dummy`` did, by
which the published detector FLOPs were measured: backbone, neck and RPN
head on the image, each RoI box head on 1000 proposals and each mask head
on 100 RoIs (RoI extraction itself counts nothing).

Default input (H W): 224 224 for classifiers, 512 512 for segmentors,
800 1280 for detectors (the paper's 1280x800), the config's ``image_size``
(1024 1024) for Mask2Former and the codec's input size for pose models.

    python tools/analysis_tools/get_flops.py configs/van/van-b2_8xb128_in1k.py
    python tools/analysis_tools/get_flops.py CONFIG --shape 512 512
"""
import argparse

from mmvan import cli
from mmvan.analysis.flops import complexity, report


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
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
