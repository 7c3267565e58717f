# Copyright (c) mmvan contributors. All rights reserved.
"""Cached downloads of checkpoints.

A file is downloaded once into torch's hub cache (``$TORCH_HOME/hub``, as
mmengine and torch hub use) under ``checkpoints/mmvan/<url key>/<name>``.
The url key is a hash of the whole URL, so two URLs that end in the same
file name never share a cache entry. The body is written to a temporary
file in the same folder and renamed into place only when it is complete
(its length equals ``Content-Length``) and, when a sha256 is known, when the
digest matches; otherwise the temporary file is removed and nothing is
cached.
"""
import hashlib
import os
import os.path as osp
import re
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

from .checkpoint import CheckpointError


class DownloadError(CheckpointError):
    """A checkpoint could not be downloaded (HTTP error, connection lost,
    size or sha256 mismatch)."""


CHUNK = 1 << 20


def cache_root():
    """``<torch hub dir>/checkpoints/mmvan``; honours ``TORCH_HOME``."""
    import torch.hub
    return osp.join(torch.hub.get_dir(), 'checkpoints', 'mmvan')


def url_key(url):
    """A short, stable key of the whole URL (scheme, host, path, query)."""
    return hashlib.sha256(url.encode('utf-8')).hexdigest()[:16]


def file_name_of(url, file_name=None):
    """The name a download is stored under: ``file_name`` if given, else
    the last part of the URL path (share links such as ``.../f/<id>/?dl=1``
    fall back to ``checkpoint.pth``)."""
    if file_name:
        return osp.basename(file_name)
    path = urllib.parse.urlsplit(url).path
    name = osp.basename(path.rstrip('/'))
    name = re.sub(r'[^\w.+-]', '_', name)
    return name if name and name not in ('.', '..') else 'checkpoint.pth'


def cached_path(url, file_name=None):
    """Where ``url`` is cached (whether or not it is there yet)."""
    return osp.join(cache_root(), url_key(url), file_name_of(url, file_name))


def _progress(total, name):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with mmengine's deps
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


def download(url, sha256=None, file_name=None, timeout=60, progress=True):
    """Return the local path of ``url``, downloading it once.

    Args:
        url (str): An ``http://`` or ``https://`` URL.
        sha256 (str, optional): The expected sha256 (hex), or its first
            digits (OpenMMLab file names carry the first 8). A cached file
            is trusted: it was checked when it was stored.
        file_name (str, optional): The name to store the file under.
        timeout (float): Seconds to wait for the server at each read.
        progress (bool): Show a progress bar on a terminal.

    Raises:
        DownloadError: on an HTTP error, a lost connection, a body shorter
            than announced or a sha256 mismatch. Nothing is cached then.
    """
    dst = cached_path(url, file_name)
    if osp.isfile(dst):
        return dst
    folder = osp.dirname(dst)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix='.' + osp.basename(dst) + '.', suffix='.part', dir=folder)
    digest = hashlib.sha256()
    received = 0
    try:
        try:
            request = urllib.request.Request(
                url, headers={'User-Agent': 'mmvan'})
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                length = resp.headers.get('Content-Length')
                total = int(length) if length and length.isdigit() else None
                bar = _progress(total, osp.basename(dst)) if progress else None
                try:
                    with os.fdopen(fd, 'wb') as f:
                        fd = None
                        while True:
                            block = resp.read(CHUNK)
                            if not block:
                                break
                            f.write(block)
                            digest.update(block)
                            received += len(block)
                            if bar is not None:
                                bar.update(len(block))
                        f.flush()
                        os.fsync(f.fileno())
                finally:
                    if bar is not None:
                        bar.close()
        except urllib.error.HTTPError as e:
            raise DownloadError(
                f'Cannot download {url}: HTTP {e.code} {e.reason}. Check '
                f'the URL, or set MMVAN_ZOO_MIRROR to a mirror that has '
                f'the file.') from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, 'reason', e)
            raise DownloadError(
                f'Cannot download {url}: {reason}. Check the network (or '
                f'use a local mirror, see MMVAN_ZOO_MIRROR); nothing was '
                f'cached.') from None
        except Exception as e:  # http.client.IncompleteRead and friends
            raise DownloadError(
                f'Download of {url} failed after {received} bytes '
                f'({type(e).__name__}: {e}); nothing was cached. Try '
                f'again.') from None
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
        os.replace(tmp, dst)
    finally:
        if fd is not None:
            os.close(fd)
        if osp.exists(tmp):
            os.remove(tmp)
    return dst
