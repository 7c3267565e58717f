# Copyright (c) mmvan contributors. All rights reserved.
"""Effective receptive fields of VAN models, side by side.

RepLKNet's measure (Ding et al., CVPR 2022): the gradient of the central
pixel of the last stage's feature map with respect to the input, averaged
over N images, log-scaled; and the high-contribution area ratios at
thresholds 0.2 / 0.3 / 0.5 / 0.99 (the share of the image covered by the
smallest centred square holding that share of the contribution).

    python tools/analysis_tools/erf.py configs/van/van-b0_8xb128_in1k.py \
        --data data/imagenet/val --num-images 50 --out-file erf.png

Several models: one config per panel, or one config and several
``--kernel-size`` values (LKA k=21 against LSKA k=23/35/53 at one scale):

    python tools/analysis_tools/erf.py configs/van/van-b0_8xb128_in1k.py \
        configs/van/van-lska-b0_8xb128_in1k.py \
        configs/van/van-lska-b0_8xb128_in1k.py \
        configs/van/van-lska-b0_8xb128_in1k.py --kernel-size 21 23 35 53 \
        --data data/demo_cls/val --num-images 8 --out-file erf.png

Without ``--checkpoint`` the models have VAN's random initialisation
(seeded). The PNG is written with a JSON of the ratios beside it.
"""
import argparse
import json
import os
import os.path as osp
import sys
import warnings

import numpy as np
import torch

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
warnings.filterwarnings('ignore')

from mmvan import cli  # noqa: E402

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('configs', nargs='+', metavar='CONFIG')
    parser.add_argument(
        '--checkpoint',
        nargs='+',
        default=None,
        help='one per config (or one for all); "none" for random weights')
    parser.add_argument(
        '--kernel-size',
        type=int,
        nargs='+',
        default=None,
        help='backbone kernel_size per config; with one config, one panel '
        'per size')
    parser.add_argument('--labels', nargs='+', help='panel titles')
    parser.add_argument(
        '--data',
        required=True,
        help='a folder of images (searched '
        'recursively, sorted; the first --num-images are used)')
    parser.add_argument('--num-images', type=int, default=50)
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=[1024],
        help='input H [W] (default 1024, as RepLKNet)')
    parser.add_argument('--out-file', required=True, help='PNG to write')
    parser.add_argument(
        '--save-scores',
        action='store_true',
        help='also write the mean contribution scores (.npz)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    if len(args.shape) == 1:
        args.shape = args.shape * 2
    if len(args.shape) != 2 or min(args.shape) < 32:
        parser.error('--shape takes H [W], each at least 32.')
    return args


def model_specs(args):
    """``[(config, checkpoint, kernel_size)]``, one per panel."""
    configs = list(args.configs)
    sizes = args.kernel_size
    if sizes is not None:
        if len(configs) == 1:
            configs = configs * len(sizes)
        elif len(sizes) != len(configs):
            raise cli.UserError(
                f'--kernel-size: give one size per config ({len(configs)}) '
                f'or one config and several sizes; got {len(sizes)}.')
    else:
        sizes = [None] * len(configs)
    ckpts = args.checkpoint or ['none']
    if len(ckpts) == 1:
        ckpts = ckpts * len(configs)
    elif len(ckpts) != len(configs):
        raise cli.UserError(f'--checkpoint: give one per config '
                            f'({len(configs)}) or one for all.')
    ckpts = [None if c.lower() == 'none' else c for c in ckpts]
    return list(zip(configs, ckpts, sizes))


def list_images(folder, count):
    if not osp.isdir(folder):
        raise cli.UserError(
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
        raise cli.UserError(f'--data {folder}: no images found.')
    return found[:count]


def preprocess(model, image_bgr, shape):
    """An image resized (bicubic) to ``shape`` and normalised as the
    model's data preprocessor does, ``1 x 3 x H x W``."""
    from PIL import Image
    pre = model.data_preprocessor
    rgb = Image.fromarray(np.ascontiguousarray(image_bgr[..., ::-1]))
    rgb = np.asarray(rgb.resize((shape[1], shape[0]), Image.BICUBIC))
    img = rgb if getattr(pre, '_channel_conversion', True) else rgb[..., ::-1]
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
    x = x.float()[None]
    mean, std = getattr(pre, 'mean', None), getattr(pre, 'std', None)
    if mean is not None:
        x = (x - mean.view(1, -1, 1, 1).cpu()) / std.view(1, -1, 1, 1).cpu()
    return x


def build(config, checkpoint, kernel_size, args):
    from mmvan.analysis.cam import find_backbone
    from mmvan.analysis.common import quiet_mmengine, random_init
    from mmvan.apis import init_model
    cfg = cli.load_config(config, args.cfg_options)
    if kernel_size is not None:
        cfg.model.backbone.kernel_size = kernel_size
    torch.manual_seed(args.seed)
    with quiet_mmengine():
        model = init_model(cfg, checkpoint, device=args.device, deploy=False)
    backbone = find_backbone(model)
    if checkpoint is None:
        random_init(backbone, args.seed)  # VAN's own initialisation
    return model, backbone


def draw(results, out_file, title, floor=1e-3):
    """One panel per model on a logarithmic colour scale (random weights
    put most of the contribution at the centre), with the squares holding
    50 % and 99 % of it."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle
    n = len(results)
    fig, axes = plt.subplots(
        1,
        n,
        figsize=(3.0 * n + 0.9, 3.7),
        squeeze=False,
        layout='constrained')
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
    folder = osp.dirname(out_file)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(out_file, dpi=72)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    from tqdm import tqdm

    from mmvan.analysis.erf import (ERF_THRESHOLDS, area_ratios,
                                    effective_receptive_field, log_scaled)
    from mmvan.apis import load_image
    if not args.out_file.lower().endswith('.png'):
        raise cli.UserError('--out-file must be a .png file.')
    if args.num_images < 1:
        raise cli.UserError('--num-images must be at least 1.')
    specs = model_specs(args)
    if args.labels and len(args.labels) != len(specs):
        raise cli.UserError(f'--labels: give one per panel ({len(specs)}).')
    paths = list_images(args.data, args.num_images)
    images = [load_image(p) for p in paths]
    h, w = args.shape
    results = []
    bar = tqdm(
        total=len(specs) * len(images),
        desc='ERF',
        unit='img',
        leave=False,
        disable=None)
    try:
        for i, (config, ckpt, k) in enumerate(specs):
            model, backbone = build(config, ckpt, k, args)
            inputs = (
                preprocess(model, img, (h, w)).to(args.device)
                for img in images)
            scores, count = effective_receptive_field(
                backbone, inputs, progress=bar.update)
            data = log_scaled(scores)
            label = (
                args.labels[i] if args.labels else
                f'{backbone.attention.upper()} k={backbone.kernel_size}')
            results.append(
                dict(
                    label=label,
                    config=config,
                    checkpoint=ckpt,
                    attention=backbone.attention,
                    kernel_size=backbone.kernel_size,
                    num_images=count,
                    map=data,
                    scores=scores,
                    area_ratios=area_ratios(data, ERF_THRESHOLDS)))
    finally:
        bar.close()

    weights = ('random weights' if all(
        c is None for _, c, _ in specs) else 'given weights')
    title = (f'ERF (RepLKNet): centre of the last stage, {len(images)} '
             f'images at {h}x{w}, {weights}')
    draw(results, args.out_file, title)
    json_file = osp.splitext(args.out_file)[0] + '.json'
    summary = dict(
        protocol='RepLKNet ERF: relu(grad of relu(centre of last stage)) '
        'summed over input channels, mean over images, log10(1+x)/max',
        data=args.data,
        shape=[h, w],
        thresholds=list(ERF_THRESHOLDS),
        models=[{
            k: v
            for k, v in r.items() if k not in ('map', 'scores')
        } for r in results])
    with open(json_file, 'w') as f:
        json.dump(summary, f, indent=2, default=str)

    print(f'ERF of the last stage\'s centre: {len(images)} images of '
          f'{args.data} at {h}x{w}, {weights}')
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
    saved = f'{args.out_file} and {json_file}'
    if args.save_scores:
        npz = osp.splitext(args.out_file)[0] + '_scores.npz'
        np.savez_compressed(
            npz,
            **{r['label']: r['scores'].astype(np.float32)
               for r in results})
        saved += f' and {npz}'
    print(f'saved {saved}')
    return results


if __name__ == '__main__':
    cli.run_cli(main)
