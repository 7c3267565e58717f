# Copyright (c) mmvan contributors. All rights reserved.
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip('pytorch_grad_cam')


@pytest.fixture(scope='module')
def demo_config(tiny):
    """The 5-class demo classifier (64 x 64 test crops) with a tiny VAN."""
    return tiny(base='van-b0_demo.py')


def manual_grad_cam(model, inputs, layer, category, channels_last=False):
    """Grad-CAM by its definition: channel weights are the spatial means of
    the class score's gradient; the map is the ReLU of the weighted sum of
    the activations, min-max scaled, resized to the input (bilinear) and
    min-max scaled again (grad-cam's convention)."""
    import cv2
    store = {}

    def hook(module, args, output):
        output.retain_grad()
        store['a'] = output

    handle = layer.register_forward_hook(hook)
    try:
        logits = model(inputs, mode='tensor')
        logits[0, category].backward()
    finally:
        handle.remove()
    a, g = store['a'], store['a'].grad
    if channels_last:
        a, g = a.permute(0, 3, 1, 2), g.permute(0, 3, 1, 2)
    weights = g.mean((2, 3), keepdim=True)
    cam = torch.relu((weights * a).sum(1))[0].detach().numpy()
    cam = cam - cam.min()
    cam = cam / (1e-7 + cam.max())
    h, w = inputs.shape[-2:]
    cam = cv2.resize(cam, (w, h))
    cam = cam - cam.min()
    return cam / (1e-7 + cam.max()), int(logits[0].argmax())


def test_vis_cam_overlays_a_real_image(tmp_path, tool, root, demo_config):
    out = tmp_path / 'cam.png'
    vis_cam = tool('vis_cam')
    results = vis_cam.main([
        osp.join(root, 'demo', 'cat.jpg'), demo_config, '--save-path',
        str(out)
    ])
    assert out.is_file()
    with Image.open(out) as png:
        assert png.size[0] > 2 * png.size[1]  # input + 4 stage panels
    (res, ) = results
    assert sorted(res['maps']) == [
        'backbone.block1.0', 'backbone.block2.0', 'backbone.block3.0',
        'backbone.block4.0'
    ]
    for cam_map in res['maps'].values():
        assert cam_map.shape == (64, 64)  # the demo test pipeline's crop
        assert np.isfinite(cam_map).all()
        assert 0 <= cam_map.min() and cam_map.max() <= 1
    assert 0 <= res['category'] < 5 and 0 < res['score'] <= 1


@pytest.mark.parametrize('layer_name,channels_last',
                         [('backbone.block4.0', False),
                          ('backbone.norm3', True)])
def test_grad_cam_matches_its_definition(root, demo_config, layer_name,
                                         channels_last):
    from mmvan.analysis.cam import compute_cams, prepare
    from mmvan.analysis.common import random_init
    from mmvan.apis import init_model, load_image
    model = random_init(init_model(demo_config, deploy=False))
    inputs, shown = prepare(model,
                            load_image(osp.join(root, 'demo', 'cat.jpg')))
    assert shown.shape == (64, 64, 3) and inputs.shape == (1, 3, 64, 64)
    for category in (None, 3):
        maps, logits = compute_cams(
            model, inputs, [layer_name], target_category=category)
        layer = dict(model.named_modules())[layer_name]
        target = int(logits[0].argmax()) if category is None else category
        expected, predicted = manual_grad_cam(model, inputs, layer, target,
                                              channels_last)
        assert predicted == int(logits[0].argmax())
        np.testing.assert_allclose(maps[layer_name], expected, atol=1e-4)


def test_grad_cam_of_a_backbone(tmp_path, tool, root):
    # A segmentor: no class score, the pooled features' norm is explained.
    out = tmp_path / 'seg.png'
    (res, ) = tool('vis_cam').main([
        osp.join(root, 'demo', 'cat.jpg'),
        osp.join(root, 'configs', 'sem_fpn', 'fpn_van-b0_demo.py'), '--stages',
        '3', '--shape', '64', '96', '--save-path',
        str(out)
    ])
    assert out.is_file() and res['category'] is None
    (cam_map, ) = res['maps'].values()
    assert cam_map.shape == (64, 96) and np.isfinite(cam_map).all()
