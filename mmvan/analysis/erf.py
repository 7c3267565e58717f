# Copyright (c) mmvan contributors. All rights reserved.
"""Effective receptive fields as RepLKNet measures them.

`Ding et al., Scaling Up Your Kernels to 31x31 (CVPR 2022)
<https://arxiv.org/abs/2203.06717>`_: for each image, the contribution
score of an input pixel is the (ReLU of the) gradient of the central pixel
of the last stage's feature map with respect to it, summed over the input
channels; the scores are averaged over the images, scaled by
``log10(x + 1)`` (they differ by orders of magnitude) and divided by their
maximum. The *high-contribution area ratio* at a threshold ``t`` is the
area of the smallest square around the centre whose scores sum to more
than ``t`` of all scores, as a fraction of the image.
"""
import numpy as np
import torch
import torch.nn.functional as F

ERF_THRESHOLDS = (0.2, 0.3, 0.5, 0.99)


def _last_stage(backbone, x):
    outs = backbone(x)
    if isinstance(outs, (tuple, list)):
        return outs[-1]
    return outs


def central_input_gradient(backbone, inputs):
    """Contribution scores of one batch.

    Args:
        backbone (nn.Module): Returns feature maps (a tuple: the last one is
            used).
        inputs (Tensor): ``N x C x H x W`` normalised images.

    Returns:
        Tensor: ``N x H x W``, per image the ReLU of the gradient of the
        (ReLU'd, channel-summed) central feature with respect to the input,
        summed over the input channels.
    """
    x = inputs.detach().clone().requires_grad_(True)
    feat = _last_stage(backbone, x)
    h, w = feat.shape[-2:]
    centre = F.relu(feat[:, :, h // 2, w // 2]).sum()
    grad, = torch.autograd.grad(centre, x)
    return F.relu(grad).sum(1)


def effective_receptive_field(backbone, images, progress=None):
    """Average contribution scores over ``images``.

    The backbone is put in eval mode; a VAN returns its last stage for the
    duration. Images whose scores are not finite are skipped (as RepLKNet
    does).

    Args:
        backbone (nn.Module): The backbone.
        images (Iterable[Tensor]): ``1 x C x H x W`` (or ``N x ...``)
            normalised inputs of one size.
        progress (callable, optional): Called once per batch.

    Returns:
        tuple[np.ndarray, int]: The ``H x W`` mean scores (float64) and the
        number of images averaged.
    """
    from mmvan.models import VAN
    was_training = backbone.training
    backbone.eval()
    saved = None
    if isinstance(backbone, VAN):
        saved = backbone.out_indices
        backbone.out_indices = (backbone.num_stages - 1, )
    total, count = None, 0
    try:
        for batch in images:
            scores = central_input_gradient(backbone, batch).double()
            for score in scores:
                if not torch.isfinite(score).all():
                    continue
                total = score.clone() if total is None else total + score
                count += 1
            if progress is not None:
                progress()
    finally:
        if saved is not None:
            backbone.out_indices = saved
        backbone.train(was_training)
    if count == 0:
        raise ValueError('No image gave finite contribution scores.')
    return (total / count).cpu().numpy(), count


def log_scaled(scores):
    """``log10(scores + 1)`` divided by its maximum (RepLKNet's display
    scale, comparable across models)."""
    data = np.log10(np.asarray(scores, dtype=np.float64) + 1)
    peak = data.max()
    return data / peak if peak > 0 else data


def area_ratios(data, thresholds=ERF_THRESHOLDS):
    """High-contribution area ratios.

    For each threshold ``t``, the smallest square of odd side ``2i + 1``
    centred on pixel ``(H // 2, W // 2)`` (clipped to the image) whose sum
    exceeds ``t`` times the sum of ``data``.

    Args:
        data (np.ndarray): ``H x W`` non-negative scores, usually
            :func:`log_scaled`.
        thresholds (Sequence[float]): Shares in ``(0, 1)``.

    Returns:
        dict[float, dict]: ``t -> {'side': s, 'ratio': area / (H * W)}``;
        a share never exceeded (only possible at ``t >= 1``) gives the whole
        image.
    """
    data = np.asarray(data, dtype=np.float64)
    h, w = data.shape
    integral = np.zeros((h + 1, w + 1))
    integral[1:, 1:] = data.cumsum(0).cumsum(1)
    total = integral[-1, -1]
    cy, cx = h // 2, w // 2
    radii = np.arange(max(h, w) // 2 + 1)
    y0 = np.clip(cy - radii, 0, h)
    y1 = np.clip(cy + radii + 1, 0, h)
    x0 = np.clip(cx - radii, 0, w)
    x1 = np.clip(cx + radii + 1, 0, w)
    sums = (
        integral[y1, x1] - integral[y0, x1] - integral[y1, x0] +
        integral[y0, x0])
    out = {}
    for t in thresholds:
        hit = np.nonzero(sums > t * total)[0]
        if len(hit):
            i = int(hit[0])
            area = (y1[i] - y0[i]) * (x1[i] - x0[i])
            out[t] = dict(side=2 * i + 1, ratio=float(area / (h * w)))
        else:
            out[t] = dict(side=max(h, w), ratio=1.0)
    return out
