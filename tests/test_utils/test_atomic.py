# Copyright (c) mmvan contributors. All rights reserved.
"""Atomic writes: a full disk or a missing permission leaves the previous
file as it was and no partial file behind."""
import errno
import io
import os
import re
import stat

import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.runner.checkpoint import save_checkpoint

from mmvan.utils.atomic import (AtomicLocalBackend, SaveError,
                                atomic_backend_args, atomic_write)


def test_mmengine_checkpoint_on_a_full_disk(tmp_path, monkeypatch):
    """mmengine's save_checkpoint with the atomic backend (as mmvan's
    checkpoint hooks call it)."""
    path = tmp_path / 'epoch_1.pth'
    atomic = atomic_backend_args()
    save_checkpoint({'state_dict': {
        'w': torch.ones(3)
    }},
                    str(path),
                    backend_args=atomic)
    good = path.read_bytes()

    # mmengine writes through a Python file object: make it fail.
    real_open = os.fdopen

    class Full(io.RawIOBase):

        def __init__(self, fd):
            self.f = real_open(fd, 'wb')

        def writable(self):
            return True

        def write(self, b):
            raise OSError(errno.ENOSPC, 'No space left on device')

        def close(self):
            self.f.close()
            super().close()

        def fileno(self):
            return self.f.fileno()

    monkeypatch.setattr(os, 'fdopen', lambda fd, *a, **k: Full(fd))
    with pytest.raises(SaveError, match='no space left.*needs') as err:
        save_checkpoint({'state_dict': {
            'w': torch.zeros(1000)
        }},
                        str(path),
                        backend_args=atomic)
    assert 'earlier files are intact' in str(err.value)
    # A small file's size in KiB, not '0.0 MiB'.
    assert re.search(r'needs \d+\.\d KiB; [\d.]+ [KM]iB free', str(err.value))
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch_1.pth']


def test_atomic_backend_writes_text_by_rename(tmp_path, monkeypatch):
    target = tmp_path / 'last_checkpoint'
    target.write_text('epoch_1.pth')
    backend = get_file_backend(str(target), backend_args=atomic_backend_args())
    assert isinstance(backend, AtomicLocalBackend)
    renames = []
    replace = os.replace
    monkeypatch.setattr(
        os, 'replace', lambda src, dst: renames.append(
            (src, dst)) or replace(src, dst))
    backend.put_text('epoch_2.pth', str(target))
    assert target.read_text() == 'epoch_2.pth'
    [(src, dst)] = renames
    assert dst == str(target)
    assert os.path.basename(src).startswith('.last_checkpoint.')
    # mmengine's own local backend is left as it is.
    assert type(get_file_backend(str(target))).put is not \
        AtomicLocalBackend.put


def test_mode_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / 'a.bin', b'x')
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_destination_errors(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    with pytest.raises(SaveError, match='is a file, not a folder'):
        atomic_write(blocker / 'sub' / 'a.bin', b'x')
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / 'ro'
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(SaveError, match='permission denied'):
            atomic_write(ro / 'a.bin', b'x')
