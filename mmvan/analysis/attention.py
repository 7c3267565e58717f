# Copyright (c) mmvan contributors. All rights reserved.
"""Where a VAN looks: LKA / LSKA attention maps over an image.

For each chosen stage, the attention tensor ``conv1(...)`` of one block
(the last by default) is captured with a forward hook, reduced over channels
(mean absolute value by default), upsampled to the image and drawn over it;
one panel per stage, with a colour bar. Works for LKA and LSKA, any input
size, and classifiers, detectors and segmentors alike (the backbone is run
on the image as the test pipeline prepares it).
"""

import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from mmvan.analysis.cam import find_backbone
from mmvan.analysis.common import save_figure
from mmvan.apis import init_model, load_image
from mmvan.utils.errors import UserError
from mmvan.zoo import resolve

__all__ = [
    'REDUCTIONS', 'capture_attention', 'normalise_input', 'draw',
    'visualize_attention'
]

REDUCTIONS = ('mean-abs', 'mean', 'max')


def capture_attention(backbone,
                      image_tensor,
                      stages,
                      block=-1,
                      reduce='mean-abs'):
    """Attention maps of ``backbone`` for one normalised input.

    Returns:
        dict[int, np.ndarray]: stage -> HxW map at the stage's resolution.
    """
    if backbone.deploy:
        raise UserError('Attention maps need the unfolded model; do not '
                        'call switch_to_deploy() first.')
    captured, handles = {}, []
    for stage in stages:
        if not 0 <= stage < backbone.num_stages:
            raise UserError(f'--stages: {stage} is not in 0..3.')
        blocks = backbone.stage_modules(stage)[1]
        try:
            target = blocks[block]
        except IndexError:
            raise UserError(
                f'--block {block}: stage {stage} has {len(blocks)} '
                f'blocks.') from None
        conv1 = target.attn.spatial_gating_unit.conv1

        def hook(module, inputs, output, stage=stage):
            attn = output.detach().float()[0]
            if reduce == 'mean-abs':
                attn = attn.abs().mean(0)
            elif reduce == 'mean':
                attn = attn.mean(0)
            else:
                attn = attn.max(0).values
            captured[stage] = attn.cpu().numpy()

        handles.append(conv1.register_forward_hook(hook))
    try:
        with torch.no_grad():
            backbone(image_tensor)
    finally:
        for handle in handles:
            handle.remove()
    return captured


def normalise_input(model, image_bgr):
    """The image as the model's data preprocessor normalises it."""
    pre = model.data_preprocessor
    x = torch.from_numpy(np.ascontiguousarray(image_bgr[..., ::-1]))
    x = x.permute(2, 0, 1).float()[None]
    mean = getattr(pre, 'mean', None)
    std = getattr(pre, 'std', None)
    if mean is not None:
        x = (x - mean.view(1, -1, 1, 1).cpu()) / std.view(1, -1, 1, 1).cpu()
    return x


def draw(image_rgb, maps, out_file, title):
    """The image and one overlay per stage's map, with a colour bar, as a
    PNG."""
    h, w = image_rgb.shape[:2]
    n = len(maps)
    fig = Figure(figsize=(3.2 * (n + 1) + 0.6, 3.4 * h / max(w, 1) + 0.6))
    axes = fig.subplots(1, n + 1)
    axes[0].imshow(image_rgb)
    axes[0].set_title('input')
    axes[0].axis('off')
    for ax, (stage, attn) in zip(axes[1:], sorted(maps.items())):
        up = F.interpolate(
            torch.from_numpy(attn)[None, None],
            size=(h, w),
            mode='bilinear',
            align_corners=False)[0, 0].numpy()
        lo, hi = float(up.min()), float(up.max())
        up = (up - lo) / (hi - lo) if hi > lo else np.zeros_like(up)
        ax.imshow(image_rgb)
        overlay = ax.imshow(up, cmap='jet', alpha=0.5, vmin=0, vmax=1)
        ax.set_title(f'stage {stage + 1} ({attn.shape[0]}x{attn.shape[1]})')
        ax.axis('off')
    fig.colorbar(
        overlay, ax=list(axes[1:]), fraction=0.02,
        pad=0.01).set_label('attention (normalised)')
    fig.suptitle(title)
    save_figure(fig, out_file, dpi=100)


def visualize_attention(img,
                        config,
                        out_file,
                        checkpoint=None,
                        stages=(0, 1, 2, 3),
                        block=-1,
                        reduce='mean-abs',
                        shape=None,
                        device='cpu'):
    """The attention maps of ``stages`` drawn over ``img`` (resized to
    ``shape`` (H, W) if given) into the PNG ``out_file``, as
    ``tools/visualization/vis_attention.py`` draws them; without
    ``checkpoint``, the model's random initialisation.

    Returns:
        dict[int, np.ndarray]: stage -> map at the stage's resolution.
    """
    image_bgr = load_image(img)
    if checkpoint:
        resolve(checkpoint)  # a path, an URL or mmvan://<name>
    if not out_file.lower().endswith('.png'):
        raise UserError('--out-file must be a .png file.')
    model = init_model(config, checkpoint, device=device, deploy=False)
    if shape:
        image_bgr = mmcv.imresize(image_bgr, (shape[1], shape[0]))
    backbone = find_backbone(model)
    x = normalise_input(model, image_bgr).to(device)
    maps = capture_attention(backbone, x, stages, block, reduce)
    title = (f'{backbone.attention.upper()} k={backbone.kernel_size} '
             f'attention, {reduce} over channels')
    draw(image_bgr[..., ::-1], maps, out_file, title)
    print(f'attention maps of stages {sorted(maps)} saved to '
          f'{out_file}')
    return maps
