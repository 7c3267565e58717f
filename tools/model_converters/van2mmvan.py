# Copyright (c) mmvan contributors. All rights reserved.
"""Convert a VAN / LSKA checkpoint from any known format into mmvan's.

    python tools/model_converters/van2mmvan.py SRC DST [--verify]

Formats (detected from the keys; ``--format`` forces one): official VAN and
LSKA classification (timm ``.pth.tar``), official VAN segmentation backbones
(mmseg 0.x), the LSKA repository's mmdet/mmseg backbones, mmpretrain / mmcls
VAN and HF transformers ``VanModel`` / ``VanForImageClassification``.

DST is a ``.pth`` file name or a folder. The written name carries the first 8
hex digits of the file's sha256 (``van-b0_3rdparty_in1k-1a2b3c4d.pth``, in the
zoo's vocabulary), as OpenMMLab's published models do. Every source key must
be mapped or explicitly dropped and every model key produced; otherwise
nothing is written.
"""
import argparse

from mmvan import cli
from mmvan.cli.van2mmvan import convert_checkpoint
from mmvan.converters import FORMATS_BY_NAME


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        'src',
        help='source checkpoint: a file (.pth, .pth.tar, .bin, '
        '.safetensors), an http(s):// URL or mmvan://<zoo name>')
    parser.add_argument('dst', help='output .pth file or folder')
    parser.add_argument(
        '--format',
        default='auto',
        choices=['auto', *sorted(FORMATS_BY_NAME)],
        help='source format (default: detected)')
    parser.add_argument(
        '--arch',
        help='architecture name (b0-b6), when the inferred one is to be '
        'overridden')
    parser.add_argument(
        '--task',
        default='cls',
        choices=['cls', 'backbone'],
        help='cls: classifier (backbone.* and head.fc.*); backbone: '
        'backbone.* only, for detection / segmentation init')
    parser.add_argument(
        '--allow-nonfinite',
        action='store_true',
        help='convert tensors holding NaN or inf instead of refusing them')
    parser.add_argument(
        '--weights',
        choices=['ema', 'raw'],
        default='ema',
        help='of a checkpoint with an EMA beside its weights (mmvan/mmengine '
        '--ema, timm --model-ema): the EMA (default) or the weights as '
        'trained')
    parser.add_argument(
        '--verify',
        action='store_true',
        help='load the result into an mmvan model strictly and run it; for '
        'mmpretrain sources also compare with mmpretrain\'s VAN')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return convert_checkpoint(
        args.src,
        args.dst,
        fmt=args.format,
        task=args.task,
        arch=args.arch,
        weights=args.weights,
        allow_nonfinite=args.allow_nonfinite,
        check=args.verify)


if __name__ == '__main__':
    cli.run_cli(main)
