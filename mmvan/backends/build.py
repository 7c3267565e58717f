# Copyright (c) mmvan contributors. All rights reserved.
"""Put the exported part of a model on a backend, checked on real images.

:func:`build_backend_model` replaces the exported part of a model by a
:class:`~mmvan.backends.wrapper.BackendModule` once it passed the check
(:mod:`mmvan.backends.check`); :func:`deploy_model` is the choice
:func:`mmvan.apis.init_model` makes (``backend='auto'`` and its fallback);
:func:`module_predictor` runs any module's ``forward(x)`` on a backend
without changing it (:func:`mmvan.apis.optimize_for_inference`).
"""
import os
import os.path as osp
import warnings

import torch

from mmvan.models.utils.deploy import fuse_model
from mmvan.utils.errors import MMVanError, UserError
from mmvan.zoo import resolve
from .check import (TOLERANCE, BackendCheckError, check_images, check_inputs,
                    compare, imagenet_batch)
from .export import ExportCache, export_file, export_onnx, fold_for_export
from .predictors import RuntimePredictor, TorchPredictor
from .runtimes import (BACKENDS, PRECISIONS, BackendUnsupportedError,
                       get_runtime, native_bf16, pick_backend)
from .wrapper import (BackendModule, ModuleGraph, exported_part, install,
                      part_graph)


def make_predictor(model,
                   part,
                   backend,
                   precision,
                   checkpoint,
                   example,
                   calibration=None,
                   threads=None):
    """A predictor of ``part`` on ``backend``; returns ``(predictor,
    info)``."""
    if backend == 'pytorch':
        graph = part_graph(fold_for_export(model), part).eval()
        return TorchPredictor(graph, precision), dict(file=None, cached=False)
    runtime_cls = get_runtime(backend)
    runtime_cls.import_module()
    runtime_cls.check_precision(precision)
    path, cache, cached = export_file(model, part, backend, precision,
                                      checkpoint, example, calibration)
    runtime = runtime_cls(path, precision=precision, threads=threads)
    info = dict(file=path, cached=cached, cache=cache)
    return RuntimePredictor(runtime), info


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
    (:func:`~mmvan.backends.check_inputs`). The check must pass
    :data:`~mmvan.backends.TOLERANCE`, or
    :class:`~mmvan.backends.BackendCheckError` is raised and the model is
    left unchanged.

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
            :func:`~mmvan.backends.check_images`, shipped with mmvan).
        calibration (list[Tensor], optional): int8 calibration batches as
            the part receives them (default: the check inputs).
        track_fp32 (bool): With a reduced precision, also run the part in
            fp32 and count the agreement (``BackendModule.agreement``).
        threads (int, optional): Runtime threads (default: torch's).
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
        get_runtime(backend).import_module()
        get_runtime(backend).check_precision(precision)
    model.eval()
    part = exported_part(model)
    reference = part_graph(model, part).eval()
    inputs = check_inputs(model, part, images, cfg)
    with torch.no_grad():
        want = [[o.float() for o in reference(x)] for x in inputs]
    if precision == 'int8' and calibration is None:
        calibration = inputs
    predictor, info = make_predictor(model, part, backend, precision,
                                     checkpoint, inputs[0], calibration,
                                     threads)
    worst = dict(max_rel=0.0, top1_agree=1.0)
    for x, w in zip(inputs, want):
        result = compare(predictor(x), w)
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
        report['runs'] = predictor.runtime.runs_precision
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
            f'{osp.basename((images or check_images())[0])} (allowed '
            f'{TOLERANCE[precision]:g}); refusing to use it. Use '
            f"backend='pytorch', or report this with the runtime's version.")
    if info.get('cache') is not None:
        info['cache'].write_manifest({
            k: v
            for k, v in report.items() if k not in ('file', 'cached')
        })
    module = BackendModule(predictor, backend, precision, part, report)
    if track_fp32 and precision != 'fp32':
        module.shadow, _ = make_predictor(model, part, backend, 'fp32',
                                          checkpoint, inputs[0], None, threads)
    install(model, part, module)
    model.backend, model.precision = backend, precision
    model.backend_report = report
    return model


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
    If the runtime ``auto`` picked cannot export or check the model, it
    falls back to PyTorch with a warning; a backend asked for by name
    refuses instead.
    """
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


def module_predictor(module,
                     backend='auto',
                     precision='fp32',
                     shape=(224, 224),
                     threads=None):
    """Run ``module(x)`` (a VAN, or a classifier whose ``forward(x)`` gives
    logits) on ``backend``, checked against ``module`` on the check images
    at ``shape`` (ImageNet normalisation). ``module`` is not changed.

    Returns:
        tuple: ``(predictor, report, as_tuple)``: ``predictor(x)`` returns
        a list of tensors; ``as_tuple`` says whether ``module`` returns a
        tuple.
    """
    if backend == 'auto':
        backend = pick_backend('cpu', precision)
    module.eval()
    graph = ModuleGraph(module).eval()
    x = imagenet_batch(shape)
    with torch.no_grad():
        raw = module(x)
        want = [o.float() for o in graph(x)]
    as_tuple = isinstance(raw, (tuple, list))
    if backend == 'pytorch':
        predictor = TorchPredictor(fold_for_export(graph), precision)
        file = None
    else:
        runtime_cls = get_runtime(backend)
        runtime_cls.import_module()
        runtime_cls.check_precision(precision)
        if precision == 'int8':
            raise BackendUnsupportedError(
                'int8 needs a calibration set: use init_model(..., '
                "precision='int8') or tools/test.py --precision int8.")
        cache = ExportCache(None, backend, 'module', {})
        folded = fold_for_export(graph).eval()
        names = [f'out{i}' for i in range(len(want))]
        file = cache.path(runtime_cls.suffix)
        onnx_path = cache.path('.onnx')
        export_onnx(folded, x, onnx_path, names)
        if runtime_cls.suffix != '.onnx':
            runtime_cls.convert(onnx_path, file)
        predictor = RuntimePredictor(
            runtime_cls(file, precision=precision, threads=threads))
        predictor.cache = cache  # keeps the temporary folder alive
    report = dict(backend=backend, precision=precision, file=file)
    report.update(compare(predictor(x), want))
    if want[0].dim() != 2:
        report.pop('top1_agree')  # not logits
    if not report['max_rel'] <= TOLERANCE[precision]:
        raise BackendCheckError(
            f'backend {backend!r} ({precision}) differs from the PyTorch '
            f'module by {report["max_rel"]:.3g} relative on the check '
            f'images (allowed {TOLERANCE[precision]:g}); refusing to use it.')
    return predictor, report, as_tuple
