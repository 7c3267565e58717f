# Copyright (c) mmvan contributors. All rights reserved.
"""Image loading with a policy for unreadable files.

``mmvan.LoadImageFromFile`` is mmcv's ``LoadImageFromFile`` (same arguments,
same decoding) that names the file when it cannot be read (a zero-byte or
truncated JPEG, a file that is no image) instead of failing inside cv2:

- ``on_error='raise'`` (validation, testing): a
  :class:`~mmvan.utils.errors.DataError` naming the file;
- ``on_error='skip'`` (training, the default of ``tools/train.py``): the
  sample is dropped (mmengine's dataset draws another one), the file is
  reported once per process on stderr and appended to the list named by
  ``MMVAN_UNREADABLE_LOG``, which :class:`~mmvan.engine.hooks.
  UnreadableImageHook` counts against the allowed share of the data set.

It works the same in data loader workers and in every rank: the list is a
file that each process appends to.

The same module holds the one rule that finds the image loader in a
pipeline, :func:`is_image_loader` (``LoadImageFromFile`` of any scope,
e.g. the ``mmvan.LoadImageFromFile`` of the config ``tools/train.py``
saves in its work dir), and :func:`load_image`, which decodes an image for
inference as that loader does.
"""
import os
import os.path as osp
import sys
from typing import Optional, Union

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile as _MMCVLoadImageFromFile
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import DefaultScope
from PIL import Image, UnidentifiedImageError

from mmvan.registry import TRANSFORMS
from mmvan.utils.errors import DataError, UserError

LOG_ENV = 'MMVAN_UNREADABLE_LOG'
_REPORTED = set()


def record_unreadable(path, reason, log=None):
    """Report ``path`` once per process and append it to the shared
    list."""
    if path in _REPORTED:
        return
    _REPORTED.add(path)
    print(
        f'warning: skipped unreadable image {path} ({reason})',
        file=sys.stderr,
        flush=True)
    log = log or os.environ.get(LOG_ENV)
    if log:
        line = f'{path}\t{reason}\n'.encode('utf-8', 'replace')
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def read_unreadable(log):
    """``{path: reason}`` from the shared list (empty if none)."""
    out = {}
    if not log or not os.path.isfile(log):
        return out
    with open(log, encoding='utf-8', errors='replace') as f:
        for line in f:
            path, _, reason = line.rstrip('\n').partition('\t')
            if path:
                out.setdefault(path, reason)
    return out


def _reason(exc):
    text = str(exc).strip().splitlines()
    text = text[-1] if text else type(exc).__name__
    if '!buf.empty()' in text or 'empty' in text.lower():
        return 'empty file'
    return text[:200]


@TRANSFORMS.register_module()
class LoadImageFromFile(_MMCVLoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` with a stated policy for unreadable
    images.

    Args:
        on_error (str): ``'raise'`` (default) or ``'skip'``.
        **kwargs: mmcv's ``LoadImageFromFile`` arguments.
    """

    def __init__(self, on_error='raise', **kwargs):
        if on_error not in ('raise', 'skip'):
            raise ValueError(f"on_error must be 'raise' or 'skip', got "
                             f'{on_error!r}.')
        super().__init__(**kwargs)
        self.on_error = on_error

    def transform(self, results):
        path = results.get('img_path')
        try:
            out = super().transform(results)
            reason = None if out is not None else 'cannot be decoded'
        except (Exception, AssertionError) as e:  # noqa: B902 - cv2, PIL
            out, reason = None, _reason(e)
            if str(e).startswith('failed to load image'):
                reason = 'truncated or not an image'
        if out is not None:
            return out
        if self.on_error == 'skip':
            record_unreadable(path, reason)
            return None
        raise DataError(
            f'cannot read image {path}: {reason}. Replace or remove it; '
            f'tools/analysis_tools/check_dataset.py CONFIG lists every such '
            f'file.')

    def __repr__(self):
        return super().__repr__()[:-1] + f", on_error='{self.on_error}')"


LOADER = 'LoadImageFromFile'


def is_image_loader(step):
    """Whether a pipeline step decodes the image file: a
    ``LoadImageFromFile`` of any scope (``'LoadImageFromFile'``,
    ``'mmpretrain.LoadImageFromFile'``, ``'mmvan.LoadImageFromFile'``, ...)
    or such a class given as the type."""
    if not isinstance(step, dict):
        return False
    kind = step.get('type')
    if isinstance(kind, type):
        return kind.__name__ == LOADER
    return isinstance(kind, str) and kind.rsplit('.', 1)[-1] == LOADER


def dataset_pipelines(dataset_cfg):
    """Every pipeline list of a dataset config (wrappers such as
    ``RepeatDataset`` and ``ConcatDataset`` included)."""
    if not isinstance(dataset_cfg, dict):
        return
    if isinstance(dataset_cfg.get('pipeline'), list):
        yield dataset_cfg['pipeline']
    yield from dataset_pipelines(dataset_cfg.get('dataset'))
    for inner in dataset_cfg.get('datasets') or []:
        yield from dataset_pipelines(inner)


def test_loader_step(cfg):
    """The image loader of the config's test pipeline (else the
    validation one's), or None."""
    for name in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(name) or {}
        for pipeline in dataset_pipelines(loader.get('dataset')):
            for step in pipeline:
                if is_image_loader(step):
                    return step
    return None


def test_pipeline_after_loader(cfg, scope='mmpretrain'):
    """The test pipeline of ``cfg`` (``test_dataloader.dataset.pipeline``)
    without its image loader, built in ``scope``: it takes the decoded
    image as ``results['img']``."""
    steps = [
        step for step in cfg.test_dataloader.dataset.pipeline
        if not is_image_loader(step)
    ]
    with DefaultScope.overwrite_default_scope(scope):
        return Compose(steps)


# Larger images are refused before decoding (PIL's decompression-bomb guard
# is the model: its limit is 89.5 M pixels, twice that is an error).
MAX_PIXELS = 178_956_970
# Width / height (or height / width) beyond this is refused: resizing the
# short side to the model's input would make a huge tensor.
MAX_ASPECT = 50


def _check_size(h, w, what):
    if h * w > MAX_PIXELS:
        raise DataError(
            f'{what} is {w}x{h} = {h * w / 1e6:.0f} M pixels, more than the '
            f'{MAX_PIXELS / 1e6:.0f} M mmvan decodes (a decompression bomb '
            f'guard). Downscale it first.')
    if min(h, w) == 0 or max(h, w) / min(h, w) > MAX_ASPECT:
        raise DataError(
            f'{what} is {w}x{h}: an aspect ratio beyond 1:{MAX_ASPECT}, '
            f'which the test pipeline would blow up to a huge tensor. Crop '
            f'it first.')


def _decode_args(cfg):
    """``color_type`` and ``imdecode_backend`` of the config's test
    loader (mmcv's defaults without one)."""
    args = dict(color_type='color', imdecode_backend='cv2')
    step = test_loader_step(cfg) if cfg is not None else None
    for key in args:
        if step is not None and key in step:
            args[key] = step[key]
    return args


def load_image(img: Union[str, np.ndarray],
               cfg: Optional[Config] = None) -> np.ndarray:
    """An image as an ``HxWx3`` uint8 BGR array (OpenMMLab's convention),
    decoded exactly as the config's test pipeline decodes it.

    A path is read with mmcv's decoder and the test loader's settings
    (``color_type``, ``imdecode_backend``): EXIF orientation applied, 16-bit
    images reduced as the loader does, gray and RGBA made 3-channel. An
    array is taken as BGR (gray and RGBA made 3-channel). Images beyond
    :data:`MAX_PIXELS` or an aspect ratio of 1:``MAX_ASPECT`` are refused
    before decoding. Unreadable inputs raise
    :class:`~mmvan.utils.errors.UserError`.
    """
    if isinstance(img, np.ndarray):
        arr = img
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        elif arr.ndim == 3 and arr.shape[2] == 4:
            arr = arr[..., :3]
        elif arr.ndim == 3 and arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise UserError(f'Expected an HxW or HxWxC image array, got '
                            f'shape {img.shape}.')
        _check_size(arr.shape[0], arr.shape[1], 'The image array')
        if arr.dtype != np.uint8:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(arr)
    path = str(img)
    if not osp.isfile(path):
        raise UserError(f'Image {path} does not exist.')
    try:
        with Image.open(path) as pil:
            w, h = pil.size
    except UnidentifiedImageError:
        raise UserError(f'{path} is not an image that can be read (PIL '
                        f'does not recognise its format).') from None
    except Image.DecompressionBombError as e:
        raise DataError(f'{path}: {e}') from None
    except OSError as e:
        raise UserError(f'Cannot read image {path}: {e}.') from None
    _check_size(h, w, path)
    args = _decode_args(cfg)
    try:
        with open(path, 'rb') as f:
            arr = mmcv.imfrombytes(
                f.read(),
                flag=args['color_type'],
                backend=args['imdecode_backend'])
    except Exception as e:  # noqa: B902 - cv2 and PIL raise their own
        raise UserError(f'Cannot read image {path}: {e}.') from None
    if arr is None:
        raise UserError(f'Cannot read image {path}: it is truncated or '
                        f'corrupt.')
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3])
