# Copyright (c) mmvan contributors. All rights reserved.
"""Which op the MLP's depth-wise convolution and GELU go to."""
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

from mmvan.models.layers import conv_impl


@pytest.mark.parametrize('channels_last', [False, True])
def test_mlp_hidden_routing_follows_the_layout(channels_last):
    """Both layouts run the fused op (which has kernels for each
    layout), not the depth-wise kernel and GELU apart."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(6, 6, 3, padding=1, groups=6)
    x = torch.randn(2, 6, 5, 7)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    calls = []

    def record(name, fn):

        def wrapped(*args, **kwargs):
            calls.append(name)
            return fn(*args, **kwargs)

        return wrapped

    with mock.patch.object(conv_impl, 'dwconv_gelu',
                           record('fused', conv_impl.dwconv_gelu)), \
            mock.patch.object(conv_impl, 'depthwise_conv2d',
                              record('depthwise',
                                     conv_impl.depthwise_conv2d)):
        with torch.no_grad():
            y = conv_impl.triton_depthwise_gelu(conv, x)
    assert calls == ['fused']
    with torch.no_grad():
        torch.testing.assert_close(y, F.gelu(conv(x)))
