# Copyright (c) mmvan contributors. All rights reserved.
"""Robustness of an ImageNet-1k classifier: ImageNet-C, -A, -R, -Sketch
and the cue-conflict shape bias.

    python tools/analysis_tools/robustness.py \
        configs/van/van-lska-b0_8xb128_in1k.py CKPT \
        --benchmark imagenet-c --data-root data/imagenet-c [--clean-acc 75.4]

- ``imagenet-c``: top-1 error per corruption and severity, the corruption
  error normalised by AlexNet's published errors (CE), mCE over the 15
  standard corruptions and over all 19 (as the LSKA paper reports it), and
  the relative CE / mCE when ``--clean-acc`` (top-1 %) is given. Every
  ``<corruption>/<severity>`` folder present is evaluated.
- ``imagenet-a`` / ``imagenet-r``: top-1 on the 200-class subsets, the
  1000-way logits restricted to the subset's classes.
- ``imagenet-sketch``: top-1 over the 1000 classes.
- ``cue-conflict``: Geirhos et al.'s stimuli
  (``<root>/<shape>/<shape>N-<texture>M.png``), 16-category decisions and
  the shape bias.

Images are labelled by their WordNet-id folders (a partial copy is scored
correctly). The data sets are described in ``configs/_base_/datasets/``
(layout, download, test pipeline); the results are printed as a table and
written as JSON (``--out``).
"""
import argparse

from mmengine.config import DictAction

from mmvan import cli
from mmvan.analysis.robustness import BENCHMARKS, run_benchmark


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='an ImageNet-1k classifier config')
    parser.add_argument('checkpoint', help='path, URL or mmvan:// name')
    parser.add_argument('--benchmark', required=True, choices=BENCHMARKS)
    parser.add_argument(
        '--data-root',
        help='the benchmark\'s folder (default: the dataset config\'s)')
    parser.add_argument(
        '--dataset-config',
        help='default: configs/_base_/datasets/<benchmark>.py (cue-conflict:'
        ' the model config\'s test pipeline)')
    parser.add_argument(
        '--clean-acc',
        type=float,
        help='ImageNet-C: the model\'s clean top-1 accuracy in %% (for the '
        'relative mCE)')
    parser.add_argument(
        '--corruptions', nargs='+', help='ImageNet-C: only these')
    parser.add_argument(
        '--severities', type=int, nargs='+', help='ImageNet-C: only these')
    parser.add_argument('--batch-size', type=int, default=None)
    parser.add_argument('--num-workers', type=int, default=None)
    parser.add_argument(
        '--out',
        help='JSON file (default: work_dirs/robustness/'
        '<config>_<benchmark>.json)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--no-deploy',
        action='store_true',
        help='run the model unfolded (as trained)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the model config')
    return parser.parse_args(argv)


def main(argv=None):
    return run_benchmark(**vars(parse_args(argv)))


if __name__ == '__main__':
    cli.run_cli(main)
