# Copyright (c) mmvan contributors. All rights reserved.
"""Folding BatchNorms and per-channel scales into convolutions.

In eval mode a BatchNorm is the affine map ``x * scale + shift`` with
``scale = weight / sqrt(running_var + eps)`` and
``shift = bias - running_mean * scale``. A convolution before or after it
can absorb that map, and a per-channel multiplier (a layer scale) too, so
the folded model computes the same function with fewer operations.
"""
import contextlib

import torch
from torch.nn.modules.batchnorm import _BatchNorm


def bn_affine(bn):
    """Return ``(scale, shift)`` with ``bn(x) == x * scale + shift`` in eval
    mode.

    Args:
        bn (nn.BatchNorm2d): The norm layer (its running statistics).

    Returns:
        tuple[Tensor, Tensor]: Per-channel scale and shift.
    """
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    return scale, shift


@torch.no_grad()
def fold_bn_into_next_conv(bn, conv):
    """Make the 1x1 ``conv`` compute ``conv(bn(x))``, in place.

    Args:
        bn (nn.BatchNorm2d): The norm in front of ``conv``.
        conv (nn.Conv2d): A point-wise convolution with a bias.
    """
    scale, shift = bn_affine(bn)
    w = conv.weight
    conv.bias.add_(w[:, :, 0, 0] @ shift)
    w.mul_(scale.view(1, -1, 1, 1))


@torch.no_grad()
def fold_bn_into_prev_conv(conv, bn):
    """Make ``conv`` compute ``bn(conv(x))``, in place.

    Args:
        conv (nn.Conv2d): Any convolution with a bias.
        bn (nn.BatchNorm2d): The norm behind ``conv``.
    """
    scale, shift = bn_affine(bn)
    conv.weight.mul_(scale.view(-1, 1, 1, 1))
    conv.bias.mul_(scale).add_(shift)


@torch.no_grad()
def scale_conv_output(conv, scale):
    """Make ``conv`` compute ``conv(x) * scale`` (per output channel), in
    place.

    Args:
        conv (nn.Conv2d): Any convolution with a bias.
        scale (Tensor): One factor per output channel.
    """
    conv.weight.mul_(scale.view(-1, 1, 1, 1))
    conv.bias.mul_(scale)


@contextlib.contextmanager
def frozen_bn_statistics(module):
    """Let train-mode BatchNorms in ``module`` normalise with the batch
    statistics without changing their running statistics.

    Activation checkpointing runs a block's forward twice; without this the
    recomputation would update every running mean, variance and batch count
    a second time. A momentum of 0 keeps the running values; the batch count
    is put back on exit.

    Args:
        module (nn.Module): The module whose BatchNorms are frozen.
    """
    bns = [
        m for m in module.modules()
        if isinstance(m, _BatchNorm) and m.track_running_stats
    ]
    saved = [(m.momentum, None if m.num_batches_tracked is None else
              m.num_batches_tracked.clone()) for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, count) in zip(bns, saved):
            m.momentum = momentum
            if count is not None:
                m.num_batches_tracked.copy_(count)
