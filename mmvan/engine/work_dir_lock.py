# Copyright (c) mmvan contributors. All rights reserved.
"""One training run per work dir.

Two runs writing into one work dir share a log and overwrite each other's
checkpoints. A run holds an exclusive lock on ``<work_dir>/train.lock``
(``flock``, which the system releases when the process ends, however it
ends) from before it looks at the work dir's checkpoints until it exits; the
file says who holds it. A second run is refused with a message naming the
first (PID, host, start time). The file of a run that was killed stays
behind with nobody holding its lock: the next run takes it over with a
warning.

In a distributed run only the process of global rank 0 takes the lock (one
lock per run); the launcher's environment (``RANK``, ``SLURM_PROCID``, ...)
says which one it is before the process group exists.
"""
import errno
import fcntl
import json
import os
import os.path as osp
import socket
import sys
import time

from mmvan.utils.errors import UserError

LOCK_NAME = 'train.lock'
_RANK_VARIABLES = ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK', 'PMI_RANK')


class WorkDirInUseError(UserError):
    """Another running process holds the work dir's lock."""


def launch_rank():
    """The global rank the launcher gave this process (0 without one)."""
    for name in _RANK_VARIABLES:
        value = os.environ.get(name, '')
        if value.strip().isdigit():
            return int(value)
    return 0


def _describe(info):
    if not isinstance(info, dict) or 'pid' not in info:
        return 'an unknown process'
    return (f'PID {info.get("pid")} on host {info.get("host", "?")}, '
            f'started {info.get("started", "?")}')


def _read_info(fd):
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 65536)
        return json.loads(data.decode('utf-8')) if data.strip() else None
    except (OSError, ValueError):
        return None


class WorkDirLock:
    """The lock of ``work_dir``; :meth:`acquire`, then :meth:`release` (or
    use it as a context manager).

    Args:
        work_dir (str): The run's work dir; created if missing.
        warn (callable): Receives the one-line warnings (a taken-over stale
            lock, a file system without locks). Defaults to printing them
            on stderr.
    """

    def __init__(self, work_dir, warn=None):
        self.work_dir = work_dir
        self.path = osp.join(work_dir, LOCK_NAME)
        self.warn = warn or (
            lambda text: print(f'warning: {text}', file=sys.stderr))
        self._fd = None

    @property
    def held(self):
        return self._fd is not None

    def acquire(self):
        """Take the lock.

        Raises:
            WorkDirInUseError: when a running process holds it.
        """
        os.makedirs(self.work_dir, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = _read_info(fd)
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise WorkDirInUseError(
                        f'work dir {self.work_dir} is in use by another '
                        f'training run ({_describe(holder)}; lock file '
                        f'{self.path}). Wait for it to end, or choose '
                        f'another --work-dir.') from None
                self.warn(f'cannot lock {self.path} ({e.strerror}): this '
                          f'file system has no file locks, so nothing stops '
                          f'a second run into {self.work_dir}.')
                return self
            # The file may have been removed (a run ending) between our open
            # and our lock: then the lock is on a file nobody else sees.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = _read_info(fd)
        if previous is not None:
            self.warn(f'took over the lock of work dir {self.work_dir} from '
                      f'a run that is no longer running ({_describe(previous)}'
                      f'; it did not end normally).')
        info = dict(
            pid=os.getpid(),
            host=socket.gethostname(),
            started=time.strftime('%Y-%m-%d %H:%M:%S %Z'),
            command=' '.join(sys.argv))
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(info).encode('utf-8') + b'\n')
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self):
        """Remove the lock file (when it is still ours) and unlock."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                os.remove(self.path)
        except FileNotFoundError:  # removed with a failed run's outputs
            pass
        finally:
            os.close(fd)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
