# Copyright (c) mmvan contributors. All rights reserved.
"""What ``tools/deployment/pytorch2onnx.py`` runs: a VAN classifier (or a
backbone) exported to an ONNX file, checked with onnxruntime against the
PyTorch model as trained on random and real images, and written only when
they agree (:func:`pytorch2onnx`)."""
import copy
import io
import os.path as osp
import warnings

import mmcv
import numpy as np
import torch
import torch.nn as nn

from mmvan.apis import init_model, load_image
from mmvan.backends import check_images, fold_for_export, get_runtime
from mmvan.backends.export import check_output_file
from mmvan.utils.atomic import atomic_write
from mmvan.utils.errors import UserError
from mmvan.zoo import resolve

__all__ = ['Exported', 'build', 'check_inputs', 'pytorch2onnx']


class Exported(nn.Module):
    """Normalisation + backbone (+ neck and head)."""

    def __init__(self, model, backbone_only):
        super().__init__()
        self.model = model
        self.backbone_only = backbone_only
        pre = model.data_preprocessor
        self.register_buffer('mean', pre.mean.view(1, -1, 1, 1).clone())
        self.register_buffer('std', pre.std.view(1, -1, 1, 1).clone())

    def forward(self, image):
        x = (image - self.mean) / self.std
        if self.backbone_only:
            return self.model.backbone(x)
        return self.model(x, mode='tensor')


def build(config, checkpoint=None, backbone_only=False, deploy=True):
    """The model to export and, with the same weights, the model as
    trained to check it against."""
    model = init_model(config, checkpoint, deploy=False)
    if model.task != 'cls' and not backbone_only:
        raise UserError(
            f'{config} is a {model.task} config: export its backbone '
            f'with --backbone-only (detector and segmentor heads are '
            f'exported with mmdeploy).')
    if backbone_only:
        model.backbone.out_indices = (0, 1, 2, 3)
    reference = Exported(copy.deepcopy(model), backbone_only).eval()
    if deploy:
        model = fold_for_export(model)
    return Exported(model, backbone_only).eval(), reference


def check_inputs(shape, dynamic=False, images=None):
    """``[(name, 0..255 float32 NCHW batch)]``: random and real images
    (``images``, default the images the backends are checked on) at
    ``shape``, and at a second size with ``dynamic``."""
    rng = np.random.default_rng(0)
    h, w = shape
    sizes = [(h, w)]
    if dynamic:
        sizes.append((h + 37, w - 29 if w > 64 else w + 29))
    inputs = []
    for size in sizes:
        batch = 2 if dynamic else 1
        inputs.append(
            ('random', rng.uniform(0, 255,
                                   (batch, 3, *size)).astype(np.float32)))
        paths = images
        if paths is None:
            paths = check_images()
        for path in paths[:2]:
            rgb = load_image(path)[..., ::-1]
            rgb = mmcv.imresize(rgb, (size[1], size[0]))
            arr = np.ascontiguousarray(rgb.transpose(2, 0, 1))[None]
            inputs.append((osp.basename(path), arr.astype(np.float32)))
    return inputs


def pytorch2onnx(config,
                 out,
                 checkpoint=None,
                 shape=(224, 224),
                 dynamic=False,
                 backbone_only=False,
                 no_deploy=False,
                 opset=17,
                 tolerance=1e-4,
                 images=None):
    """Export ``config``'s classifier (or its backbone) to the ONNX file
    ``out`` as ``tools/deployment/pytorch2onnx.py`` does: checked with
    onnxruntime against the model as trained first, and written only when
    the largest absolute difference is at most ``tolerance``. Returns that
    difference."""
    check_output_file(out)  # before any work
    if checkpoint:
        resolve(checkpoint)  # a path, an URL or mmvan://<name>
    if opset < 17:
        raise UserError('--opset must be 17 or newer (LayerNorm).')
    ort = get_runtime('onnxruntime').import_module()  # one line if missing
    import onnx  # optional: checks the exported graph (optional.txt)
    exported, reference = build(config, checkpoint, backbone_only,
                                not no_deploy)
    outputs = (['stage1', 'stage2', 'stage3', 'stage4']
               if backbone_only else ['logits'])
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {'image': {0: 'batch', 2: 'height', 3: 'width'}}
        for name in outputs:
            dynamic_axes[name] = {0: 'batch'}
            if backbone_only:
                dynamic_axes[name].update({2: f'{name}_h', 3: f'{name}_w'})
    dummy = torch.rand(1, 3, *shape) * 255
    buffer = io.BytesIO()
    # The tracer notes each Python condition on a tensor (the shape checks
    # of the CPU batch slicing); the graph is checked below.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        torch.onnx.export(
            exported, (dummy, ),
            buffer,
            input_names=['image'],
            output_names=outputs,
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            dynamo=False)
    data = buffer.getvalue()
    onnx.checker.check_model(onnx.load_from_string(data))
    session = ort.InferenceSession(data, providers=['CPUExecutionProvider'])
    worst = 0.0
    for name, arr in check_inputs(shape, dynamic, images):
        got = session.run(None, {'image': arr})
        with torch.no_grad():
            want = reference(torch.from_numpy(arr))
        want = want if isinstance(want, (tuple, list)) else [want]
        diff = max(
            float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want))
        worst = max(worst, diff)
        print(f'onnxruntime vs PyTorch, {name} {tuple(arr.shape)}: max '
              f'|diff| = {diff:.3g}')
    if worst > tolerance:
        raise UserError(f'The ONNX model differs from PyTorch by {worst:.3g} '
                        f'(> {tolerance}); nothing was written.')
    # Complete or not at all, with the umask's mode.
    atomic_write(out, data)
    print(f'saved {out} (opset {opset}, '
          f'{"dynamic" if dynamic else "static"} shape, '
          f'{"folded" if not no_deploy else "as trained"}); '
          f'max |diff| {worst:.3g}')
    return worst
