# Copyright (c) mmvan contributors. All rights reserved.
"""Cached downloads of checkpoints, checked wherever they come from.

A file is downloaded once into torch's hub cache (``$TORCH_HOME/hub``, as
mmengine and torch hub use) under ``checkpoints/mmvan/<url key>/<name>``.
The url key is a hash of the whole URL, so two URLs that end in the same
file name never share a cache entry. The body is written to a temporary
file in the same folder and renamed into place only when it is complete
(its length equals ``Content-Length``) and, when a sha256 is known, when the
digest matches; otherwise the temporary file is removed and nothing is
cached. Cached files get the mode ``open`` gives under the umask, so a
cache shared by several users stays readable to all of them.

One process downloads a file at a time: it holds a lock file beside the
cache entry, and any other process that wants the same file (a second rank
before the process group exists, a second run) waits for it and then
reads the cached file. The lock holder first removes the temporary files
that a killed download left behind; no live process can be writing them,
since each writer holds the lock. In a distributed run
(:func:`local_rank_zero_first`) rank 0 of each node fetches first and the
other ranks wait at a barrier, as mmengine's own http loader does.

A file with a known sha256 is checked wherever it comes from (a download,
the cache, a mirror), once per file and process: the verdict is kept by
path, size and modification time. A cached file that fails the check is
not loaded and not removed: the error names it and says to delete it (it is
downloaded again on the next run).

The transfer is mmvan's own rather than
``torch.hub.download_url_to_file``: that function keeps a body shorter than
its ``Content-Length`` (``http.client`` ends a cut connection as a short
read, not an error) and moves it into place, so a lost connection would
cache a truncated file for every URL without a sha256; it has no read
timeout (a stalled server hangs the run), and it draws its progress bar on
logs and CI output. The layout follows torch hub's: the hub cache folder, a
temporary file in the destination's folder, renamed when complete.
"""
import contextlib
import glob
import hashlib
import os
import os.path as osp
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable, Optional, TypeVar

import torch.distributed as dist
import torch.hub
from mmengine.dist import barrier

from mmvan.utils.atomic import atomic_write
from mmvan.utils.errors import CheckpointError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, as before
    fcntl = None
try:
    from tqdm import tqdm
except ImportError:  # pragma: no cover - tqdm comes with mmengine's deps
    tqdm = None

T = TypeVar('T')


class DownloadError(CheckpointError):
    """A checkpoint could not be downloaded (HTTP error, connection lost,
    size or sha256 mismatch, a cache folder that cannot be written)."""


class ChecksumError(CheckpointError):
    """A cached or mirrored file is not the one the model zoo lists (its
    sha256 differs)."""


CHUNK = 1 << 20
# sha256 of files already read: (real path, size, mtime_ns) -> hex digest.
_DIGESTS = {}


def cache_root() -> str:
    """``<torch hub dir>/checkpoints/mmvan``; honours ``TORCH_HOME``."""
    return osp.join(torch.hub.get_dir(), 'checkpoints', 'mmvan')


def url_key(url: str) -> str:
    """A short, stable key of the whole URL (scheme, host, path, query)."""
    return hashlib.sha256(url.encode('utf-8')).hexdigest()[:16]


def file_name_of(url: str, file_name: Optional[str] = None) -> str:
    """The name a download is stored under: ``file_name`` if given, else
    the last part of the URL path (share links such as ``.../f/<id>/?dl=1``
    fall back to ``checkpoint.pth``)."""
    if file_name:
        return osp.basename(file_name)
    path = urllib.parse.urlsplit(url).path
    name = osp.basename(path.rstrip('/'))
    name = re.sub(r'[^\w.+-]', '_', name)
    return name if name and name not in ('.', '..') else 'checkpoint.pth'


def cached_path(url: str, file_name: Optional[str] = None) -> str:
    """Where ``url`` is cached (whether or not it is there yet)."""
    return osp.join(cache_root(), url_key(url), file_name_of(url, file_name))


def is_cached_file(path: str) -> bool:
    """Whether ``path`` lies in the download cache."""
    root = osp.realpath(cache_root())
    return osp.realpath(path).startswith(root + os.sep)


def _stat_key(path):
    st = os.stat(path)
    return (osp.realpath(path), st.st_size, st.st_mtime_ns)


def file_sha256(path: str) -> str:
    """The sha256 (hex) of ``path``, read once per path, size and mtime.

    Raises:
        CheckpointError: when the file cannot be read.
    """
    try:
        key = _stat_key(path)
        if key not in _DIGESTS:
            digest = hashlib.sha256()
            with open(path, 'rb') as f:
                for block in iter(lambda: f.read(CHUNK), b''):
                    digest.update(block)
            _DIGESTS[key] = digest.hexdigest()
    except OSError as e:
        raise CheckpointError(
            f'Cannot read {path}: {e.strerror or e}. Make it readable '
            f'(chmod a+r), or point TORCH_HOME / MMVAN_ZOO_MIRROR at a '
            f'copy you can read.') from None
    return _DIGESTS[key]


def check_sha256(path: str, expected: Optional[str], advice: str) -> str:
    """Refuse ``path`` unless its sha256 starts with ``expected`` (all 64
    digits or a prefix, as OpenMMLab file names carry 8).

    Raises:
        ChecksumError: naming the file, both digests and ``advice``.
    """
    if not expected:
        return path
    expected = str(expected).lower()
    digest = file_sha256(path)
    if not digest.startswith(expected):
        raise ChecksumError(
            f'{path} has sha256 {digest}; the model zoo expects '
            f'{expected}: it is not the released file (corrupted, cut '
            f'short or replaced). {advice}')
    return path


def _cached_advice(url):
    return (f'Delete it; it is downloaded again from {url} on the next '
            f'run.')


def _progress(total, name):
    if tqdm is None:  # pragma: no cover
        return None
    return tqdm(
        total=total,
        unit='B',
        unit_scale=True,
        unit_divisor=1024,
        desc=f'Downloading {name}',
        leave=False,
        # Only on a terminal: logs and CI stay clean.
        disable=not sys.stderr.isatty(),
        file=sys.stderr)


def partial_files(dst: str) -> list:
    """Temporary files of unfinished downloads of ``dst``."""
    folder, name = osp.split(dst)
    pattern = osp.join(glob.escape(folder), '.' + glob.escape(name) + '.*')
    return [p for p in glob.glob(pattern) if p.endswith(('.part', '.tmp'))]


@contextlib.contextmanager
def _cache_lock(url, dst):
    """Hold the download lock of ``dst`` (creating its folder)."""
    folder = osp.dirname(dst)
    lock = osp.join(folder, '.' + osp.basename(dst) + '.lock')
    try:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise DownloadError(
            f'Cannot download {url}: the cache folder {folder} cannot be '
            f'written ({e.strerror or e}). Set TORCH_HOME to a folder you '
            f'can write to, or put {osp.basename(dst)} in a folder named '
            f'by MMVAN_ZOO_MIRROR.') from None
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def download(url: str,
             sha256: Optional[str] = None,
             file_name: Optional[str] = None,
             timeout: float = 60,
             progress: bool = True) -> str:
    """Return the local path of ``url``, downloading it once.

    Args:
        url (str): An ``http://`` or ``https://`` URL.
        sha256 (str, optional): The expected sha256 (hex), or its first
            digits (OpenMMLab file names carry the first 8). A cached file
            is checked too (once per process and file version).
        file_name (str, optional): The name to store the file under.
        timeout (float): Seconds to wait for the server at each read.
        progress (bool): Show a progress bar on a terminal.

    Raises:
        DownloadError: on an HTTP error, a lost connection, a body shorter
            than announced, a sha256 mismatch or a cache that cannot be
            written. Nothing is cached then.
        ChecksumError: when the cached file is not the expected one.
    """
    dst = cached_path(url, file_name)
    if not osp.isfile(dst):
        with _cache_lock(url, dst):
            # Another process may have fetched it while this one waited.
            if not osp.isfile(dst):
                for stale in partial_files(dst):
                    with contextlib.suppress(OSError):
                        os.remove(stale)
                _fetch(url, dst, sha256, timeout, progress)
    return check_sha256(dst, sha256, _cached_advice(url))


def _fetch(url, dst, sha256, timeout, progress):
    """Download ``url`` into ``dst`` (the caller holds its lock)."""
    try:
        request = urllib.request.Request(url, headers={'User-Agent': 'mmvan'})
        resp = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        raise DownloadError(
            f'Cannot download {url}: HTTP {e.code} {e.reason}. Check the '
            f'URL, or set MMVAN_ZOO_MIRROR to a mirror that has the '
            f'file.') from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, 'reason', e)
        raise DownloadError(
            f'Cannot download {url}: {reason}. Check the network (or use a '
            f'local mirror, see MMVAN_ZOO_MIRROR); nothing was '
            f'cached.') from None
    digest = hashlib.sha256()
    received = 0
    length = resp.headers.get('Content-Length')
    total = int(length) if length and length.isdigit() else None

    def read(f):
        nonlocal received
        bar = _progress(total, osp.basename(dst)) if progress else None
        try:
            while True:
                try:
                    block = resp.read(CHUNK)
                except Exception as e:  # noqa: B902 - IncompleteRead, ...
                    raise DownloadError(
                        f'Download of {url} failed after {received} bytes '
                        f'({type(e).__name__}: {e}); nothing was cached. '
                        f'Try again.') from None
                if not block:
                    break
                f.write(block)
                digest.update(block)
                received += len(block)
                if bar is not None:
                    bar.update(len(block))
        finally:
            if bar is not None:
                bar.close()
        if total is not None and received != total:
            raise DownloadError(
                f'Download of {url} stopped after {received} of {total} '
                f'bytes (connection closed); nothing was cached. Try again.')
        if sha256 and not digest.hexdigest().startswith(sha256.lower()):
            raise DownloadError(
                f'Refused {url}: its sha256 is {digest.hexdigest()}, the '
                f'model zoo expects {sha256.lower()}. The file on the server '
                f'is not the released one (or the mirror holds another '
                f'file); nothing was cached.')

    with resp:
        # The temporary file is renamed into place only when complete; it
        # gets the umask's mode.
        atomic_write(dst, writer=read)
    _DIGESTS[_stat_key(dst)] = digest.hexdigest()
    return dst


def local_rank_zero_first(fetch: Callable[[], T]) -> T:
    """Call ``fetch()`` on rank 0 of each node first; the other ranks wait
    at a barrier and call it then (finding the file in the cache), as
    mmengine's ``load_from_http`` does. Without a process group (or with
    one process) it is a plain call; concurrent processes are still
    serialised by the download lock."""
    if not (dist.is_available() and dist.is_initialized()
            and dist.get_world_size() > 1):
        return fetch()
    local_rank = int(os.environ.get('LOCAL_RANK', dist.get_rank()))
    result = None
    if local_rank == 0:
        result = fetch()
    barrier()
    if local_rank != 0:
        result = fetch()
    return result
