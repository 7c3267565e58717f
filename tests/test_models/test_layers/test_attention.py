# Copyright (c) mmvan contributors. All rights reserved.
import pytest
import torch
import torch.nn.functional as F

from mmvan.models.layers import LKA, LSKA, LSKA_KERNELS, decompose_kernel


def receptive_field(a, b, d):
    return a + d * (b - 1)


def test_released_decompositions():
    assert LSKA_KERNELS == {
        7: (3, 3, 2),
        11: (3, 5, 2),
        23: (5, 7, 3),
        35: (5, 11, 3),
        41: (5, 13, 3),
        53: (5, 17, 3)
    }
    # VAN's "21x21" kernel is LSKA's 23: the same convolutions.
    assert decompose_kernel(21) == decompose_kernel(23) == (5, 7, 3)
    assert receptive_field(*decompose_kernel(21)) == 23
    for k, decomposition in LSKA_KERNELS.items():
        # LSKA names a decomposition by the pixels it covers.
        assert receptive_field(*decomposition) == k


def test_lka_general_rule():
    # Odd kernels outside the released table: a = 2d - 1, b = ceil(k/d)
    # rounded up to odd.
    assert decompose_kernel(9) == (3, 5, 2)
    assert decompose_kernel(29) == (5, 11, 3)
    for k in (8, 5, -3, 22.5):
        with pytest.raises(ValueError, match='kernel_size'):
            decompose_kernel(k)


def test_lka_structure_and_output():
    torch.manual_seed(0)
    lka = LKA(8).eval()
    assert lka.conv0.kernel_size == (5, 5) and lka.conv0.groups == 8
    assert lka.conv_spatial.kernel_size == (7, 7)
    assert lka.conv_spatial.dilation == (3, 3)
    assert lka.conv_spatial.padding == (9, 9)
    assert lka.conv1.kernel_size == (1, 1)
    x = torch.randn(2, 8, 13, 11)
    attn = F.conv2d(x, lka.conv0.weight, lka.conv0.bias, padding=2, groups=8)
    attn = F.conv2d(
        attn,
        lka.conv_spatial.weight,
        lka.conv_spatial.bias,
        padding=9,
        dilation=3,
        groups=8)
    attn = F.conv2d(attn, lka.conv1.weight, lka.conv1.bias)
    # x * attn, no sigmoid
    torch.testing.assert_close(lka(x), x * attn)


@pytest.mark.parametrize('k', sorted(LSKA_KERNELS))
def test_lska_every_kernel(k):
    a, b, d = LSKA_KERNELS[k]
    m = LSKA(6, kernel_size=k).eval()
    assert m.conv0h.kernel_size == (1, a) and m.conv0v.kernel_size == (a, 1)
    assert m.conv_spatial_h.kernel_size == (1, b)
    assert m.conv_spatial_v.kernel_size == (b, 1)
    assert m.conv_spatial_h.dilation[1] == d
    assert m.conv_spatial_v.dilation[0] == d
    assert m.conv_spatial_v.padding == (d * (b - 1) // 2, 0)
    x = torch.randn(1, 6, 9, 14)
    assert m(x).shape == x.shape
    # Separable: with the depth-wise biases at zero, LSKA equals LKA with
    # rank-1 kernels, borders included.
    lka = LKA(6, kernel_size=k).eval()
    with torch.no_grad():
        for conv in (m.conv0h, m.conv0v, m.conv_spatial_h, m.conv_spatial_v,
                     lka.conv0, lka.conv_spatial):
            conv.bias.zero_()
        lka.conv0.weight.copy_(m.conv0v.weight * m.conv0h.weight)
        lka.conv_spatial.weight.copy_(m.conv_spatial_v.weight *
                                      m.conv_spatial_h.weight)
        lka.conv1.load_state_dict(m.conv1.state_dict())
    torch.testing.assert_close(lka(x), m(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('k', [5, 9, 21, 25, 100])
def test_lska_bad_kernel(k):
    with pytest.raises(ValueError, match=r'supported sizes are \[7, 11, 23'):
        LSKA(4, kernel_size=k)


def test_undilate_is_exact_and_cpu_only():
    import torch.nn as nn

    from mmvan.models.layers import undilate_
    conv = nn.Conv2d(4, 4, 7, padding=9, dilation=3, groups=4)
    x = torch.randn(2, 4, 23, 17)
    with torch.no_grad():
        ref = conv(x)
        assert undilate_(conv)
        assert conv.dilation == (1, 1) and conv.kernel_size == (19, 19)
        torch.testing.assert_close(conv(x), ref, atol=1e-5, rtol=1e-5)
    big = nn.Conv2d(4, 4, 17, padding=24, dilation=3, groups=4)
    assert not undilate_(big)  # 49x49 stuffed taps: kept dilated
    with torch.device('meta'):
        meta = nn.Conv2d(4, 4, 7, padding=9, dilation=3, groups=4)
    assert not undilate_(meta)  # not a CPU tensor
