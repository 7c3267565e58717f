# Copyright (c) mmvan contributors. All rights reserved.
"""The download cache and mirrors: every zoo file checked against its
sha256 wherever it comes from, files that other users can read, one
download per node in a distributed run, and no partial file left by a
killed download (real processes over a loopback server)."""
import hashlib
import io
import os
import os.path as osp
import signal
import stat
import subprocess
import sys
import time

import pytest
import torch
import yaml

from mmvan.models import VAN
from mmvan.testing import TINY, loopback_server, randomized
from mmvan.utils.checkpoint import CheckpointError
from mmvan.zoo import download as dl
from mmvan.zoo import resolve
from mmvan.zoo.download import ChecksumError, DownloadError

X = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))

# Every test runs on a fresh cache (tests/test_zoo/conftest.py).
pytestmark = pytest.mark.usefixtures('cache')


def checkpoint_bytes(seed):
    """A tiny VAN checkpoint (official format) and its model."""
    model = randomized(VAN(arch=TINY, out_indices=(0, 1, 2, 3)), seed=seed)
    buf = io.BytesIO()
    torch.save({'state_dict': model.state_dict()}, buf)
    return buf.getvalue(), model


def features(model):
    with torch.no_grad():
        return [t.clone() for t in model.eval()(X)]


def load(ref):
    model = VAN(
        arch=TINY,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=ref))
    model.init_weights()
    return model


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(features(a), features(b)))


def zoo(tmp_path, monkeypatch, **entry):
    path = tmp_path / 'metafile.yml'
    path.write_text(
        yaml.safe_dump({'Models': [dict(Name='tiny', **entry)]},
                       sort_keys=False))
    monkeypatch.setenv('MMVAN_MODEL_INDEX', str(path))


def test_replaced_cache_file_is_refused(tmp_path, monkeypatch):
    good, model = checkpoint_bytes(0)
    other, _ = checkpoint_bytes(1)
    with loopback_server({'/tiny.pth': good}) as srv:
        zoo(tmp_path,
            monkeypatch,
            Weights=srv.url('/tiny.pth'),
            Sha256=hashlib.sha256(good).hexdigest())
        path, _ = resolve('mmvan://tiny')
        assert same(load('mmvan://tiny'), model)
        # Another valid checkpoint put in the cache's place is not loaded.
        with open(path, 'wb') as f:
            f.write(other)
        with pytest.raises(ChecksumError) as err:
            load('mmvan://tiny')
        msg = str(err.value)
        assert path in msg and 'Delete it' in msg
        assert hashlib.sha256(other).hexdigest() in msg
        # As the message says: deleted, it is downloaded again.
        os.remove(path)
        assert same(load('mmvan://tiny'), model)
        assert srv.requests['/tiny.pth'] == 2
        # The same file reached by its URL is checked as well.
        with open(path, 'wb') as f:
            f.write(other)
        with pytest.raises(ChecksumError):
            load(srv.url('/tiny.pth'))


def test_replaced_mirror_file_is_refused(tmp_path, monkeypatch):
    good, model = checkpoint_bytes(0)
    other, _ = checkpoint_bytes(1)
    zoo(tmp_path,
        monkeypatch,
        Weights='https://example.invalid/tiny.pth',
        Sha256=hashlib.sha256(good).hexdigest()[:8])
    mirror = tmp_path / 'mirror'
    mirror.mkdir()
    monkeypatch.setenv('MMVAN_ZOO_MIRROR', str(mirror))
    (mirror / 'tiny.pth').write_bytes(other)
    with pytest.raises(ChecksumError) as err:
        load('mmvan://tiny')
    assert str(mirror / 'tiny.pth') in str(err.value)
    assert 'https://example.invalid/tiny.pth' in str(err.value)
    (mirror / 'tiny.pth').write_bytes(good)
    assert same(load('mmvan://tiny'), model)


def test_each_file_is_hashed_once_per_version(tmp_path, monkeypatch):
    good, _ = checkpoint_bytes(0)
    path = tmp_path / 'mirror' / 'tiny.pth'
    path.parent.mkdir()
    path.write_bytes(good)
    zoo(tmp_path,
        monkeypatch,
        Weights='https://example.invalid/tiny.pth',
        Sha256=hashlib.sha256(good).hexdigest())
    monkeypatch.setenv('MMVAN_ZOO_MIRROR', str(path.parent))
    reads = []

    def counting_open(file, *args, **kwargs):
        reads.append(file)
        return open(file, *args, **kwargs)

    # The module's own name ``open`` is looked up before the builtin.
    monkeypatch.setattr(dl, 'open', counting_open, raising=False)
    for _ in range(3):
        resolve('mmvan://tiny')
    assert len(reads) == 1
    # A new version of the file (other bytes, other mtime) is read again.
    path.write_bytes(bytes([good[0] ^ 1]) + good[1:])
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.raises(ChecksumError):
        resolve('mmvan://tiny')
    assert len(reads) == 2


def test_cached_files_follow_the_umask(cache):
    good, _ = checkpoint_bytes(0)
    old = os.umask(0o022)
    try:
        with loopback_server({'/a.pth': good, '/b.pth': good}) as srv:
            a = dl.download(srv.url('/a.pth'))
            os.umask(0o027)
            b = dl.download(srv.url('/b.pth'))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(a).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(b).st_mode) == 0o640


def test_unwritable_cache_is_one_message(tmp_path, monkeypatch):
    """TORCH_HOME that cannot be written (here: below a file, which no
    permission bit can allow)."""
    blocker = tmp_path / 'not_a_folder'
    blocker.write_text('')
    monkeypatch.setenv('TORCH_HOME', str(blocker / 'torch'))
    with pytest.raises(DownloadError) as err:
        dl.download('http://127.0.0.1:9/x.pth')
    assert 'TORCH_HOME' in str(err.value)
    assert 'cannot be written' in str(err.value)


def test_garbage_in_the_cache_says_to_delete_it():
    good, model = checkpoint_bytes(0)
    with loopback_server({'/g.pth': good}) as srv:
        url = srv.url('/g.pth')
        path = dl.download(url)
        with open(path, 'wb') as f:
            f.write(b'not a checkpoint at all')
        with pytest.raises(CheckpointError) as err:
            load(url)
        assert f'delete {path}' in str(err.value)
        os.remove(path)
        assert same(load(url), model)


def partials(cache):
    return [
        osp.join(d, f) for d, _, files in os.walk(cache) for f in files
        if f.endswith(('.part', '.tmp'))
    ]


@pytest.mark.slow
def test_killed_download_leaves_nothing_that_lasts(cache, root):
    good, model = checkpoint_bytes(0)
    with loopback_server({'/k.pth': ('slow', good, 30)}) as srv:
        url = srv.url('/k.pth')
        proc = subprocess.Popen([
            sys.executable, '-c',
            'import sys; from mmvan.zoo.download import download; '
            'download(sys.argv[1])', url
        ],
                                cwd=root,
                                env=dict(os.environ, OMP_NUM_THREADS='1'))
        deadline = time.time() + 60
        while not partials(cache) and time.time() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        left = partials(cache)
        assert len(left) == 1
        srv.files['/k.pth'] = good
        assert same(load(url), model)
    assert partials(cache) == []
    assert not osp.exists(left[0])


SCRIPT = """
import sys
import torch.distributed as dist
from mmvan.models import VAN
from mmvan.testing import TINY
from mmvan.zoo import resolve
# Before a process group exists (tools/test.py reads its checkpoint then).
resolve(sys.argv[1])
dist.init_process_group('gloo')
VAN(arch=TINY, init_cfg=dict(type='Pretrained',
                             checkpoint=sys.argv[2])).init_weights()
dist.barrier()
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_one_download_per_node(cache, root, free_port, tmp_path):
    good, _ = checkpoint_bytes(0)
    script = tmp_path / 'ranks.py'
    script.write_text(SCRIPT)
    with loopback_server({
            '/before.pth': ('slow', good, 1),
            '/init_cfg.pth': ('slow', good, 1)
    }) as srv:
        procs = []
        for rank in range(2):
            env = dict(
                os.environ,
                OMP_NUM_THREADS='1',
                MASTER_ADDR='127.0.0.1',
                MASTER_PORT=str(free_port),
                RANK=str(rank),
                LOCAL_RANK=str(rank),
                WORLD_SIZE='2')
            procs.append(
                subprocess.Popen([
                    sys.executable,
                    str(script),
                    srv.url('/before.pth'),
                    srv.url('/init_cfg.pth')
                ],
                                 cwd=root,
                                 env=env,
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT,
                                 text=True))
        for proc in procs:
            out = proc.communicate(timeout=300)[0]
            assert proc.returncode == 0, out[-3000:]
        assert srv.requests['/before.pth'] == 1
        assert srv.requests['/init_cfg.pth'] == 1
