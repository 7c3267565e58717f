# Copyright (c) mmvan contributors. All rights reserved.
"""tools/test.py with a checkpoint that is not one, or a --work-dir that is
a file, and pytorch2onnx.py --out: one message each, raised before anything
is built or written, and written files that follow the umask."""
import os
import stat
import subprocess
import sys
import zipfile

import pytest

from mmvan.cli.pytorch2onnx import pytorch2onnx
from mmvan.utils.errors import CheckpointError, UserError


@pytest.fixture
def bad_checkpoints(tmp_path):
    rng = os.urandom
    folder = tmp_path / 'ckpts'
    folder.mkdir()
    with zipfile.ZipFile(folder / 'zip_of_random.pth', 'w') as z:
        z.writestr('archive/data.pkl', rng(4096))
    with zipfile.ZipFile(folder / 'zip_of_a_file.zip', 'w') as z:
        z.writestr('random.bin', rng(4096))
    (folder / 'random.pth').write_bytes(rng(4096))
    (folder / 'empty.pth').write_bytes(b'')
    (folder / 'a_folder.pth').mkdir()
    return folder


@pytest.fixture
def test_py(tool, monkeypatch):
    # test.py sets LOCAL_RANK for its launcher: keep it to this test.
    monkeypatch.setenv('LOCAL_RANK', '0')
    return tool('test', '')


@pytest.mark.parametrize('name, message', [
    ('zip_of_random.pth', 'corrupt or not a PyTorch checkpoint'),
    ('zip_of_a_file.zip', 'corrupt or not a PyTorch checkpoint'),
    ('random.pth', 'corrupt or not a PyTorch checkpoint'),
    ('empty.pth', 'truncated or corrupt'),
    ('a_folder.pth', 'is a folder, not a checkpoint file')
])
def test_unreadable_checkpoint_leaves_no_work_dir(test_py, tiny, tmp_path,
                                                  bad_checkpoints, name,
                                                  message):
    work = tmp_path / 'work'
    with pytest.raises(CheckpointError, match=message):
        test_py.main(
            [tiny(),
             str(bad_checkpoints / name), '--work-dir',
             str(work)])
    assert not work.exists()


def test_work_dir_that_is_a_file(test_py, tiny, tmp_path):
    work = tmp_path / 'results.txt'
    work.write_text('keep me')
    with pytest.raises(UserError, match='is a file, not a folder'):
        test_py.main([tiny(), 'unused.pth', '--work-dir', str(work)])
    assert work.read_text() == 'keep me'


@pytest.mark.slow
def test_test_py_prints_one_error_line(run_tool, tiny, tmp_path,
                                       bad_checkpoints):
    work = tmp_path / 'work'
    out = run_tool([
        'tools/test.py',
        tiny(),
        str(bad_checkpoints / 'zip_of_random.pth'), '--work-dir',
        str(work)
    ],
                   check=False)
    assert out.returncode == 2
    assert 'Traceback' not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: '), out.stderr
    assert not work.exists()


def test_onnx_out_folder_is_refused_before_export(tmp_path):
    # A config that does not exist: the refusal comes before it is read.
    config = str(tmp_path / 'missing_config.py')
    with pytest.raises(UserError, match='is a folder; give a file name'):
        pytorch2onnx(config, str(tmp_path))
    blocker = tmp_path / 'file'
    blocker.write_text('')
    with pytest.raises(UserError, match='is a file, not a folder'):
        pytorch2onnx(config, str(blocker / 'van.onnx'))
    assert sorted(os.listdir(tmp_path)) == ['file']


def test_onnx_out_follows_the_umask(tool, tiny, tmp_path):
    pytest.importorskip('onnxruntime')
    pytorch2onnx = tool('pytorch2onnx', 'deployment')
    out = tmp_path / 'van.onnx'
    out.write_bytes(b'old')
    os.chmod(out, 0o644)
    old = os.umask(0o022)
    try:
        pytorch2onnx.main([tiny(), '--out', str(out), '--shape', '32', '32'])
    finally:
        os.umask(old)
    assert out.read_bytes() != b'old'
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ['van.onnx']


@pytest.mark.slow
@pytest.mark.parametrize('item', ['pred', 'metrics'])
def test_out_file_that_cannot_be_written_keeps_the_earlier_one(tmp_path, item):
    # tools/test.py --out writes its file whole or not at all: a write that
    # fails half-way (here: the process may write files of 4 KiB at most,
    # as a full disk would stop it) leaves the earlier file as it was.
    out = tmp_path / 'out.pkl'
    out.write_bytes(b'earlier results')
    script = f'''
import resource, signal
from mmvan.apis import register_all_modules
from mmvan.cli.test import AtomicDumpResults, _out_backend
from mmvan.utils.atomic import SaveError
import mmengine
register_all_modules()
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
results = [dict(scores=list(range(i, i + 1000))) for i in range(10)]
try:
    if {item!r} == 'pred':
        AtomicDumpResults(out_file_path={str(out)!r}).compute_metrics(results)
    else:
        mmengine.dump(results, {str(out)!r},
                      backend_args=_out_backend({str(out)!r}))
except SaveError as e:
    print('SaveError', e)
'''
    done = subprocess.run([sys.executable, '-c', script],
                          capture_output=True,
                          text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'SaveError cannot write' in done.stdout
    assert out.read_bytes() == b'earlier results'
    assert sorted(os.listdir(tmp_path)) == ['out.pkl']
