# Copyright (c) mmvan contributors. All rights reserved.
"""`make demo`: train a VAN model on a small generated data set on the CPU and
show that it learns.

    python tools/demo.py                 # classification (make demo)
    python tools/demo.py --task det      # RetinaNet on COCO-format shapes
    python tools/demo.py --task det \
        --config configs/mask_rcnn/mask-rcnn_van-b0_fpn_demo.py
    python tools/demo.py --task seg      # Semantic FPN on ADE20K-format shapes
    python tools/demo.py --task pano     # Mask2Former, COCO-panoptic shapes
    python tools/demo.py --task pose     # SimpleBaseline, COCO-format figures
    python tools/demo.py --task cub      # CUB-200 recipe, CUB-layout "birds"
    python tools/demo.py --task det \
        --config configs/atss/...        # any detector: model from CONFIG

Makes the data (deterministic), evaluates the untrained model, trains with
tools/train.py, evaluates the best checkpoint with tools/test.py and prints
both figures and where the outputs are. The console shows each step's
command and a short run (``--verbose``: mmengine's full output); the logs in
the work dir have everything.
"""
import argparse
import os.path as osp

from mmvan import cli
from mmvan.cli.demo import TASKS, run_demo

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('--task', default='cls', choices=sorted(TASKS))
    parser.add_argument('--config', help='another demo config of the task')
    parser.add_argument('--work-dir', help='default: work_dirs/<config>')
    parser.add_argument(
        '--epochs',
        type=int,
        default=None,
        help='override the epochs (iterations for seg and pano)')
    parser.add_argument(
        '--verbose',
        action='store_true',
        help="mmengine's full console output in training and testing")
    return parser.parse_args()


def main():
    run_demo(ROOT, **vars(parse_args()))


if __name__ == '__main__':
    cli.run_cli(main)
