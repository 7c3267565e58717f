# Copyright (c) mmvan contributors. All rights reserved.
"""Export the folded model to ONNX, and the cache of exported files.

An exported file lives next to its checkpoint (or, where that folder cannot
be written, in ``$MMVAN_EXPORT_DIR``, default ``~/.cache/mmvan/exports``),
named ``<checkpoint>.<backend>-<part>-<key>.<ext>``. The key hashes
everything the file depends on: the checkpoint's sha256, the model config,
the input shape policy, the exporter (torch, opset) and the engine's
version. A file of another key for the same checkpoint, backend and part is
stale and removed when the new one is written, so a changed checkpoint or
an upgraded engine rebuilds the export.
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

from mmvan.utils.errors import UserError

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
    from mmvan.apis.deploy import fuse_model
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
    from mmvan.utils.atomic import atomic_write
    axes = {input_name: {0: 'batch', 2: 'height', 3: 'width'}}
    for name in output_names:
        axes[name] = {0: 'batch'}
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
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
    folder = osp.dirname(full)
    while not osp.exists(folder):
        folder = osp.dirname(folder)
    if not osp.isdir(folder):
        raise UserError(f'{flag} {path} cannot be written: {folder} is a '
                        f'file, not a folder.')
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f'{flag} {path} cannot be written: no permission '
                        f'in {folder}.')
    return full


_SHA_CACHE = {}


def checkpoint_sha256(path):
    """sha256 of a checkpoint file (memoised per path, size and mtime)."""
    from mmvan.converters import sha256_of
    st = os.stat(path)
    key = (osp.abspath(path), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_of(path)
    return _SHA_CACHE[key]


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
        """Remove the files of other keys (an older checkpoint or engine)."""
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
        from mmvan.utils.atomic import atomic_write
        data = dict(self.fields, key=self.key, **info)
        atomic_write(
            self.path('.json'),
            json.dumps(data, indent=2, default=str),
            mode='w',
            encoding='utf-8')
