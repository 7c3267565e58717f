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
import json
import os
import os.path as osp

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image
from tqdm import tqdm

from mmvan.analysis.cam import find_backbone
from mmvan.analysis.common import quiet_mmengine, random_init, save_figure
from mmvan.apis import init_model, load_image
from mmvan.models import VAN
from mmvan.utils.config import load_config
from mmvan.utils.errors import UserError

__all__ = [
    'ERF_THRESHOLDS', 'central_input_gradient', 'effective_receptive_field',
    'log_scaled', 'area_ratios', 'model_specs', 'list_images', 'preprocess',
    'build_model', 'draw', 'compare_erfs'
]

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')
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


def model_specs(configs, checkpoint=None, kernel_size=None):
    """``[(config, checkpoint, kernel_size)]``, one per panel: one config
    per checkpoint and kernel size, or one config for several; a checkpoint
    ``'none'`` (or None) is VAN's random initialisation."""
    configs = list(configs)
    sizes = kernel_size
    if sizes is not None:
        if len(configs) == 1:
            configs = configs * len(sizes)
        elif len(sizes) != len(configs):
            raise UserError(
                f'--kernel-size: give one size per config ({len(configs)}) '
                f'or one config and several sizes; got {len(sizes)}.')
    else:
        sizes = [None] * len(configs)
    ckpts = checkpoint or ['none']
    if len(ckpts) == 1:
        ckpts = ckpts * len(configs)
    elif len(ckpts) != len(configs):
        raise UserError(f'--checkpoint: give one per config '
                        f'({len(configs)}) or one for all.')
    ckpts = [None if c.lower() == 'none' else c for c in ckpts]
    return list(zip(configs, ckpts, sizes))


def list_images(folder, count):
    """The first ``count`` images under ``folder`` (searched recursively,
    sorted)."""
    if not osp.isdir(folder):
        raise UserError(
            f'--data {folder}: no such folder. Any folder of images works, '
            f'e.g. ImageNet\'s val/ or the demo set (make demo writes '
            f'data/demo_cls).')
    found = []
    for dirpath, dirnames, files in os.walk(folder):
        dirnames.sort()
        for f in sorted(files):
            if f.lower().endswith(IMAGE_EXTENSIONS):
                found.append(osp.join(dirpath, f))
    if not found:
        raise UserError(f'--data {folder}: no images found.')
    return found[:count]


def preprocess(model, image_bgr, shape):
    """An image resized (bicubic) to ``shape`` and normalised as the
    model's data preprocessor does, ``1 x 3 x H x W``."""
    pre = model.data_preprocessor
    rgb = Image.fromarray(np.ascontiguousarray(image_bgr[..., ::-1]))
    rgb = np.array(rgb.resize((shape[1], shape[0]), Image.BICUBIC))
    img = rgb if getattr(pre, '_channel_conversion', True) else rgb[..., ::-1]
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
    x = x.float()[None]
    mean, std = getattr(pre, 'mean', None), getattr(pre, 'std', None)
    if mean is not None:
        x = (x - mean.view(1, -1, 1, 1).cpu()) / std.view(1, -1, 1, 1).cpu()
    return x


def build_model(config,
                checkpoint=None,
                kernel_size=None,
                seed=0,
                device='cpu',
                cfg_options=None):
    """``(model, backbone)`` of ``config`` (unfolded), with ``kernel_size``
    for the backbone if given; without ``checkpoint``, VAN's random
    initialisation seeded with ``seed``."""
    cfg = load_config(config, cfg_options)
    if kernel_size is not None:
        cfg.model.backbone.kernel_size = kernel_size
    torch.manual_seed(seed)
    with quiet_mmengine():
        model = init_model(cfg, checkpoint, device=device, deploy=False)
    backbone = find_backbone(model)
    if checkpoint is None:
        random_init(backbone, seed)  # VAN's own initialisation
    return model, backbone


def draw(results, out_file, title, floor=1e-3):
    """One panel per model on a logarithmic colour scale (random weights
    put most of the contribution at the centre), with the squares holding
    50 % and 99 % of it."""
    n = len(results)
    fig = Figure(figsize=(3.0 * n + 0.9, 3.7), layout='constrained')
    axes = fig.subplots(1, n, squeeze=False)
    for ax, res in zip(axes[0], results):
        data = np.clip(res['map'], floor, 1)
        image = ax.imshow(data, cmap='magma', norm=LogNorm(vmin=floor, vmax=1))
        h, w = data.shape
        for t, colour in ((0.5, 'cyan'), (0.99, 'white')):
            side = res['area_ratios'][t]['side']
            ax.add_patch(
                Rectangle((w // 2 - side / 2, h // 2 - side / 2),
                          side,
                          side,
                          fill=False,
                          lw=0.8,
                          ls='--',
                          color=colour))
        r = res['area_ratios']
        ax.set_title(
            f'{res["label"]}\nratio t=0.5: {r[0.5]["ratio"]:.3f}  '
            f't=0.99: {r[0.99]["ratio"]:.3f}',
            fontsize=9)
        ax.axis('off')
    fig.colorbar(
        image, ax=list(axes[0]), fraction=0.02,
        pad=0.01).set_label('log10(1 + contribution) / max')
    fig.suptitle(
        title + '\nsquares: 50 % (cyan) and 99 % (white) of the '
        'contribution',
        fontsize=9)
    save_figure(fig, out_file, dpi=72)


def compare_erfs(configs,
                 data,
                 out_file,
                 checkpoint=None,
                 kernel_size=None,
                 labels=None,
                 num_images=50,
                 shape=(1024, 1024),
                 save_scores=False,
                 seed=0,
                 device='cpu',
                 cfg_options=None):
    """The ERFs of several models side by side, as
    ``tools/analysis_tools/erf.py`` draws them.

    One panel per ``(config, checkpoint, kernel size)`` of
    :func:`model_specs`, each measured on the first ``num_images`` images
    of the folder ``data`` resized to ``shape`` (H, W). Writes the PNG
    ``out_file``, a JSON of the area ratios beside it and, with
    ``save_scores``, the mean scores (``_scores.npz``); prints the ratios.

    Returns:
        list[dict]: Per panel its label, config, checkpoint, attention,
        kernel size, number of images, ``map`` (log-scaled), ``scores`` and
        ``area_ratios``.
    """
    if not out_file.lower().endswith('.png'):
        raise UserError('--out-file must be a .png file.')
    if num_images < 1:
        raise UserError('--num-images must be at least 1.')
    specs = model_specs(configs, checkpoint, kernel_size)
    if labels and len(labels) != len(specs):
        raise UserError(f'--labels: give one per panel ({len(specs)}).')
    paths = list_images(data, num_images)
    images = [load_image(p) for p in paths]
    h, w = shape
    results = []
    bar = tqdm(
        total=len(specs) * len(images),
        desc='ERF',
        unit='img',
        leave=False,
        disable=None)
    try:
        for i, (config, ckpt, k) in enumerate(specs):
            model, backbone = build_model(config, ckpt, k, seed, device,
                                          cfg_options)
            inputs = (
                preprocess(model, img, (h, w)).to(device) for img in images)
            scores, count = effective_receptive_field(
                backbone, inputs, progress=bar.update)
            erf_map = log_scaled(scores)
            label = (
                labels[i] if labels else
                f'{backbone.attention.upper()} k={backbone.kernel_size}')
            results.append(
                dict(
                    label=label,
                    config=config,
                    checkpoint=ckpt,
                    attention=backbone.attention,
                    kernel_size=backbone.kernel_size,
                    num_images=count,
                    map=erf_map,
                    scores=scores,
                    area_ratios=area_ratios(erf_map, ERF_THRESHOLDS)))
    finally:
        bar.close()

    weights = ('random weights' if all(
        c is None for _, c, _ in specs) else 'given weights')
    title = (f'ERF (RepLKNet): centre of the last stage, {len(images)} '
             f'images at {h}x{w}, {weights}')
    draw(results, out_file, title)
    json_file = osp.splitext(out_file)[0] + '.json'
    summary = dict(
        protocol='RepLKNet ERF: relu(grad of relu(centre of last stage)) '
        'summed over input channels, mean over images, log10(1+x)/max',
        data=data,
        shape=[h, w],
        thresholds=list(ERF_THRESHOLDS),
        models=[{
            k: v
            for k, v in r.items() if k not in ('map', 'scores')
        } for r in results])
    with open(json_file, 'w') as f:
        json.dump(summary, f, indent=2, default=str)

    print(f'ERF of the last stage\'s centre: {len(images)} images of '
          f'{data} at {h}x{w}, {weights}')
    print('high-contribution area ratio (share of the image holding t of '
          'the contribution)')
    width = max(12, max(len(r['label']) for r in results))
    print(f'  {"model":<{width}}' + ''.join(f'{"t=" + str(t):>9}'
                                            for t in ERF_THRESHOLDS))
    for r in results:
        print(f'  {r["label"]:<{width}}' +
              ''.join(f'{r["area_ratios"][t]["ratio"]:>9.4f}'
                      for t in ERF_THRESHOLDS))
    wide = sorted({
        r['kernel_size']
        for r in results if r['kernel_size'] * 32 >= min(h, w)
    })
    if wide:
        print(f'note: k = {", ".join(map(str, wide))} spans 32 k >= '
              f'{min(h, w)} pixels at the last stage (stride 32): the whole '
              f'input, so the ratios saturate; compare such kernels with a '
              f'larger --shape (e.g. 2048).')
    saved = f'{out_file} and {json_file}'
    if save_scores:
        npz = osp.splitext(out_file)[0] + '_scores.npz'
        np.savez_compressed(
            npz,
            **{r['label']: r['scores'].astype(np.float32)
               for r in results})
        saved += f' and {npz}'
    print(f'saved {saved}')
    return results
