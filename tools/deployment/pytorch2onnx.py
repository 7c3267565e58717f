# Copyright (c) mmvan contributors. All rights reserved.
"""Export a VAN classifier (or a backbone) to ONNX and check it with
onnxruntime.

    python tools/deployment/pytorch2onnx.py configs/van/van-b0_8xb128_in1k.py \
        van-t.pth --out van-t.onnx --dynamic

The graph takes an RGB image batch, float32 in 0..255, NCHW, and applies the
config's normalisation itself; it returns the class logits (or, with
``--backbone-only``, the four stage feature maps, for detection and
segmentation feature extraction). The model is exported folded (BatchNorms
and layer scales inside the convolutions, dilated depth-wise kernels kept
dilated, which ONNX Runtime and OpenVINO run faster than the dense
zero-stuffed kernels PyTorch's CPU path uses; ``--no-deploy`` exports it as
trained). ``init_model(..., backend='onnxruntime'|'openvino')`` exports,
caches and runs the model itself; this tool writes a file for other
runtimes. The file is then run with onnxruntime on random and real images
(at a second size too with ``--dynamic``) and compared with the PyTorch
model as trained; the largest absolute difference must be at most
``--tolerance``, or nothing is kept.
"""
import argparse

from mmvan import cli
from mmvan.cli.pytorch2onnx import pytorch2onnx


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('config')
    p.add_argument('checkpoint', nargs='?', help='default: random init')
    p.add_argument('--out', required=True, help='.onnx file to write')
    p.add_argument('--shape', type=int, nargs=2, default=[224, 224])
    p.add_argument(
        '--dynamic',
        action='store_true',
        help='dynamic batch size, height and width')
    p.add_argument('--backbone-only', action='store_true')
    p.add_argument('--no-deploy', action='store_true')
    p.add_argument('--opset', type=int, default=17)
    p.add_argument('--tolerance', type=float, default=1e-4)
    p.add_argument(
        '--images',
        nargs='*',
        default=None,
        help='real images for the check (default: the images shipped in '
        'mmvan/backends/data)')
    return p.parse_args(argv)


def main(argv=None):
    return pytorch2onnx(**vars(parse_args(argv)))


if __name__ == '__main__':
    cli.run_cli(main)
