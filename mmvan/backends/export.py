# Copyright (c) mmvan contributors. All rights reserved.
"""Export the folded model to ONNX, and the cache of exported files.

:func:`export_file` gives a backend's file for the exported part of a
model: from the cache when its key matches, else exported (converted to the
runtime's format, or quantised) now.

An exported file lives next to its checkpoint (or, where that folder cannot
be written, in ``$MMVAN_EXPORT_DIR``, default ``~/.cache/mmvan/exports``),
named ``<checkpoint>.<backend>-<part>-<key>.<ext>``. The key hashes
everything the file depends on: the checkpoint's sha256, the model config,
the input shape policy, the exporter (torch, opset) and the runtime's
version. A file of another key for the same checkpoint, backend and part is
stale and removed when the new one is written, so a changed checkpoint or
an upgraded runtime rebuilds the export.
"""
import copy
import glob
import hashlib
import io
import json
import os
import os.path as osp
import tempfile
import warnings

import torch
import torch.nn as nn

from mmvan.models.utils.deploy import fuse_model
from mmvan.utils.atomic import atomic_write, creation_blocker
from mmvan.utils.errors import UserError
from mmvan.zoo.download import file_sha256
from .quantize import quantize_int8
from .runtimes import get_runtime
from .wrapper import part_graph

OPSET = 17
# Inputs and outputs have dynamic batch, height and width; the graph is
# traced at the size the check image has after the test pipeline.
SHAPE_POLICY = 'dynamic-batch-height-width'
CACHE_ENV = 'MMVAN_EXPORT_DIR'


def fold_for_export(module):
    """A folded copy of ``module`` for export: BatchNorms and layer scales
    in the convolutions, channels-first, dilated depth-wise kernels kept
    dilated (the zero-stuffed dense kernels PyTorch's CPU path prefers are
    slower in ONNX Runtime and OpenVINO, which have dilated kernels)."""
    folded = copy.deepcopy(module).eval()
    dilated = {
        name: (m.dilation, m.kernel_size)
        for name, m in folded.named_modules()
        if isinstance(m, nn.Conv2d) and tuple(m.dilation) != (1, 1)
    }
    fuse_model(folded, channels_last=False)
    with torch.no_grad():
        for name, (dilation, kernel) in dilated.items():
            conv = folded.get_submodule(name)
            if tuple(conv.dilation) == tuple(dilation):
                continue
            dh, dw = dilation
            weight = conv.weight
            taps = torch.zeros_like(weight, dtype=torch.bool)
            taps[:, :, ::dh, ::dw] = True
            if weight[~taps].abs().max() > 0:
                continue  # not a zero-stuffed kernel: keep it dense
            conv.weight = nn.Parameter(
                weight[:, :, ::dh, ::dw].contiguous(), requires_grad=False)
            conv.kernel_size, conv.dilation = tuple(kernel), tuple(dilation)
    return folded


def export_onnx(module, example, path, output_names, input_name='image'):
    """Trace ``module`` at ``example`` (N x 3 x H x W) into an ONNX file
    with dynamic batch, height and width, written atomically."""
    axes = {input_name: {0: 'batch', 2: 'height', 3: 'width'}}
    for name in output_names:
        axes[name] = {0: 'batch'}
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter (the one that keeps dynamic height and
        # width) announces its deprecation, and tracing notes shape-dependent
        # Python values; neither concerns the exported graph.
        warnings.simplefilter('ignore', DeprecationWarning)
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        torch.onnx.export(
            module, (example, ),
            buffer,
            input_names=[input_name],
            output_names=list(output_names),
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False)
    return atomic_write(path, buffer.getvalue())


def check_output_file(path, flag='--out'):
    """Refuse, before any work, an output ``path`` that cannot be written
    as a file: a folder, or a folder that cannot be created or written."""
    full = osp.abspath(osp.expanduser(str(path)))
    if osp.isdir(full):
        raise UserError(f'{flag} {path} is a folder; give a file name '
                        f'(e.g. {osp.join(str(path), "model.onnx")}).')
    folder, blocker = creation_blocker(osp.dirname(full))
    if blocker == 'file':
        raise UserError(f'{flag} {path} cannot be written: {folder} is a '
                        f'file, not a folder.')
    if blocker == 'permission':
        raise UserError(f'{flag} {path} cannot be written: no permission '
                        f'in {folder}.')
    return full


def checkpoint_sha256(path):
    """sha256 of a checkpoint file (memoised per path, size and mtime:
    :func:`mmvan.zoo.download.file_sha256`)."""
    return file_sha256(path)


def cache_key(**fields):
    """A short hash of the fields a cached file depends on."""
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _writable(folder):
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def cache_folder(checkpoint_path):
    """Next to the checkpoint, else ``$MMVAN_EXPORT_DIR``."""
    folder = osp.dirname(osp.abspath(checkpoint_path))
    if _writable(folder):
        return folder
    fallback = os.environ.get(CACHE_ENV) or osp.join(
        osp.expanduser('~'), '.cache', 'mmvan', 'exports')
    os.makedirs(fallback, exist_ok=True)
    return fallback


class ExportCache:
    """The cached files of one (checkpoint, backend, part).

    Args:
        checkpoint (str | None): The resolved checkpoint file. None (a
            randomly initialised model) exports into a temporary folder
            that lives as long as this object.
        backend (str): The backend's name.
        part (str): What is exported (``model`` or ``backbone``).
        fields (dict): Everything else the files depend on.
    """

    def __init__(self, checkpoint, backend, part, fields):
        self.backend, self.part = backend, part
        self._tmp = None
        if checkpoint is None:
            self._tmp = tempfile.TemporaryDirectory(prefix='mmvan-export-')
            folder, stem = self._tmp.name, 'random-init'
            fields = dict(fields, checkpoint=None)
        else:
            folder = cache_folder(checkpoint)
            stem = osp.basename(checkpoint)
            fields = dict(
                fields, checkpoint_sha256=checkpoint_sha256(checkpoint))
        self.fields = fields
        self.key = cache_key(**fields)
        self.prefix = osp.join(folder, f'{stem}.{backend}-{part}-')

    def path(self, suffix):
        """The cached file of this key with ``suffix`` (e.g. ``.onnx``)."""
        return f'{self.prefix}{self.key}{suffix}'

    def hit(self, suffix):
        return osp.isfile(self.path(suffix))

    def remove_stale(self):
        """Remove the files of other keys (an older checkpoint or runtime)."""
        removed = []
        for path in glob.glob(glob.escape(self.prefix) + '*'):
            if not osp.basename(path).startswith(
                    osp.basename(self.prefix) + self.key):
                try:
                    os.remove(path)
                    removed.append(path)
                except OSError:
                    pass
        return removed

    def write_manifest(self, info):
        data = dict(self.fields, key=self.key, **info)
        atomic_write(
            self.path('.json'),
            json.dumps(data, indent=2, default=str),
            mode='w',
            encoding='utf-8')


def part_structure(model, part):
    """What the exported graph computes besides the weights: the modules
    of the part (their repr: shapes, kernels, dilations, norms) and the
    backbone's outputs."""
    module = model if part == 'model' else model.backbone
    text = repr(module)
    out_indices = getattr(model.backbone, 'out_indices', None)
    return dict(
        modules=hashlib.sha256(text.encode()).hexdigest(),
        out_indices=list(out_indices) if out_indices is not None else None)


def calibration_key(calibration):
    """What the int8 file depends on of its calibration batches."""
    if calibration is None:
        return None
    return [tuple(c.shape) + (float(c.double().sum()), ) for c in calibration]


def export_file(model, part, backend, precision, checkpoint, example,
                calibration):
    """The runtime's file for ``part`` of ``model``: from the cache when its
    key matches, else exported (and converted) now.

    Returns:
        tuple: ``(path, cache, cached)``: the file, its
        :class:`ExportCache` and whether it came from the cache.
    """
    runtime = get_runtime(backend)
    label = backend if precision != 'int8' else f'{backend}-int8'
    # The field names are part of the cache key of files exported before:
    # they stay as they are.
    fields = dict(
        structure=part_structure(model, part),
        part=part,
        shape_policy=SHAPE_POLICY,
        exporter=f'torch {torch.__version__} opset {OPSET}',
        engine=backend,
        engine_version=runtime.version())
    if precision == 'int8':
        fields['calibration'] = calibration_key(calibration)
    cache = ExportCache(checkpoint, label, part, fields)
    suffix = runtime.suffix
    if cache.hit(suffix) and (suffix != '.xml' or cache.hit('.bin')):
        return cache.path(suffix), cache, True
    graph = part_graph(fold_for_export(model), part).eval()
    names = ['logits']
    if part != 'model':
        names = [f'feat{i}' for i in range(len(model.backbone.out_indices))]
    folder = osp.dirname(cache.path(suffix))
    with tempfile.TemporaryDirectory(dir=folder, prefix='.export-') as tmp:
        onnx_path = osp.join(tmp, 'model.onnx')
        export_onnx(graph, example, onnx_path, names)
        if precision == 'int8':
            quantize_int8(onnx_path, cache.path('.onnx'), calibration)
        elif suffix == '.onnx':
            with open(onnx_path, 'rb') as f:
                atomic_write(cache.path('.onnx'), f.read())
        else:
            runtime.convert(onnx_path, cache.path(suffix))
    cache.remove_stale()
    return cache.path(suffix), cache, False
