# Copyright (c) mmvan contributors. All rights reserved.
"""The residual add of a VAN block with its layer scale and stochastic
depth as one element-wise operation.

A block's sub-block ends in ``x + drop_path(y * layer_scale)``. Run as
written, that is up to four element-wise kernels in the forward pass (the
scale, the division by the keep probability, the per-sample mask, the add),
which read and write 9 tensors the size of ``x``, and more in the backward
pass. The layer scale and the mask are both broadcast factors: their
product is a small ``(N, C, 1, 1)`` tensor, so the whole epilogue is
``torch.addcmul(x, y, scale)``, one kernel that reads ``x`` and ``y`` and
writes the sum.

The random mask is drawn as :func:`mmcv.cnn.bricks.drop.drop_path` draws
it (one ``torch.rand`` of shape ``(N, 1, 1, 1)`` in ``y``'s dtype), so a run
keeps the random stream, and so the dropped samples, of the unfused block;
the results equal the unfused operations up to float rounding (the
factors are multiplied together first).
"""
import torch

__all__ = ['scaled_residual']


def scaled_residual(x, y, layer_scale=None, drop_prob=0., training=False):
    """``x + drop_path(y * layer_scale)`` in one element-wise operation.

    Args:
        x (Tensor): The shortcut, ``(N, C, H, W)``.
        y (Tensor): The sub-block's output, shaped like ``x``.
        layer_scale (Tensor, optional): ``(C,)`` or ``(C, 1, 1)``; None
            scales by one.
        drop_prob (float): Stochastic depth: the probability that a
            sample's ``y`` is dropped (the kept ones are divided by the keep
            probability). Defaults to 0.
        training (bool): Whether stochastic depth is active. Defaults to
            False.

    Returns:
        Tensor: in the dtype ``x + y`` has (under autocast a bfloat16 or
        float16 ``y`` keeps a stream of its dtype in it).
    """
    scale = None
    if layer_scale is not None:
        scale = layer_scale.reshape(1, -1, 1, 1)
    if drop_prob > 0. and training:
        keep = 1 - drop_prob
        shape = (y.shape[0], ) + (1, ) * (y.dim() - 1)
        # The draw of mmcv's drop_path: same shape, dtype and device.
        mask = (keep + torch.rand(shape, dtype=y.dtype, device=y.device))
        mask = mask.floor_().to(scale.dtype if scale is not None else y.dtype)
        mask = mask / keep
        scale = mask if scale is None else scale * mask
    if scale is None:
        return x + y
    # In y's dtype: under autocast an fp32 layer scale would otherwise turn
    # the residual stream back to fp32.
    return torch.addcmul(x, y, scale.to(y.dtype))
