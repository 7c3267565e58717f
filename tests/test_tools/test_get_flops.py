# Copyright (c) mmvan contributors. All rights reserved.
"""tools/analysis_tools/get_flops.py on every task family: the paper's
detector and pose FLOPs (multiply-adds; two-stage detectors as mmdet 2's
forward_dummy counted them) and a number for Mask2Former."""
import os.path as osp

import pytest

from mmvan.analysis.flops import complexity

# Paper, Table 11 (VAN-b2, 36 epochs; FLOPs at 1280x800) and Table 15
# (SimpleBaseline, VAN-b2): params (M), GFLOPs and the default input (H, W).
# Params within 3 % where the paper rounds to whole millions, 2 %
# otherwise; FLOPs within 2 %.
PAPER = {
    'cascade_rcnn/cascade-mask-rcnn_van-b2_fpn_ms-3x_coco.py':
    (84, 752, (800, 1280)),
    'mask_rcnn/mask-rcnn_van-b2_fpn_ms-3x_coco.py': (46, 273, (800, 1280)),
    'atss/atss_van-b2_fpn_ms-3x_coco.py': (34, 221, (800, 1280)),
    'gfl/gfl_van-b2_fpn_ms-3x_coco.py': (34, 224, (800, 1280)),
    'simplebaseline/td-hm_van-b2_8xb64-210e_coco-256x192.py':
    (30.3, 6.1, (256, 192)),
    'simplebaseline/td-hm_van-b2_8xb64-210e_coco-384x288.py':
    (30.3, 13.6, (384, 288)),
}


@pytest.mark.parametrize('rel', sorted(PAPER))
def test_get_flops_matches_the_paper(rel, root, tool, capsys):
    params, gflops, (h, w) = PAPER[rel]
    info = tool('get_flops').main([osp.join(root, 'configs', rel)])
    out = capsys.readouterr().out
    pose = rel.startswith('simplebaseline')
    # Defaults: the paper's 1280x800 for detectors, the codec's input size
    # for pose models.
    assert info['shape'] == (h, w)
    assert info['device'] == 'meta'
    assert info['params'] / 1e6 == pytest.approx(
        params, rel=0.02 if pose else 0.03)
    assert info['flops'] / 1e9 == pytest.approx(gflops, rel=0.02)
    assert 0 < info['backbone_flops'] < info['flops']
    assert f'at {h}x{w} (HxW)' in out
    assert 'multiply-adds' in out
    if 'rcnn' in rel:
        assert info['family'] == 'two-stage'
        assert '1000 proposals' in out and '100 RoIs' in out
    else:
        assert info['family'] == ('pose' if pose else 'det')
        assert 'proposals' not in out


@pytest.mark.slow
def test_get_flops_mask2former_gives_a_number(root, tool, capsys):
    # Its deformable attention reads the feature sizes from a tensor: not
    # on the meta device, so it is counted on the CPU (at a small size
    # here; 1024x1024 by default).
    info = tool('get_flops').main([
        osp.join(root, 'configs', 'mask2former',
                 'mask2former_van-b2_8xb2-lsj-50e_coco-panoptic.py'),
        '--shape', '256', '256'
    ])
    assert info['family'] == 'panoptic'
    assert info['device'] == 'cpu'
    assert info['params'] / 1e6 == pytest.approx(45.87, abs=0.01)
    # The backbone alone: VAN-b2's 5.0 G at 224 scaled to 256x256.
    assert info['backbone_flops'] / 1e9 == pytest.approx(
        5.0 * (256 / 224)**2, rel=0.03)
    assert info['flops'] > 2 * info['backbone_flops']
    assert 'counted on cpu' in capsys.readouterr().out


def test_get_flops_cpu_counts_as_meta(root):
    path = osp.join(root, 'configs', 'simplebaseline',
                    'td-hm_van-tiny_demo.py')
    meta = complexity(path)
    cpu = complexity(path, device='cpu')
    assert meta['shape'] == (128, 96)
    assert cpu['device'] == 'cpu' and meta['device'] == 'meta'
    for key in ('params', 'flops', 'backbone_params', 'backbone_flops'):
        assert cpu[key] == meta[key]
