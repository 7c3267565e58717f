# Copyright (c) mmvan contributors. All rights reserved.
"""The check a backend model passes before it is used: the exported part
and the PyTorch model as trained agree on real images within
:data:`TOLERANCE`.

The images ship inside the package (``mmvan/backends/data``, copies of the
repository's ``demo/cat.jpg`` and ``demo/coffee.jpg``), so an installed
mmvan checks its exports as a source checkout does.
"""
import glob
import os.path as osp

import mmcv
import numpy as np
import torch

from mmvan.datasets.loading import load_image, test_pipeline_after_loader
from mmvan.utils.errors import UserError

# Largest relative difference (max |got - want| / max |want|) from the
# model as trained, per precision. fp32 is the exactness bar; bf16 keeps
# 8 bits of mantissa (about 1e-2 relative on VAN's logits); int8 is a
# coarser sanity bar (its real measure is the top-1 agreement).
TOLERANCE = {'fp32': 1e-4, 'bf16': 5e-2, 'int8': 0.3}
# The folder of the check images, inside the package.
CHECK_IMAGE_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'data')
# ImageNet normalisation (RGB), for a module checked without a config.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


class BackendCheckError(UserError):
    """A backend model does not compute what the PyTorch model computes."""


def check_images():
    """The real images the backends are checked on (the ``.jpg`` files of
    :data:`CHECK_IMAGE_DIR`), sorted."""
    return sorted(glob.glob(osp.join(CHECK_IMAGE_DIR, '*.jpg')))


def _image_paths(images=None):
    """``images``, else the check images; at least one, at most two."""
    paths = images or check_images()
    if not paths:
        raise UserError(f'No image to check the backend model on: '
                        f'{CHECK_IMAGE_DIR} has no .jpg files (a broken '
                        f'install of mmvan?).')
    return paths[:2]


def _normalise(model, bgr, size):
    """An image resized to ``size`` (h, w) and normalised as the model's
    data preprocessor does, as a 1 x 3 x H x W float tensor."""
    pre = model.data_preprocessor
    img = mmcv.imresize(bgr, (size[1], size[0]))
    if getattr(pre, '_channel_conversion', True):
        img = img[..., ::-1]
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
    x = x[None].float()
    mean, std = getattr(pre, 'mean', None), getattr(pre, 'std', None)
    if mean is not None and std is not None:
        x = (x - mean.view(1, -1, 1, 1).cpu()) / std.view(1, -1, 1, 1).cpu()
    return x


def check_inputs(model, part, images=None, cfg=None):
    """Real images as the exported part receives them: a classifier's
    through its test pipeline and data preprocessor (one batch of all
    images), a backbone's at two sizes (the second odd)."""
    paths = _image_paths(images)
    cfg = cfg if cfg is not None else getattr(model, 'cfg', None)
    if part == 'model' and cfg is not None and cfg.get('test_dataloader'):
        pipeline = test_pipeline_after_loader(cfg)
        inputs, samples = [], []
        for path in paths:
            image = load_image(path, cfg)
            data = pipeline(
                dict(
                    img=image,
                    img_shape=image.shape[:2],
                    ori_shape=image.shape[:2]))
            inputs.append(data['inputs'])
            samples.append(data['data_samples'])
        with torch.no_grad():
            data = model.data_preprocessor(
                dict(inputs=inputs, data_samples=samples), False)
        return [data['inputs'].float().cpu()]
    if part == 'model':
        return [
            torch.cat(
                [_normalise(model, load_image(p), (224, 224)) for p in paths])
        ]
    bgr = load_image(paths[0])
    return [
        _normalise(model, bgr, (224, 320)),
        _normalise(model, bgr, (161, 243))
    ]


def imagenet_batch(shape):
    """The check images resized to ``shape`` (h, w), RGB with ImageNet
    normalisation, as one N x 3 x H x W float tensor."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    images = []
    for path in _image_paths():
        rgb = mmcv.imresize(load_image(path), (shape[1], shape[0]))[..., ::-1]
        images.append(
            torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))))
    return (torch.stack(images).float() - mean) / std


def compare(got, want):
    """Largest relative difference over outputs, and the top-1 agreement
    of the first output's rows (classifiers)."""
    rel = 0.0
    for g, w in zip(got, want):
        if g.shape != w.shape:
            return dict(max_rel=float('inf'), top1_agree=0.0)
        if not torch.isfinite(g).all():
            return dict(max_rel=float('inf'), top1_agree=0.0)
        rel = max(
            rel,
            float(
                (g.float() - w).abs().max() / w.abs().max().clamp_min(1e-12)))
    agree = float((got[0].argmax(1) == want[0].argmax(1)).float().mean())
    return dict(max_rel=rel, top1_agree=agree)
