# Copyright (c) mmvan contributors. All rights reserved.
"""Grad-CAM of mmvan models, as mmpretrain's ``vis_cam.py``.

    python tools/analysis_tools/vis_cam.py demo/cat.jpg \
        configs/van/van-b0_8xb128_in1k.py mmvan://van-b0_3rdparty_in1k \
        --save-path cam.png

One panel per stage by default: the CAM of the last block of each of
``--stages`` (or of each of ``--target-layers``, any module names;
``--preview-model`` lists them), overlaid on the image as the test pipeline
prepares it. A classifier's target is the predicted class (or
``--target-category``); a detector's or segmentor's backbone is explained
through the norm of its pooled last-stage features. ``IMG`` may be a folder:
``--save-path`` is then a folder with one PNG per image. Methods are those
of the grad-cam package (GradCAM, GradCAM++, XGradCAM, EigenCAM, ...).
"""
import argparse
import os
import os.path as osp
import sys
import warnings

import numpy as np
import torch

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
warnings.filterwarnings('ignore')

from mmvan.datasets.loading import test_pipeline_after_loader  # noqa: E402
from mmvan import cli  # noqa: E402

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('img', help='an image file or a folder of images')
    parser.add_argument('config')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='path, URL or mmvan:// name '
        '(default: random weights)')
    parser.add_argument(
        '--target-layers',
        nargs='+',
        default=[],
        help='module names (default: the last block of each of --stages)')
    parser.add_argument('--stages', type=int, nargs='+', default=[0, 1, 2, 3])
    parser.add_argument(
        '--preview-model',
        action='store_true',
        help='list the module names and exit')
    parser.add_argument('--method', default='GradCAM')
    parser.add_argument(
        '--target-category',
        type=int,
        default=None,
        help='class index (default: the predicted class)')
    parser.add_argument('--eigen-smooth', action='store_true')
    parser.add_argument('--aug-smooth', action='store_true')
    parser.add_argument(
        '--save-path', help='PNG to write (a folder when IMG is a folder)')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        help='detectors / segmentors: resize to H W (default: keep size)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def prepare(model, image_bgr, shape=None):
    """``(inputs, image_rgb)``: the normalised ``1 x 3 x H x W`` input and
    the picture it shows (after the classifier's test pipeline, or resized
    to ``shape``)."""
    if getattr(model, 'task', 'cls') == 'cls':
        pipeline = test_pipeline_after_loader(model.cfg)
        data = pipeline(
            dict(
                img=image_bgr,
                img_shape=image_bgr.shape[:2],
                ori_shape=image_bgr.shape[:2]))
        shown = data['inputs'].numpy().transpose(1, 2, 0)[..., ::-1]
        batch = model.data_preprocessor(
            dict(inputs=[data['inputs']], data_samples=[data['data_samples']]),
            False)
        return batch['inputs'], np.ascontiguousarray(shown)
    if shape:
        import mmcv
        image_bgr = mmcv.imresize(image_bgr, (shape[1], shape[0]))
    pre = model.data_preprocessor
    rgb = np.ascontiguousarray(image_bgr[..., ::-1])
    img = rgb if getattr(pre, '_channel_conversion', True) else image_bgr
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
    x = x.float()[None]
    mean, std = getattr(pre, 'mean', None), getattr(pre, 'std', None)
    if mean is not None:
        x = (x - mean.view(1, -1, 1, 1).cpu()) / std.view(1, -1, 1, 1).cpu()
    return x, rgb


def draw(image_rgb, maps, out_file, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from mmvan.analysis.cam import overlay
    h, w = image_rgb.shape[:2]
    n = len(maps)
    fig, axes = plt.subplots(
        1,
        n + 1,
        figsize=(2.8 * (n + 1), 2.8 * h / max(w, 1) + 0.5),
        squeeze=False,
        layout='constrained')
    axes = axes[0]
    axes[0].imshow(image_rgb)
    axes[0].set_title('input', fontsize=9)
    for ax, (name, cam_map) in zip(axes[1:], maps.items()):
        ax.imshow(overlay(image_rgb, cam_map))
        ax.set_title(name, fontsize=9)
    for ax in axes:
        ax.axis('off')
    fig.suptitle(title, fontsize=10)
    folder = osp.dirname(out_file)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(out_file, dpi=100)
    plt.close(fig)


def list_inputs(img, save_path):
    """``[(image path, output path)]``."""
    if osp.isdir(img):
        paths = sorted(
            osp.join(img, f) for f in os.listdir(img)
            if f.lower().endswith(IMAGE_EXTENSIONS))
        if not paths:
            raise cli.UserError(f'{img}: no images in this folder.')
        if save_path.lower().endswith('.png'):
            raise cli.UserError('--save-path must be a folder when IMG is a '
                                'folder.')
        return [(p,
                 osp.join(save_path,
                          osp.splitext(osp.basename(p))[0] + '_cam.png'))
                for p in paths]
    if not osp.isfile(img):
        raise cli.UserError(f'Image {img} does not exist.')
    if not save_path.lower().endswith('.png'):
        save_path = osp.join(save_path,
                             osp.splitext(osp.basename(img))[0] + '_cam.png')
    return [(img, save_path)]


def main(argv=None):
    args = parse_args(argv)
    from mmvan.analysis.cam import compute_cams, module_by_name, stage_layers
    from mmvan.analysis.common import quiet_mmengine
    from mmvan.apis import init_model, load_image
    with quiet_mmengine():
        model = init_model(
            args.config,
            args.checkpoint,
            device=args.device,
            cfg_options=args.cfg_options,
            deploy=False)
    if args.checkpoint is None:
        from mmvan.analysis.common import random_init
        random_init(model)  # the model's own random initialisation
    if args.preview_model:
        for name, module in model.named_modules():
            if name:
                print(f'{name}  ({type(module).__name__})')
        return None
    if not args.save_path:
        raise cli.UserError('--save-path is required (a .png file, or a '
                            'folder).')
    jobs = list_inputs(args.img, args.save_path)
    names = args.target_layers or stage_layers(model, args.stages)
    for name in names:
        module_by_name(model, name)
    classes = (model.dataset_meta or {}).get('classes')
    results = []
    for path, out_file in jobs:
        inputs, shown = prepare(model, load_image(path), args.shape)
        maps, output = compute_cams(
            model,
            inputs.to(args.device),
            names,
            target_category=args.target_category,
            method=args.method,
            aug_smooth=args.aug_smooth,
            eigen_smooth=args.eigen_smooth)
        if output.shape[-1] > 0 and getattr(model, 'task', 'cls') == 'cls':
            category = (
                args.target_category if args.target_category is not None else
                int(output[0].argmax()))
            score = float(output[0].softmax(0)[category])
            name = (
                classes[category].split(',')[0]
                if classes and category < len(classes) else str(category))
            title = (f'{args.method} for class {category} "{name}" '
                     f'(p={score:.2f})')
        else:
            category, score = None, None
            title = f'{args.method} of the pooled last-stage features'
        draw(shown, maps, out_file, title)
        print(f'{path}: {title}; saved {out_file}')
        results.append(
            dict(
                image=path,
                out_file=out_file,
                category=category,
                score=score,
                maps=maps))
    return results


if __name__ == '__main__':
    cli.run_cli(main)
