# Copyright (c) mmvan contributors. All rights reserved.
"""Export a VAN classifier (or a backbone) to ONNX and check it with
onnxruntime.

    python tools/deployment/pytorch2onnx.py configs/van/van-b0_8xb128_in1k.py \
        van-t.pth --out van-t.onnx --dynamic

The graph takes an RGB image batch, float32 in 0..255, NCHW, and applies the
config's normalisation itself; it returns the class logits (or, with
``--backbone-only``, the four stage feature maps, for detection and
segmentation feature extraction). The model is exported folded (BatchNorms
and layer scales inside the convolutions, dilated depth-wise kernels kept
dilated, which ONNX Runtime and OpenVINO run faster than the dense
zero-stuffed kernels PyTorch's CPU path uses; ``--no-deploy`` exports it as
trained). ``init_model(..., backend='onnxruntime'|'openvino')`` exports,
caches and runs the model itself; this tool writes a file for other
runtimes. The file is then run with onnxruntime on random and real images
(at a second size too with ``--dynamic``) and compared with the PyTorch
model as trained; the largest absolute difference must be at most
``--tolerance``, or nothing is kept.
"""
import argparse
import glob
import io
import os.path as osp
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
warnings.filterwarnings('ignore')

from mmvan.backends.export import check_output_file  # noqa: E402
from mmvan import cli  # noqa: E402
from mmvan.utils.atomic import atomic_write  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('config')
    p.add_argument('checkpoint', nargs='?', help='default: random init')
    p.add_argument('--out', required=True, help='.onnx file to write')
    p.add_argument('--shape', type=int, nargs=2, default=[224, 224])
    p.add_argument(
        '--dynamic',
        action='store_true',
        help='dynamic batch size, height and width')
    p.add_argument('--backbone-only', action='store_true')
    p.add_argument('--no-deploy', action='store_true')
    p.add_argument('--opset', type=int, default=17)
    p.add_argument('--tolerance', type=float, default=1e-4)
    p.add_argument(
        '--images',
        nargs='*',
        default=None,
        help='real images for the check (default: demo/*.jpg)')
    return p.parse_args(argv)


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


def build(args):
    """The model to export and, with the same weights, the model as
    trained to check it against."""
    import copy

    from mmvan.apis import init_model
    from mmvan.backends import fold_for_export
    model = init_model(args.config, args.checkpoint, deploy=False)
    if model.task != 'cls' and not args.backbone_only:
        raise cli.UserError(
            f'{args.config} is a {model.task} config: export its backbone '
            f'with --backbone-only (detector and segmentor heads are '
            f'exported with mmdeploy).')
    if args.backbone_only:
        model.backbone.out_indices = (0, 1, 2, 3)
    reference = Exported(copy.deepcopy(model), args.backbone_only).eval()
    if not args.no_deploy:
        model = fold_for_export(model)
    return Exported(model, args.backbone_only).eval(), reference


def check_inputs(args):
    rng = np.random.default_rng(0)
    h, w = args.shape
    sizes = [(h, w)]
    if args.dynamic:
        sizes.append((h + 37, w - 29 if w > 64 else w + 29))
    inputs = []
    for size in sizes:
        batch = 2 if args.dynamic else 1
        inputs.append(
            ('random', rng.uniform(0, 255,
                                   (batch, 3, *size)).astype(np.float32)))
        import mmcv

        from mmvan.apis import load_image
        paths = args.images
        if paths is None:
            paths = sorted(glob.glob(osp.join(ROOT, 'demo', '*.jpg')))
        for path in paths[:2]:
            rgb = load_image(path)[..., ::-1]
            rgb = mmcv.imresize(rgb, (size[1], size[0]))
            arr = np.ascontiguousarray(rgb.transpose(2, 0, 1))[None]
            inputs.append((osp.basename(path), arr.astype(np.float32)))
    return inputs


def main(argv=None):
    args = parse_args(argv)
    check_output_file(args.out)  # before any work
    if args.checkpoint:
        from mmvan.zoo import resolve
        resolve(args.checkpoint)  # a path, an URL or mmvan://<name>
    if args.opset < 17:
        raise cli.UserError('--opset must be 17 or newer (LayerNorm).')
    from mmvan.backends import get_runtime
    ort = get_runtime('onnxruntime').import_module()  # one line if missing
    exported, reference = build(args)
    outputs = (['stage1', 'stage2', 'stage3', 'stage4']
               if args.backbone_only else ['logits'])
    dynamic_axes = None
    if args.dynamic:
        dynamic_axes = {'image': {0: 'batch', 2: 'height', 3: 'width'}}
        for name in outputs:
            dynamic_axes[name] = {0: 'batch'}
            if args.backbone_only:
                dynamic_axes[name].update({2: f'{name}_h', 3: f'{name}_w'})
    dummy = torch.rand(1, 3, *args.shape) * 255
    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            exported, (dummy, ),
            buffer,
            input_names=['image'],
            output_names=outputs,
            dynamic_axes=dynamic_axes,
            opset_version=args.opset,
            dynamo=False)
    import onnx
    data = buffer.getvalue()
    onnx.checker.check_model(onnx.load_from_string(data))
    session = ort.InferenceSession(data, providers=['CPUExecutionProvider'])
    worst = 0.0
    for name, arr in check_inputs(args):
        got = session.run(None, {'image': arr})
        with torch.no_grad():
            want = reference(torch.from_numpy(arr))
        want = want if isinstance(want, (tuple, list)) else [want]
        diff = max(
            float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want))
        worst = max(worst, diff)
        print(f'onnxruntime vs PyTorch, {name} {tuple(arr.shape)}: max '
              f'|diff| = {diff:.3g}')
    if worst > args.tolerance:
        raise cli.UserError(
            f'The ONNX model differs from PyTorch by {worst:.3g} '
            f'(> {args.tolerance}); nothing was written.')
    # Complete or not at all, with the umask's mode.
    atomic_write(args.out, data)
    print(f'saved {args.out} (opset {args.opset}, '
          f'{"dynamic" if args.dynamic else "static"} shape, '
          f'{"folded" if not args.no_deploy else "as trained"}); '
          f'max |diff| {worst:.3g}')
    return worst


if __name__ == '__main__':
    cli.run_cli(main)
