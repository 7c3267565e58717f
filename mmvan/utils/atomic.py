# Copyright (c) mmvan contributors. All rights reserved.
"""Atomic file writes.

A file is written to a temporary name in its own folder, flushed to disk and
renamed over the destination, so a crash, a full disk or a killed process
never leaves a half-written file, and the previous good file stays until the
new one is complete. The file's mode follows the umask, as ``open`` would
give it.

mmengine writes checkpoints through a file backend. :class:`AtomicLocalBackend`
is mmengine's local backend with :func:`atomic_write` for ``put`` and
``put_text``; registered under :data:`ATOMIC_BACKEND`
(:func:`atomic_backend_args`), it is used only where mmvan asks for it with
``backend_args`` (:class:`mmvan.engine.hooks.SafeCheckpointHook`,
:class:`mmvan.engine.hooks.PreemptionHook`); mmengine's own ``LocalBackend``
is left as it is.
"""
import contextlib
import errno
import os
import os.path as osp
import shutil
import tempfile

from mmengine.fileio import register_backend
from mmengine.fileio.backends import LocalBackend

from .checkpoint import CheckpointError

#: The name :class:`AtomicLocalBackend` is registered under in mmengine's
#: file backends.
ATOMIC_BACKEND = 'mmvan_atomic_local'


class SaveError(CheckpointError):
    """A file could not be written (disk full, no permission, the
    destination's folder is not a folder)."""


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _size(n):
    return f'{n / 2**20:.1f} MiB' if n >= 2**20 else f'{n / 2**10:.1f} KiB'


def explain_os_error(e, path, size):
    """One message for a failed write of ``size`` bytes to ``path``."""
    folder = osp.dirname(osp.abspath(path))
    need = _size(size) if size is not None else 'the file'
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        try:
            free = f'; {_size(shutil.disk_usage(_existing(folder)).free)} free'
        except OSError:
            free = ''
        return (f'cannot write {path}: no space left on the device (it '
                f'needs {need}{free}). Free some space or write it '
                f'elsewhere; earlier files are intact.')
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f'cannot write {path}: permission denied ({e.strerror}). '
                f'Choose a folder you can write to.')
    if e.errno in (errno.ENOTDIR, errno.EEXIST):
        return (f'cannot write {path}: a part of its folder {folder} is a '
                f'file, not a folder.')
    return f'cannot write {path}: {e.strerror or e}.'


def creation_blocker(folder):
    """What stops files and folders from being made at ``folder`` (an
    absolute path that need not exist): ``(ancestor, reason)``, with the
    nearest existing ``ancestor`` of ``folder`` (itself included) and
    ``reason`` ``'file'`` when that is a file, ``'permission'`` when it
    cannot be written, else None."""
    while not osp.exists(folder):
        folder = osp.dirname(folder)
    if not osp.isdir(folder):
        return folder, 'file'
    if not os.access(folder, os.W_OK | os.X_OK):
        return folder, 'permission'
    return folder, None


def _existing(folder):
    while folder and not osp.isdir(folder):
        parent = osp.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return folder or '.'


def atomic_write(path, data=None, writer=None, mode='wb', encoding=None):
    """Write ``data`` (bytes or str), or call ``writer(file)``, into
    ``path`` atomically.

    Raises:
        SaveError: when the file cannot be written; nothing is left behind
            and an existing ``path`` is unchanged.
    """
    path = str(path)
    folder = osp.dirname(osp.abspath(path))
    size = len(data) if data is not None else None
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix='.' + osp.basename(path) + '.', suffix='.tmp', dir=folder)
        with os.fdopen(fd, mode, encoding=encoding) as f:
            if writer is not None:
                writer(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        if tmp is not None and osp.exists(tmp):
            if size is None:
                size = os.path.getsize(tmp)
            # Gone before the free space is measured for the message.
            with contextlib.suppress(OSError):
                os.remove(tmp)
                tmp = None
        raise SaveError(explain_os_error(e, path, size)) from None
    finally:
        if tmp is not None and osp.exists(tmp):
            os.remove(tmp)
    return path


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose ``put`` and ``put_text`` write
    atomically (:func:`atomic_write`; a failed write raises
    :class:`SaveError`)."""

    def put(self, obj, filepath):
        atomic_write(filepath, obj, mode='wb')

    def put_text(self, obj, filepath, encoding='utf-8'):
        atomic_write(filepath, obj, mode='w', encoding=encoding)


def register_atomic_backend():
    """Register :class:`AtomicLocalBackend` as :data:`ATOMIC_BACKEND` in
    mmengine's file backends (a new name: no other backend changes). Called
    again, it changes nothing."""
    register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


def atomic_backend_args():
    """``backend_args`` that make mmengine's file functions (and
    ``Runner.save_checkpoint``) write local files atomically."""
    register_atomic_backend()
    return dict(backend=ATOMIC_BACKEND)
