# Copyright (c) mmvan contributors. All rights reserved.
"""Put the exported part of a model on a backend, checked on real images.

A classifier is exported whole (backbone, neck and the head's linear
layer: normalised image in, logits out); a detector or segmentor exports
its backbone, and its neck and head stay in PyTorch. The exported part is
replaced inside the model by an :class:`EngineModule`, so the model keeps
its class, data preprocessor, ``test_step`` and data samples:
:func:`mmvan.apis.inference_model`, ``tools/test.py`` and mmengine's
Runner use it as before.
"""
import glob
import hashlib
import os
import os.path as osp
import tempfile
import threading

import mmcv
import numpy as np
import torch
import torch.nn as nn

from mmvan.datasets.loading import load_image, test_pipeline_after_loader
from mmvan.utils.errors import UserError
from .engines import (BACKENDS, PRECISIONS, BackendUnsupportedError,
                      get_engine, native_bf16)
from .export import (OPSET, SHAPE_POLICY, ExportCache, export_onnx,
                     fold_for_export)

# Largest relative difference (max |got - want| / max |want|) from the
# model as trained, per precision. fp32 is the exactness bar; bf16 keeps
# 8 bits of mantissa (about 1e-2 relative on VAN's logits); int8 is a
# coarser sanity bar (its real measure is the top-1 agreement).
TOLERANCE = {'fp32': 1e-4, 'bf16': 5e-2, 'int8': 0.3}
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# Calls from several threads add to the agreement counts one at a time
# (a module-level lock: a lock attribute would stop a model from being
# copied).
_AGREEMENT_LOCK = threading.Lock()


class BackendCheckError(UserError):
    """A backend model does not compute what the PyTorch model computes."""


class EngineModule(nn.Module):
    """Runs an exported part of a model; stands where that part was.

    Returns a tuple of tensors (the backbone's outputs, or ``(logits, )`` for
    a whole classifier) on the input's device. ``deploy`` is True: it runs
    the folded model. With a ``shadow`` (the same part in fp32) it also
    counts how often the two agree (:attr:`agreement`).
    """
    deploy = True

    def __init__(self, runner, backend, precision, part, report=None):
        super().__init__()
        self.runner = runner
        self.backend, self.precision, self.part = backend, precision, part
        self.report = report or {}
        self.shadow = None
        self.agreement = dict(images=0, top1_same=0, max_rel=0.0)

    def extra_repr(self):
        return (f'backend={self.backend}, precision={self.precision}, '
                f'part={self.part}')

    def forward(self, x, *args, **kwargs):
        outs = self.runner(x)
        if self.shadow is not None:
            self._count(outs, self.shadow(x))
        return tuple(o.to(x.device) for o in outs)

    def _count(self, outs, ref):
        with _AGREEMENT_LOCK:
            self._add(outs, ref)

    def _add(self, outs, ref):
        stats = self.agreement
        stats['images'] += int(outs[0].shape[0])
        if self.part == 'model':
            same = outs[0].argmax(1) == ref[0].argmax(1)
            stats['top1_same'] += int(same.sum())
        for o, r in zip(outs, ref):
            rel = float(
                (o.float() - r).abs().max() / r.abs().max().clamp_min(1e-12))
            stats['max_rel'] = max(stats['max_rel'], rel)


class EngineRunner:
    """An engine as a tensor -> list of tensors function."""

    def __init__(self, engine):
        self.engine = engine

    def __call__(self, x):
        arr = x.detach().to('cpu', torch.float32).contiguous().numpy()
        return [torch.from_numpy(np.asarray(o)) for o in self.engine(arr)]


class TorchRunner:
    """The folded part in PyTorch, float32 or bfloat16 (weights and
    activations; outputs returned as float32)."""

    def __init__(self, graph, precision='fp32'):
        from mmvan.apis.deploy import fuse_model
        if precision not in ('fp32', 'bf16'):
            raise BackendUnsupportedError(
                f"backend 'pytorch' has no {precision} mode; int8 runs on "
                f"backend='onnxruntime'.")
        fuse_model(graph)
        self.dtype = torch.bfloat16 if precision == 'bf16' else torch.float32
        self.graph = graph.to(self.dtype)

    def __call__(self, x):
        x = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            outs = self.graph(x)
        outs = outs if isinstance(outs, (tuple, list)) else (outs, )
        return [o.float() for o in outs]


class _ClassifierGraph(nn.Module):
    """Normalised image -> logits (backbone, neck, head)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return (self.model(x, mode='tensor'), )


class _BackboneGraph(nn.Module):

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        return tuple(self.backbone(x))


def exported_part(model):
    """``'model'`` for a classifier whose head is a linear layer on the
    last feature (exported whole), ``'backbone'`` otherwise."""
    from mmpretrain.models.classifiers import ImageClassifier
    from mmpretrain.models.heads import ClsHead, LinearClsHead
    head = getattr(model, 'head', None)
    last_feature = (ClsHead.pre_logits, LinearClsHead.pre_logits)
    task = getattr(model, 'task', None)
    if task is None and isinstance(model, ImageClassifier):
        task = 'cls'
    if (task == 'cls' and head is not None
            and isinstance(getattr(head, 'fc', None), nn.Linear)
            and type(head).pre_logits in last_feature):
        return 'model'
    return 'backbone'


def _graph(model, part):
    if part == 'model':
        return _ClassifierGraph(model)
    return _BackboneGraph(model.backbone)


def demo_images():
    """The real images the backends are checked on (``demo/*.jpg``)."""
    return sorted(glob.glob(osp.join(ROOT, 'demo', '*.jpg')))


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
    paths = images or demo_images()
    if not paths:
        raise UserError(f'No image to check the backend model on: '
                        f'{osp.join(ROOT, "demo")} has no .jpg files.')
    paths = paths[:2]
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


def _structure(model, part):
    """What the exported graph computes besides the weights: the modules
    of the part (their repr: shapes, kernels, dilations, norms) and the
    backbone's outputs."""
    module = model if part == 'model' else model.backbone
    text = repr(module)
    out_indices = getattr(model.backbone, 'out_indices', None)
    return dict(
        modules=hashlib.sha256(text.encode()).hexdigest(),
        out_indices=list(out_indices) if out_indices is not None else None)


def _export_file(model, part, backend, precision, checkpoint, example,
                 calibration):
    """The engine's file for ``part`` of ``model``: from the cache when its
    key matches, else exported (and converted) now."""
    engine = get_engine(backend)
    label = backend if precision != 'int8' else f'{backend}-int8'
    fields = dict(
        structure=_structure(model, part),
        part=part,
        shape_policy=SHAPE_POLICY,
        exporter=f'torch {torch.__version__} opset {OPSET}',
        engine=backend,
        engine_version=engine.version())
    if precision == 'int8':
        fields['calibration'] = calibration_key(calibration)
    cache = ExportCache(checkpoint, label, part, fields)
    suffix = engine.suffix
    if cache.hit(suffix) and (suffix != '.xml' or cache.hit('.bin')):
        return cache.path(suffix), cache, True
    graph = _graph(fold_for_export(model), part).eval()
    names = ['logits']
    if part != 'model':
        names = [f'feat{i}' for i in range(len(model.backbone.out_indices))]
    folder = osp.dirname(cache.path(suffix))
    with tempfile.TemporaryDirectory(dir=folder, prefix='.export-') as tmp:
        onnx_path = osp.join(tmp, 'model.onnx')
        export_onnx(graph, example, onnx_path, names)
        if precision == 'int8':
            from .quantize import quantize_int8
            quantize_int8(onnx_path, cache.path('.onnx'), calibration)
        elif suffix == '.onnx':
            from mmvan.utils.atomic import atomic_write
            with open(onnx_path, 'rb') as f:
                atomic_write(cache.path('.onnx'), f.read())
        else:
            engine.convert(onnx_path, cache.path(suffix))
    cache.remove_stale()
    return cache.path(suffix), cache, False


def calibration_key(calibration):
    if calibration is None:
        return None
    return [tuple(c.shape) + (float(c.double().sum()), ) for c in calibration]


def make_runner(model,
                part,
                backend,
                precision,
                checkpoint,
                example,
                calibration=None,
                threads=None):
    """A runner of ``part`` on ``backend``; returns ``(runner, info)``."""
    if backend == 'pytorch':
        graph = _graph(fold_for_export(model), part).eval()
        return TorchRunner(graph, precision), dict(file=None, cached=False)
    engine_cls = get_engine(backend)
    engine_cls.import_module()
    engine_cls.check_precision(precision)
    path, cache, cached = _export_file(model, part, backend, precision,
                                       checkpoint, example, calibration)
    engine = engine_cls(path, precision=precision, threads=threads)
    info = dict(file=path, cached=cached, cache=cache)
    return EngineRunner(engine), info


def build_backend_model(model,
                        backend,
                        precision='fp32',
                        checkpoint=None,
                        images=None,
                        calibration=None,
                        track_fp32=False,
                        threads=None,
                        cfg=None):
    """Run the exportable part of ``model`` on ``backend``, in place.

    The model (from :func:`mmvan.apis.init_model` with ``deploy=False``, or
    a Runner's model with its weights loaded) must still be as trained: it
    is the reference the backend is checked against, on real images
    (:func:`check_inputs`). The check must pass :data:`TOLERANCE`, or
    :class:`BackendCheckError` is raised and the model is left unchanged.

    Args:
        model (nn.Module): A classifier, detector or segmentor with a VAN.
        backend (str): ``'pytorch'``, ``'onnxruntime'`` or ``'openvino'``.
        precision (str): ``'fp32'``, ``'bf16'`` (OpenVINO, PyTorch) or
            ``'int8'`` (ONNX Runtime, post-training static quantisation
            calibrated on ``calibration``).
        checkpoint (str, optional): The resolved checkpoint file the
            weights came from: the export is cached beside it. None
            exports into a temporary folder.
        images (list[str], optional): Images for the check (default
            ``demo/*.jpg``).
        calibration (list[Tensor], optional): int8 calibration batches as
            the part receives them (default: the check inputs).
        track_fp32 (bool): With a reduced precision, also run the part in
            fp32 and count the agreement (``EngineModule.agreement``).
        threads (int, optional): Engine threads (default: torch's).
        cfg (Config, optional): The model's config (default:
            ``model.cfg``): its test pipeline makes the check inputs.

    Returns:
        nn.Module: ``model``, with ``backend``, ``precision`` and
        ``backend_report`` (the check) set.
    """
    if backend not in BACKENDS:
        raise UserError(f'Unknown backend {backend!r}; expected one of '
                        f'{", ".join(("auto", ) + BACKENDS)}.')
    if precision not in PRECISIONS:
        raise UserError(f'Unknown precision {precision!r}; expected one of '
                        f'{", ".join(PRECISIONS)}.')
    if backend != 'pytorch':
        get_engine(backend).import_module()
        get_engine(backend).check_precision(precision)
    model.eval()
    part = exported_part(model)
    reference = _graph(model, part).eval()
    inputs = check_inputs(model, part, images, cfg)
    with torch.no_grad():
        want = [[o.float() for o in reference(x)] for x in inputs]
    if precision == 'int8' and calibration is None:
        calibration = inputs
    runner, info = make_runner(model, part, backend, precision, checkpoint,
                               inputs[0], calibration, threads)
    worst = dict(max_rel=0.0, top1_agree=1.0)
    for x, w in zip(inputs, want):
        result = compare(runner(x), w)
        worst['max_rel'] = max(worst['max_rel'], result['max_rel'])
        worst['top1_agree'] = min(worst['top1_agree'], result['top1_agree'])
    report = dict(
        backend=backend,
        precision=precision,
        part=part,
        file=info['file'],
        cached=info['cached'],
        max_rel=worst['max_rel'],
        images=len(inputs[0]) if part == 'model' else 1,
        sizes=[tuple(x.shape[2:]) for x in inputs],
        tolerance=TOLERANCE[precision])
    if part == 'model':
        report['top1_agree'] = worst['top1_agree']
    if backend == 'openvino' and precision == 'bf16':
        report['runs'] = runner.engine.runs_precision
    if precision == 'bf16':
        report['native_bf16'] = native_bf16()
    if not worst['max_rel'] <= TOLERANCE[precision]:
        if info.get('cache') is not None and not info['cached']:
            for suffix in ('.onnx', '.xml', '.bin'):
                try:
                    os.remove(info['cache'].path(suffix))
                except OSError:
                    pass
        raise BackendCheckError(
            f'backend {backend!r} ({precision}) differs from the PyTorch '
            f'model by {worst["max_rel"]:.3g} relative on '
            f'{osp.basename((images or demo_images())[0])} (allowed '
            f'{TOLERANCE[precision]:g}); refusing to use it. Use '
            f"backend='pytorch', or report this with the engine's version.")
    if info.get('cache') is not None:
        info['cache'].write_manifest({
            k: v
            for k, v in report.items() if k not in ('file', 'cached')
        })
    module = EngineModule(runner, backend, precision, part, report)
    if track_fp32 and precision != 'fp32':
        module.shadow, _ = make_runner(model, part, backend, 'fp32',
                                       checkpoint, inputs[0], None, threads)
    _install(model, part, module)
    model.backend, model.precision = backend, precision
    model.backend_report = report
    return model


def _install(model, part, module):
    model.backbone = module
    if part == 'model':
        # The graph ends with the head's linear layer: the neck ran inside
        # it and the head's softmax / data samples stay in PyTorch.
        model.neck = None
        model.head.fc = nn.Identity()


def engine_module(model):
    """The :class:`EngineModule` inside ``model``, or None."""
    for m in model.modules():
        if isinstance(m, EngineModule):
            return m
    return None


def check_request(backend, precision, device='cpu'):
    """Fail early (before a model is built) on a backend or precision
    that cannot be served: unknown, not installed, not offered."""
    if backend != 'auto' and backend not in BACKENDS:
        raise UserError(f'Unknown backend {backend!r}; expected one of '
                        f'{", ".join(("auto", ) + BACKENDS)}.')
    if precision not in PRECISIONS:
        raise UserError(f'Unknown precision {precision!r}; expected one of '
                        f'{", ".join(PRECISIONS)}.')
    if backend == 'pytorch' and precision == 'int8':
        raise BackendUnsupportedError(
            "backend 'pytorch' has no int8 mode; int8 runs on "
            "backend='onnxruntime'.")
    if backend not in ('auto', 'pytorch'):
        engine = get_engine(backend)
        engine.import_module()
        engine.check_precision(precision)


def deploy_model(model,
                 backend='auto',
                 precision='fp32',
                 device='cpu',
                 checkpoint=None,
                 **kwargs):
    """Make ``model`` (as trained, weights loaded, in eval mode) the
    inference model of ``backend``: PyTorch fp32 folds it
    (:func:`mmvan.apis.fuse_model`); every other choice goes through
    :func:`build_backend_model`.

    ``'auto'`` picks :func:`~mmvan.backends.pick_backend` for a model whose
    weights come from a checkpoint (the export is cached beside it) and the
    folded PyTorch model for a randomly initialised one (there is nothing
    to key a cache on, and exporting again on every call costs seconds).
    If the engine ``auto`` picked cannot export or check the model, it
    falls back to PyTorch with a warning; a backend asked for by name
    refuses instead.
    """
    import warnings

    from mmvan.apis.deploy import fuse_model
    from mmvan.utils.errors import MMVanError
    from .engines import pick_backend
    auto = backend == 'auto'
    if auto:
        backend = 'pytorch'
        if checkpoint is not None or precision != 'fp32':
            backend = pick_backend(device, precision)
    if backend not in BACKENDS:
        raise UserError(f'Unknown backend {backend!r}; expected one of '
                        f'{", ".join(("auto", ) + BACKENDS)}.')
    if backend == 'pytorch' and precision == 'fp32':
        fuse_model(model)
        model.backend, model.precision = 'pytorch', 'fp32'
        return model
    if not str(device).startswith('cpu'):
        raise BackendUnsupportedError(
            f'backend {backend!r} ({precision}) runs on CPU here; on '
            f'{device} use backend=\'pytorch\' (fp32).')
    path = None
    if checkpoint is not None:
        from mmvan.zoo import resolve
        path = resolve(checkpoint)[0]
    try:
        return build_backend_model(model, backend, precision, path, **kwargs)
    except MMVanError as e:
        if not auto or precision != 'fp32':
            raise
        reason = str(e)
    except Exception as e:  # noqa: B902 - exporters raise their own
        if not auto:
            raise UserError(f'exporting the model to {backend!r} failed: '
                            f'{type(e).__name__}: {e}') from e
        reason = f'{type(e).__name__}: {e}'
    warnings.warn(f"backend='auto': {backend} is not usable for this model "
                  f'({reason}); running the folded PyTorch model.')
    fuse_model(model)
    model.backend, model.precision = 'pytorch', 'fp32'
    return model


class _ModuleGraph(nn.Module):
    """Any module's ``forward(x)`` with its outputs as a tuple."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        out = self.module(x)
        return tuple(out) if isinstance(out, (tuple, list)) else (out, )


def module_runner(module,
                  backend='auto',
                  precision='fp32',
                  shape=(224, 224),
                  threads=None):
    """Run ``module(x)`` (a VAN, or a classifier whose ``forward(x)`` gives
    logits) on ``backend``, checked against ``module`` on the demo images
    at ``shape`` (ImageNet normalisation). ``module`` is not changed.

    Returns:
        tuple: ``(runner, report, as_tuple)``: ``runner(x)`` returns a list
        of tensors; ``as_tuple`` says whether ``module`` returns a tuple.
    """
    from .engines import pick_backend
    if backend == 'auto':
        backend = pick_backend('cpu', precision)
    module.eval()
    graph = _ModuleGraph(module).eval()
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    images = []
    for path in demo_images()[:2]:
        rgb = mmcv.imresize(load_image(path), (shape[1], shape[0]))[..., ::-1]
        images.append(
            torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))))
    x = (torch.stack(images).float() - mean) / std
    with torch.no_grad():
        raw = module(x)
        want = [o.float() for o in graph(x)]
    as_tuple = isinstance(raw, (tuple, list))
    if backend == 'pytorch':
        runner = TorchRunner(fold_for_export(graph), precision)
        file = None
    else:
        engine_cls = get_engine(backend)
        engine_cls.import_module()
        engine_cls.check_precision(precision)
        if precision == 'int8':
            raise BackendUnsupportedError(
                'int8 needs a calibration set: use init_model(..., '
                "precision='int8') or tools/test.py --precision int8.")
        cache = ExportCache(None, backend, 'module', {})
        folded = fold_for_export(graph).eval()
        names = [f'out{i}' for i in range(len(want))]
        file = cache.path(engine_cls.suffix)
        onnx_path = cache.path('.onnx')
        export_onnx(folded, x, onnx_path, names)
        if engine_cls.suffix != '.onnx':
            engine_cls.convert(onnx_path, file)
        runner = EngineRunner(
            engine_cls(file, precision=precision, threads=threads))
        runner.cache = cache  # keeps the temporary folder alive
    report = dict(backend=backend, precision=precision, file=file)
    report.update(compare(runner(x), want))
    if want[0].dim() != 2:
        report.pop('top1_agree')  # not logits
    if not report['max_rel'] <= TOLERANCE[precision]:
        raise BackendCheckError(
            f'backend {backend!r} ({precision}) differs from the PyTorch '
            f'module by {report["max_rel"]:.3g} relative on the demo images '
            f'(allowed {TOLERANCE[precision]:g}); refusing to use it.')
    return runner, report, as_tuple
