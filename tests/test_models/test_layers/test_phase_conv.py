# Copyright (c) mmvan contributors. All rights reserved.
"""Dilated depth-wise convolutions run on their phase grids give the
dilated convolution's outputs and gradients."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmvan.models.layers import LKA, LSKA
from mmvan.models.layers.phase_conv import (dilated_depthwise, phase_merge,
                                            phase_split)


def _layout(x, channels_last):
    return x.contiguous(memory_format=torch.channels_last
                        if channels_last else torch.contiguous_format)


@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('size', [(9, 9), (14, 14), (7, 11), (2, 5)])
def test_split_then_merge_is_the_identity(size, channels_last):
    x = _layout(torch.randn(2, 3, *size), channels_last)
    grids = phase_split(x, 3)
    assert grids.shape == (18, 3, -(-size[0] // 3), -(-size[1] // 3))
    # Grid (i, j) of image 0 holds the pixels at rows i, i+3, ... and
    # columns j, j+3, ...
    assert torch.equal(
        grids[1 * 3 +
              2, :, :len(range(1, size[0], 3)), :len(range(2, size[1], 3))],
        x[0, :, 1::3, 2::3])
    assert torch.equal(phase_merge(grids, 3, size), x)


def _reference(x, weights, dilation):
    """The dilated convolutions as torch computes them."""
    for w, b in weights:
        kh, kw = w.shape[-2:]
        x = F.conv2d(
            x,
            w,
            b,
            padding=(dilation * (kh - 1) // 2, dilation * (kw - 1) // 2),
            dilation=dilation,
            groups=w.shape[0])
    return x


@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('size', [(14, 14), (13, 8), (7, 7), (3, 4)])
@pytest.mark.parametrize('kernels,dilation', [([(7, 7)], 3), ([(5, 5)], 2),
                                              ([(1, 7), (7, 1)], 3),
                                              ([(1, 5), (5, 1)], 2)])
def test_outputs_and_gradients_equal_the_dilated_convolution(
        kernels, dilation, size, channels_last):
    torch.manual_seed(0)
    c = 6
    convs = [
        nn.Conv2d(
            c,
            c,
            k,
            padding=(dilation * (k[0] - 1) // 2, dilation * (k[1] - 1) // 2),
            dilation=dilation,
            groups=c) for k in kernels
    ]
    x = _layout(torch.randn(2, c, *size), channels_last).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    weights = [(conv.weight.detach().clone().requires_grad_(),
                conv.bias.detach().clone().requires_grad_()) for conv in convs]
    out = dilated_depthwise(x, *convs)
    ref = _reference(x_ref, weights, dilation)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    assert out.is_contiguous(memory_format=torch.channels_last
                             if channels_last else torch.contiguous_format)
    grad = torch.randn_like(ref)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-5)
    # A weight's gradient sums over every pixel, in another order.
    for conv, (w, b) in zip(convs, weights):
        torch.testing.assert_close(
            conv.weight.grad, w.grad, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(
            conv.bias.grad, b.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('module,kernel', [(LKA, 21), (LKA, 35), (LKA, 11),
                                           (LSKA, 23), (LSKA, 53), (LSKA, 7)])
def test_attention_modules_equal_their_plain_convolutions(module, kernel):
    """LKA / LSKA on CPU against the same weights run as plain dilated
    convolutions (the path taken on other devices)."""
    torch.manual_seed(0)
    attn = module(8, kernel_size=kernel)
    x = torch.randn(2, 8, 15, 12)
    with torch.no_grad():
        expected = x.clone()
        names = ['conv0'] if module is LKA else ['conv0h', 'conv0v']
        names += (['conv_spatial'] if module is LKA else
                  ['conv_spatial_h', 'conv_spatial_v']) + ['conv1']
        attn_plain = copy.deepcopy(attn)
        for name in names:
            expected = F.conv2d(
                expected,
                *[
                    getattr(getattr(attn_plain, name), k)
                    for k in ('weight', 'bias')
                ],
                padding=getattr(attn_plain, name).padding,
                dilation=getattr(attn_plain, name).dilation,
                groups=getattr(attn_plain, name).groups)
        expected = x * expected
    torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(
            attn.fused_forward(x), expected, rtol=1e-5, atol=1e-5)


def test_traced_graph_keeps_the_dilated_convolution():
    """An exported graph has one dilated convolution, not the split."""
    attn = LKA(4).eval()
    graph = torch.jit.trace(attn, torch.randn(1, 4, 12, 12)).inlined_graph
    kinds = [node.kind() for node in graph.nodes()]
    assert kinds.count('aten::_convolution') == 3
    assert not any('permute' in kind for kind in kinds)


def test_flops_are_counted_on_the_convolutions_as_defined():
    """Inside ``plain_dilated_convolutions`` an operator-level FLOP counter
    sees LKA's convolutions as defined: multiply-adds by hand."""
    from torch.utils.flop_counter import FlopCounterMode

    from mmvan.models.layers.phase_conv import plain_dilated_convolutions
    c, h, w = 8, 14, 10
    attn = LKA(c)  # 5x5, 7x7 dilation 3, 1x1
    expected = c * h * w * (25 + 49 + c)
    x = torch.randn(1, c, h, w)
    with FlopCounterMode(display=False) as counter, torch.no_grad(), \
            plain_dilated_convolutions():
        attn.attention(x)
    assert counter.get_total_flops() == 2 * expected
    # Outside it, the grids (padded to 15 x 12) are what runs.
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        attn.attention(x)
    assert counter.get_total_flops() == 2 * c * (
        h * w * (25 + c) + 15 * 12 * 49)


def test_a_module_put_in_place_of_the_dilated_convolution_runs_as_is():
    """Ablations replace ``conv_spatial`` (e.g. by ``nn.Identity``): LKA
    then runs what it holds."""
    attn = LKA(4)
    attn.conv_spatial = nn.Identity()
    x = torch.randn(1, 4, 9, 9)
    expected = x * attn.conv1(attn.conv0(x))
    torch.testing.assert_close(attn(x), expected)
