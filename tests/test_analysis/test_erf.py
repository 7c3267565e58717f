# Copyright (c) mmvan contributors. All rights reserved.
import json

import numpy as np
import pytest
import torch

from mmvan.analysis.common import random_init
from mmvan.analysis.erf import (area_ratios, central_input_gradient,
                                effective_receptive_field, log_scaled)
from mmvan.models import VAN


def test_area_ratios_by_hand():
    data = np.zeros((9, 9))
    data[4, 4] = 6.0  # the centre
    data[3:6, 3:6] += 1.0  # the 3 x 3 around it (9 in all, 15 with it)
    data[0, 0] = 5.0  # a corner: total 20
    out = area_ratios(data, (0.2, 0.3, 0.5, 0.74, 0.76, 0.99))
    # The centre alone holds 7/20 = 0.35; the 3 x 3 square 15/20 = 0.75;
    # only the whole 9 x 9 image reaches the corner.
    assert out[0.2] == dict(side=1, ratio=pytest.approx(1 / 81))
    assert out[0.3]['side'] == 1
    assert out[0.5] == dict(side=3, ratio=pytest.approx(9 / 81))
    assert out[0.74]['side'] == 3
    assert out[0.76] == dict(side=9, ratio=pytest.approx(1.0))
    assert out[0.99]['ratio'] == pytest.approx(1.0)


def test_log_scaled():
    out = log_scaled(np.array([[0., 9.], [99., 999.]]))
    np.testing.assert_allclose(out, [[0, 1 / 3], [2 / 3, 1]])


def test_central_gradient_of_a_convolution():
    # One 3 x 3 convolution of ones: the centre output depends on the 3 x 3
    # input pixels around it, each with weight 1 per channel.
    conv = torch.nn.Conv2d(2, 1, 3, padding=1, bias=False)
    torch.nn.init.ones_(conv.weight)
    x = torch.rand(1, 2, 7, 7)
    grad = central_input_gradient(lambda t: (conv(t), ), x)[0]
    expected = torch.zeros(7, 7)
    expected[2:5, 2:5] = 2.0  # two input channels
    torch.testing.assert_close(grad, expected)


def _erf_ratios(arch, attention, k, images):
    model = random_init(VAN(arch=arch, attention=attention, kernel_size=k))
    scores, count = effective_receptive_field(model, images)
    assert count == len(images)
    assert model.out_indices == (3, )  # restored
    assert np.isfinite(scores).all() and scores.max() > 0
    return area_ratios(log_scaled(scores))


def test_erf_grows_with_kernel_size(tiny_arch):
    # The last stage has stride 32: at 512 x 512 its k x k kernel spans
    # 32 k pixels, inside the image for k = 7 and 11, the whole image from
    # k = 21 on (larger k need larger inputs, e.g. 2048 for k = 53).
    torch.manual_seed(1)
    images = [torch.randn(1, 3, 512, 512)]
    ratios = {
        (a, k): _erf_ratios(tiny_arch, a, k, images)[0.99]['ratio']
        for a, k in [('lska', 7), ('lska', 11), ('lka', 21), ('lska', 23)]
    }
    assert ratios['lska', 7] < ratios['lska', 11] < ratios['lska', 23]
    assert ratios['lska', 11] < ratios['lka', 21]
    assert ratios['lska', 23] > 0.8


def test_erf_tool(tmp_path, tool, tiny, demo_images):
    out = tmp_path / 'erf.png'
    results = tool('erf').main([
        tiny('lka'),
        tiny('lska'), '--kernel-size', '21', '53', '--data', demo_images,
        '--num-images', '2', '--shape', '128', '--out-file',
        str(out)
    ])
    assert out.stat().st_size > 1000
    saved = json.loads((tmp_path / 'erf.json').read_text())
    assert [m['label'] for m in saved['models']] == ['LKA k=21', 'LSKA k=53']
    assert saved['models'][1]['kernel_size'] == 53
    assert saved['shape'] == [128, 128]
    assert saved['data'] == demo_images
    for r in results:
        assert r['num_images'] == 2
        assert np.isfinite(r['map']).all() and r['map'].max() == 1.0
        ratios = [r['area_ratios'][t]['ratio'] for t in (0.2, 0.3, 0.5, 0.99)]
        assert ratios == sorted(ratios) and 0 < ratios[0] <= ratios[-1] <= 1
