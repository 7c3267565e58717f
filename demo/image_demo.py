# Copyright (c) mmvan contributors. All rights reserved.
"""Run a VAN model on one image, print the prediction and draw it.

    python demo/image_demo.py demo/cat.jpg configs/van/van-b0_8xb128_in1k.py \
        mmvan://van-b0_3rdparty_in1k --out-file cat_pred.png

Classifiers: the top-5 labels are written on the image. Detectors: boxes
(and masks); panoptic models (Mask2Former): every segment coloured by class,
things outlined and labelled. Pose models (mmpose, top-down): the skeletons
of the people in --bboxes (default: the whole image is one person).
Segmentors: the class map blended over the image. The picture has the
input's size, up to --max-side (1280) pixels on its longest side.
"""
import argparse

from mmvan import cli
from mmvan.cli.image_demo import image_demo


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'checkpoint',
        help='checkpoint: a file, an http(s):// URL or mmvan://<zoo name>')
    parser.add_argument('--out-file', help='where to write the picture')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--topk', type=int, default=5)
    parser.add_argument(
        '--no-deploy',
        action='store_true',
        help='run the model as trained instead of the folded one')
    parser.add_argument(
        '--score-thr', type=float, default=0.3, help='boxes to draw')
    parser.add_argument(
        '--bboxes',
        type=float,
        nargs='+',
        help='pose models: person boxes x1 y1 x2 y2 [x1 y1 x2 y2 ...] '
        '(default: the whole image)')
    parser.add_argument(
        '--max-side',
        type=int,
        default=1280,
        help='longest side of the picture (larger inputs are drawn on a '
        'scaled copy)')
    return parser.parse_args(argv)


def main(argv=None):
    return image_demo(**vars(parse_args(argv)))


if __name__ == '__main__':
    cli.run_cli(main)
