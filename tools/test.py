# Copyright (c) mmvan contributors. All rights reserved.
"""Evaluate a checkpoint (classification, detection or segmentation).

    python tools/test.py configs/van/van-b2_8xb128_in1k.py van-b2.pth
    python tools/test.py configs/van/van-b2_8xb128_in1k.py \
        mmvan://van-b2_3rdparty_in1k

The checkpoint may be a path, an URL or a zoo name, in any format mmvan
converts; every tensor of the model must load.

``--backend onnxruntime|openvino`` evaluates the exported model (a
classifier whole, a detector's or segmentor's backbone) with the same data
and metrics; it is checked against PyTorch on real images first. A reduced
``--precision`` (bf16, int8) also runs fp32 and reports the top-1
agreement with it.
"""
import argparse

from mmvan import cli
from mmvan.cli.test import test


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument(
        'checkpoint',
        help='checkpoint: a file, an http(s):// URL or mmvan://<zoo name>')
    parser.add_argument('--work-dir', help='the dir to save the results')
    parser.add_argument(
        '--out', help='dump the predictions to a pickle (or json) file')
    parser.add_argument(
        '--out-item',
        choices=['metrics', 'pred'],
        default='pred',
        help='what --out stores: the predictions or the metrics')
    parser.add_argument(
        '--tta', action='store_true', help='test time augmentation')
    parser.add_argument(
        '--no-deploy',
        action='store_true',
        help='evaluate the model as trained, without folding BatchNorms and '
        'layer scales (the folded model computes the same outputs)')
    parser.add_argument(
        '--backend',
        choices=['pytorch', 'auto', 'onnxruntime', 'openvino'],
        default='pytorch',
        help='run the model on this runtime (default: the folded PyTorch '
        'model); auto: the fastest exact runtime installed')
    parser.add_argument(
        '--precision',
        choices=['fp32', 'bf16', 'int8'],
        default='fp32',
        help='bf16: openvino or pytorch; int8: onnxruntime, calibrated on '
        'the first 32 validation images. Reports the agreement with fp32')
    parser.add_argument(
        '--weights',
        choices=['ema', 'raw'],
        default='ema',
        help='of a checkpoint saved with an EMA (train.py --ema): its EMA '
        'weights (default) or its weights as trained')
    parser.add_argument(
        '--verbose',
        action='store_true',
        help="mmengine's full console output (the log file always has it)")
    cli.add_launcher_args(parser)
    return cli.parse_args(parser, argv)


def main(argv=None):
    return test(parse_args(argv))


if __name__ == '__main__':
    cli.run_cli(main)
