# Copyright (c) mmvan contributors. All rights reserved.
"""Grad-CAM of mmvan models, as mmpretrain's ``vis_cam.py``.

    python tools/analysis_tools/vis_cam.py demo/cat.jpg \
        configs/van/van-b0_8xb128_in1k.py mmvan://van-b0_3rdparty_in1k \
        --save-path cam.png

One panel per stage by default: the CAM of the last block of each of
``--stages`` (or of each of ``--target-layers``, any module names;
``--preview-model`` lists them), overlaid on the image as the test pipeline
prepares it. A classifier's target is the predicted class (or
``--target-category``); a detector's or segmentor's backbone is explained
through the norm of its pooled last-stage features. ``IMG`` may be a folder:
``--save-path`` is then a folder with one PNG per image. Methods are those
of the grad-cam package (GradCAM, GradCAM++, XGradCAM, EigenCAM, ...).
"""
import argparse

from mmengine.config import DictAction

from mmvan import cli
from mmvan.analysis.cam import visualize_cams


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('img', help='an image file or a folder of images')
    parser.add_argument('config')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='path, URL or mmvan:// name '
        '(default: random weights)')
    parser.add_argument(
        '--target-layers',
        nargs='+',
        default=[],
        help='module names (default: the last block of each of --stages)')
    parser.add_argument('--stages', type=int, nargs='+', default=[0, 1, 2, 3])
    parser.add_argument(
        '--preview-model',
        action='store_true',
        help='list the module names and exit')
    parser.add_argument('--method', default='GradCAM')
    parser.add_argument(
        '--target-category',
        type=int,
        default=None,
        help='class index (default: the predicted class)')
    parser.add_argument('--eigen-smooth', action='store_true')
    parser.add_argument('--aug-smooth', action='store_true')
    parser.add_argument(
        '--save-path', help='PNG to write (a folder when IMG is a folder)')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        help='detectors / segmentors: resize to H W (default: keep size)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def main(argv=None):
    return visualize_cams(**vars(parse_args(argv)))


if __name__ == '__main__':
    cli.run_cli(main)
