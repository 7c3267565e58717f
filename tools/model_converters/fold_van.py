# Copyright (c) mmvan contributors. All rights reserved.
"""Write the folded inference checkpoint of a model with VAN backbones.

    python tools/model_converters/fold_van.py CONFIG CHECKPOINT OUT

Every BatchNorm and layer scale of the VAN backbones goes into the
convolutions (as ``VAN.switch_to_deploy`` does at every start otherwise).
The result loads strictly into the same config built with
``model.backbone.deploy=True`` and gives the same outputs, which this tool
checks before it writes anything:

    python tools/test.py CONFIG OUT --cfg-options model.backbone.deploy=True

CHECKPOINT is a path, an URL or ``mmvan://<zoo name>``, in any format mmvan
converts.
"""
import argparse

from mmengine.config import DictAction

from mmvan import cli
from mmvan.cli.fold_van import fold_checkpoint


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('config', help='the model\'s config file')
    parser.add_argument('checkpoint', help='its trained weights')
    parser.add_argument('out', help='the folded checkpoint (.pth) to write')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='override config settings, as in tools/test.py')
    parser.add_argument(
        '--weights',
        choices=['ema', 'raw'],
        default='ema',
        help='of a checkpoint saved with an EMA (train.py --ema): fold its '
        'EMA weights (default) or its weights as trained')
    parser.add_argument(
        '--tolerance',
        type=float,
        default=1e-4,
        help='largest relative output difference accepted (default 1e-4)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return fold_checkpoint(args.config, args.checkpoint, args.out,
                           args.cfg_options, args.weights, args.tolerance)


if __name__ == '__main__':
    cli.run_cli(main)
