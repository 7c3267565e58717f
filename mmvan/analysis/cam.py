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
import numpy as np
import torch
import torch.nn as nn

from mmvan.utils.errors import UserError


def _grad_cam():
    try:
        import pytorch_grad_cam
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
    from mmvan.models import VAN
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
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        if target_category is None:
            target_category = int(output[0].argmax())
        elif not 0 <= target_category < output.shape[1]:
            raise UserError(f'--target-category {target_category}: the '
                            f'model has {output.shape[1]} classes.')
        targets = [ClassifierOutputTarget(target_category)]
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
    from pytorch_grad_cam.utils.image import show_cam_on_image
    return show_cam_on_image(
        np.float32(image_rgb) / 255, cam_map, use_rgb=True)
