# Copyright (c) mmvan contributors. All rights reserved.
"""Parameters and FLOPs of a config's whole model and of its backbone
(mmengine's complexity analysis; a multiply-add counts as one FLOP, as in
the VAN paper).

    python tools/analysis_tools/get_flops.py configs/van/van-b2_8xb128_in1k.py
    python tools/analysis_tools/get_flops.py CONFIG --shape 512 512
"""
import argparse
import os.path as osp
import sys
import warnings

import torch

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
warnings.filterwarnings('ignore')

from mmvan.utils import cli  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('config')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=None,
        help='input H W (default: 224 224 for classifiers, 512 512 for '
        'segmentors, 800 1333 for detectors)')
    return parser.parse_args(argv)


class _Features(torch.nn.Module):
    """Backbone, neck and dense heads run on a tensor (what the complexity
    analysis can trace for detectors and segmentors)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        if hasattr(self.model, '_forward'):
            return self.model._forward(x)
        return self.model(x)


def complexity(config, shape=None):
    """Return a dict with params and FLOPs of the model and its backbone."""
    from mmengine.analysis import get_model_complexity_info
    from mmengine.registry import MODELS, DefaultScope, init_default_scope
    cfg = cli.load_config(config)
    scope = cfg.get('default_scope', 'mmpretrain')
    init_default_scope(scope)
    cli.sync_bn_to_bn(cfg.model)
    cfg.model.backbone.pop('init_cfg', None)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
    model.eval()
    if shape is None:
        shape = {
            'mmpretrain': (224, 224),
            'mmseg': (512, 512),
            'mmdet': (800, 1333)
        }.get(scope, (224, 224))
    if len(shape) == 1:
        shape = (shape[0], shape[0])
    inputs = (torch.rand(1, 3, *shape), )
    whole = get_model_complexity_info(
        _Features(model), inputs=inputs, show_table=False, show_arch=False)
    backbone = get_model_complexity_info(
        model.backbone, inputs=inputs, show_table=False, show_arch=False)
    return dict(
        shape=tuple(shape),
        params=sum(p.numel() for p in model.parameters()),
        flops=whole['flops'],
        backbone_params=sum(p.numel() for p in model.backbone.parameters()),
        backbone_flops=backbone['flops'])


def main(argv=None):
    args = parse_args(argv)
    info = complexity(args.config, args.shape)
    h, w = info['shape']
    print(f'{args.config} at {h}x{w}')
    print(f'  model:    {info["params"] / 1e6:8.2f} M params  '
          f'{info["flops"] / 1e9:8.2f} GFLOPs')
    print(f'  backbone: {info["backbone_params"] / 1e6:8.2f} M params  '
          f'{info["backbone_flops"] / 1e9:8.2f} GFLOPs')
    return info


if __name__ == '__main__':
    cli.run_cli(main)
