# Copyright (c) mmvan contributors. All rights reserved.
"""Evaluate the model zoo's released weights against their metafile results.

    python tools/analysis_tools/validate_zoo.py --data-root data/imagenet
    python tools/analysis_tools/validate_zoo.py --data-root data/imagenet \\
        --models 'van-b[0-3]_3rdparty*' --tolerance 0.2

Every zoo model matching ``--models`` whose data set is present is tested
with its config (weights fetched from the zoo and folded, as
``tools/test.py`` does) and its primary metric is compared with the
metafile's. Models whose data is absent, or whose weights cannot be fetched,
are listed as skipped with the reason. The table is printed and written to
``<out-dir>/validate_zoo.json`` and ``.md``; the logs of each model go to
``<out-dir>/<name>/``. The exit status is 1 when a model fails.

``--backend onnxruntime|openvino [--precision bf16|int8]`` tests the
exported models instead (as ``tools/test.py --backend`` does); a reduced
precision also reports its top-1 agreement with fp32.
"""
import argparse
import sys

from mmvan import cli
from mmvan.analysis.zoo_validation import validate_zoo


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        '--data-root', help='ImageNet-1k (train/ val/ meta/ as in mmpretrain)')
    parser.add_argument('--ade20k-root', help='ADEChallengeData2016')
    parser.add_argument('--coco-root', help='COCO 2017')
    parser.add_argument(
        '--models',
        help='wildcard pattern of zoo names (default: every model)')
    parser.add_argument(
        '--tolerance',
        type=float,
        default=0.2,
        help='largest |measured - expected| that passes, in the metric\'s '
        'unit (points of top-1 / mIoU / AP); default 0.2')
    parser.add_argument(
        '--out-dir',
        default='work_dirs/validate_zoo',
        help='where the table and the logs go')
    parser.add_argument(
        '--metafile',
        help='another model index or metafile (default: model-index.yml)')
    parser.add_argument('--batch-size', type=int, help='test batch size')
    parser.add_argument(
        '--num-workers', type=int, help='test data loader workers')
    parser.add_argument(
        '--backend',
        choices=['pytorch', 'auto', 'onnxruntime', 'openvino'],
        default='pytorch',
        help='runtime that runs the models (default: folded PyTorch)')
    parser.add_argument(
        '--precision',
        choices=['fp32', 'bf16', 'int8'],
        default='fp32',
        help='bf16: openvino or pytorch; int8: onnxruntime')
    return parser.parse_args(argv)


def main(argv=None):
    return validate_zoo(**vars(parse_args(argv)))


if __name__ == '__main__':
    sys.exit(cli.run_cli(main) or 0)
