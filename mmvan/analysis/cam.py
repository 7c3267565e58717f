# Copyright (c) mmvan contributors. All rights reserved.
"""Class activation maps of mmvan models with the grad-cam package
(``pytorch_grad_cam``), in the form of mmpretrain's ``vis_cam.py``.

A classifier's target is a class logit (the predicted class unless one is
given). A detector's or segmentor's backbone, or any model without a
classification head, has no class score: its target is the L2 norm of the
globally pooled last-stage features, so the map shows what the backbone's
image descriptor responds to.

The default target layer of stage ``i`` is its last block
(``backbone.block{i+1}.{depth-1}``), whose output is the stage's feature
map before its LayerNorm (``NCHW``); the LayerNorms themselves
(``backbone.norm{i+1}``, mmpretrain's default choice) work too: their
channels-last output is transposed for grad-cam.
"""
import os
import os.path as osp

import mmcv
import numpy as np
import torch
import torch.nn as nn
from matplotlib.figure import Figure

from mmvan.analysis.common import quiet_mmengine, random_init, save_figure
from mmvan.apis import init_model, load_image
from mmvan.datasets.loading import test_pipeline_after_loader
from mmvan.models import VAN
from mmvan.utils.errors import UserError

__all__ = [
    'cam_methods', 'find_backbone', 'has_classifier', 'CamModel',
    'PooledFeatureNorm', 'module_by_name', 'stage_layers', 'compute_cams',
    'overlay', 'prepare', 'draw', 'list_inputs', 'visualize_cams'
]

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def _grad_cam():
    try:
        import pytorch_grad_cam  # optional: the grad-cam package
    except ImportError:
        raise UserError(
            'Grad-CAM needs the grad-cam package: pip install '
            '"grad-cam>=1.5" (see requirements/optional.txt).') from None
    return pytorch_grad_cam


def cam_methods():
    """``{lower-case name: class}`` of the CAM methods grad-cam offers."""
    cam = _grad_cam()
    methods = {}

    def visit(cls):
        for sub in cls.__subclasses__():
            methods[sub.__name__.lower()] = sub
            visit(sub)

    visit(cam.base_cam.BaseCAM)
    methods['gradcam++'] = cam.GradCAMPlusPlus
    return methods


def find_backbone(model):
    """The mmvan VAN inside ``model`` (or ``model`` itself)."""
    for module in model.modules():
        if isinstance(module, VAN):
            return module
    raise UserError('The model has no mmvan VAN backbone.')


def has_classifier(model):
    return hasattr(model, 'head') and hasattr(
        model, 'extract_feat') and (getattr(model, 'task', 'cls') == 'cls')


class CamModel(nn.Module):
    """What grad-cam runs: a classifier's logits, or a backbone's pooled
    last-stage features (``N x C``)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.classifier = has_classifier(model)
        self.backbone = None if self.classifier else find_backbone(model)

    def forward(self, x):
        if self.classifier:
            return self.model(x, mode='tensor')
        feats = self.backbone(x)
        return feats[-1].mean((2, 3))


class PooledFeatureNorm:
    """Target for backbones: the L2 norm of the pooled features."""

    def __call__(self, output):
        return output.norm()


def module_by_name(model, name):
    modules = dict(model.named_modules())
    if name not in modules:
        close = [n for n in modules if n.startswith('backbone.')][:12]
        raise UserError(f'--target-layers: the model has no module '
                        f'{name!r}; e.g. {", ".join(close)}.')
    return modules[name]


def stage_layers(model, stages):
    """Default target layer names: the last block of each stage."""
    backbone = find_backbone(model)
    prefix = next(n for n, m in model.named_modules() if m is backbone)
    prefix = prefix + '.' if prefix else ''
    names = []
    for stage in stages:
        if not 0 <= stage < backbone.num_stages:
            raise UserError(f'--stages: {stage} is not in '
                            f'0..{backbone.num_stages - 1}.')
        depth = len(backbone.stage_modules(stage)[1])
        names.append(f'{prefix}block{stage + 1}.{depth - 1}')
    return names


def _channels_first(layer):
    """grad-cam's reshape_transform for ``layer``: VAN's stage LayerNorms
    work on channels-last maps."""
    if isinstance(layer, nn.LayerNorm):
        return lambda t: t.permute(0, 3, 1, 2) if t.dim() == 4 else t
    return None


def compute_cams(model,
                 inputs,
                 layer_names,
                 target_category=None,
                 method='gradcam',
                 aug_smooth=False,
                 eigen_smooth=False):
    """One map per target layer for one input.

    Args:
        model: An mmvan model (unfolded: gradients are needed).
        inputs (Tensor): ``1 x 3 x H x W``, normalised.
        layer_names (list[str]): Module names (``model.named_modules()``).
        target_category (int, optional): Class for a classifier; default
            the predicted one.
        method (str): A grad-cam method name (:func:`cam_methods`).

    Returns:
        tuple[dict[str, np.ndarray], Tensor]: ``name -> H x W`` maps in
        ``[0, 1]``, and the model's output (logits or pooled features).
    """
    methods = cam_methods()
    if method.lower() not in methods:
        raise UserError(f'--method {method}: choose one of '
                        f'{", ".join(sorted(methods))}.')
    if getattr(find_backbone(model), 'deploy', False):
        raise UserError('Grad-CAM needs the unfolded model (build it with '
                        'deploy=False).')
    wrapper = CamModel(model).eval()
    with torch.no_grad():
        output = wrapper(inputs)
    if wrapper.classifier:
        target_class = _grad_cam().utils.model_targets.ClassifierOutputTarget
        if target_category is None:
            target_category = int(output[0].argmax())
        elif not 0 <= target_category < output.shape[1]:
            raise UserError(f'--target-category {target_category}: the '
                            f'model has {output.shape[1]} classes.')
        targets = [target_class(target_category)]
    else:
        targets = [PooledFeatureNorm()]
    maps = {}
    for name in layer_names:
        layer = module_by_name(model, name)
        cam = methods[method.lower()](
            model=wrapper,
            target_layers=[layer],
            reshape_transform=_channels_first(layer))
        try:
            grayscale = cam(
                input_tensor=inputs,
                targets=targets,
                aug_smooth=aug_smooth,
                eigen_smooth=eigen_smooth)
        finally:
            cam.activations_and_grads.release()
        maps[name] = np.asarray(grayscale[0], dtype=np.float32)
    return maps, output


def overlay(image_rgb, cam_map):
    """grad-cam's jet overlay of a ``[0, 1]`` map on an ``HxWx3`` uint8
    RGB image; returns uint8 RGB."""
    return _grad_cam().utils.image.show_cam_on_image(
        np.float32(image_rgb) / 255, cam_map, use_rgb=True)


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
    """The input and one overlay per map, side by side, as a PNG."""
    h, w = image_rgb.shape[:2]
    n = len(maps)
    fig = Figure(
        figsize=(2.8 * (n + 1), 2.8 * h / max(w, 1) + 0.5),
        layout='constrained')
    axes = fig.subplots(1, n + 1, squeeze=False)[0]
    axes[0].imshow(image_rgb)
    axes[0].set_title('input', fontsize=9)
    for ax, (name, cam_map) in zip(axes[1:], maps.items()):
        ax.imshow(overlay(image_rgb, cam_map))
        ax.set_title(name, fontsize=9)
    for ax in axes:
        ax.axis('off')
    fig.suptitle(title, fontsize=10)
    save_figure(fig, out_file, dpi=100)


def list_inputs(img, save_path):
    """``[(image path, output path)]``."""
    if osp.isdir(img):
        paths = sorted(
            osp.join(img, f) for f in os.listdir(img)
            if f.lower().endswith(IMAGE_EXTENSIONS))
        if not paths:
            raise UserError(f'{img}: no images in this folder.')
        if save_path.lower().endswith('.png'):
            raise UserError('--save-path must be a folder when IMG is a '
                            'folder.')
        return [(p,
                 osp.join(save_path,
                          osp.splitext(osp.basename(p))[0] + '_cam.png'))
                for p in paths]
    if not osp.isfile(img):
        raise UserError(f'Image {img} does not exist.')
    if not save_path.lower().endswith('.png'):
        save_path = osp.join(save_path,
                             osp.splitext(osp.basename(img))[0] + '_cam.png')
    return [(img, save_path)]


def visualize_cams(img,
                   config,
                   checkpoint=None,
                   target_layers=(),
                   stages=(0, 1, 2, 3),
                   preview_model=False,
                   method='GradCAM',
                   target_category=None,
                   eigen_smooth=False,
                   aug_smooth=False,
                   save_path=None,
                   shape=None,
                   device='cpu',
                   cfg_options=None):
    """CAMs of one image (or a folder of images) drawn as
    ``tools/analysis_tools/vis_cam.py`` draws them: one panel per target
    layer (default: the last block of each of ``stages``); without
    ``checkpoint``, the model's random initialisation. With
    ``preview_model``, the module names are printed instead.

    Returns:
        list[dict] | None: Per image its path, ``out_file``, ``category``,
        ``score`` and ``maps``.
    """
    with quiet_mmengine():
        model = init_model(
            config,
            checkpoint,
            device=device,
            cfg_options=cfg_options,
            deploy=False)
    if checkpoint is None:
        random_init(model)  # the model's own random initialisation
    if preview_model:
        for name, module in model.named_modules():
            if name:
                print(f'{name}  ({type(module).__name__})')
        return None
    if not save_path:
        raise UserError('--save-path is required (a .png file, or a '
                        'folder).')
    jobs = list_inputs(img, save_path)
    names = target_layers or stage_layers(model, stages)
    for name in names:
        module_by_name(model, name)
    classes = (model.dataset_meta or {}).get('classes')
    results = []
    for path, out_file in jobs:
        inputs, shown = prepare(model, load_image(path), shape)
        maps, output = compute_cams(
            model,
            inputs.to(device),
            names,
            target_category=target_category,
            method=method,
            aug_smooth=aug_smooth,
            eigen_smooth=eigen_smooth)
        if output.shape[-1] > 0 and getattr(model, 'task', 'cls') == 'cls':
            category = (
                target_category
                if target_category is not None else int(output[0].argmax()))
            score = float(output[0].softmax(0)[category])
            name = (
                classes[category].split(',')[0]
                if classes and category < len(classes) else str(category))
            title = (f'{method} for class {category} "{name}" '
                     f'(p={score:.2f})')
        else:
            category, score = None, None
            title = f'{method} of the pooled last-stage features'
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
