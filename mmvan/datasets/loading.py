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
"""
import os
import sys

from mmcv.transforms import LoadImageFromFile as _MMCVLoadImageFromFile

from mmvan.registry import TRANSFORMS
from mmvan.utils.errors import DataError

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
