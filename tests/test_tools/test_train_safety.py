# Copyright (c) mmvan contributors. All rights reserved.
"""tools/train.py keeps what a run has saved: a kill while a checkpoint is
written, a second run into the same work dir, a renamed work dir, a
weights-only checkpoint given to --resume, a new run into a folder with
checkpoints, and config mistakes in the hooks and the loop."""
import contextlib
import glob
import io
import os
import os.path as osp
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner

from mmvan.cli import run_cli
from mmvan.cli.train import (keep_or_remove_outputs, lock_work_dir,
                             merge_resume_args)
from mmvan.datasets import make_classification_demo
from mmvan.engine.resume import (checkpoint_dir, find_resume_checkpoint,
                                 refuse_to_overwrite)
from mmvan.utils.checkpoint import safe_torch_load
from mmvan.utils.errors import UserError

BEST = 'best_accuracy_top1_epoch_1.pth'


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('data') / 'demo'
    return make_classification_demo(
        str(root), num_train=8, num_val=4, size=32, seed=1)


@pytest.fixture(scope='module')
def config(tiny):
    """The demo config (one checkpoint kept, the best one too) with the
    tiny VAN."""
    return tiny(base='van-b0_demo.py')


def options(data, epochs=1):
    opts = [f'train_cfg.max_epochs={epochs}', 'train_cfg.val_interval=1']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [
            f'{loader}.dataset.data_root={data}', f'{loader}.num_workers=0',
            f'{loader}.batch_size=8'
        ]
    return opts + [
        'default_hooks.checkpoint.interval=1',
        'default_hooks.visualization.enable=False'
    ]


def main_in_process(train, args):
    """tools/train.py's ``main`` run as run_cli runs it, in this process:
    ``(exit status, stderr)``."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            run_cli(lambda: train.main(args))
        except SystemExit as e:
            return e.code, err.getvalue()
    return 0, err.getvalue()


@pytest.fixture(scope='module')
def train(tool):
    return tool('train', folder='')


def one_error(status, text, *needles):
    assert status == 2, text[-3000:]
    assert 'Traceback' not in text, text[-3000:]
    errors = [line for line in text.splitlines() if line.startswith('error')]
    assert len(errors) == 1 and errors[0].startswith('error: '), text
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def state(path):
    # mmengine's training checkpoints hold its objects beside the tensors:
    # read with the safe loader that allows them.
    return safe_torch_load(path, map_location='cpu')


def newest_log(work):
    return open(sorted(glob.glob(str(work / '*' / '*.log')))[-1]).read()


# tools/train.py whose write of one file (its nth write) stops halfway
# (after the bytes reach the disk): it says so in a file and waits to be
# killed.
_STALLING_TRAIN = '''
import os, runpy, sys, time
import mmvan.utils.atomic as atomic
write = atomic.atomic_write
writes = []

def stalling(path, data=None, writer=None, mode='wb', encoding=None):
    if os.path.basename(str(path)) != {name!r}:
        return write(path, data, writer, mode, encoding)
    writes.append(path)
    if len(writes) != {nth}:
        return write(path, data, writer, mode, encoding)

    def half(f):
        f.write(data[:len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
        open({flag!r}, 'w').close()
        time.sleep(600)

    return write(path, writer=half, mode=mode)

atomic.atomic_write = stalling
sys.argv = ['tools/train.py'] + sys.argv[1:]
runpy.run_path('tools/train.py', run_name='__main__')
'''


@contextlib.contextmanager
def stalled_training(folder, root, nth, args, never):
    """tools/train.py with ``args`` (OMP_NUM_THREADS=1, no output), stalled
    in its ``nth`` write of ``epoch_2.pth`` (the script is written in
    ``folder``): the process while it is stalled there, killed with
    SIGKILL afterwards. ``never``: the failure message of a run that does
    not get there."""
    flag = folder / 'writing'
    script = folder / 'train_stalling.py'
    script.write_text(
        _STALLING_TRAIN.format(name='epoch_2.pth', nth=nth, flag=str(flag)))
    process = subprocess.Popen([sys.executable,
                                str(script), *args],
                               cwd=root,
                               env=dict(os.environ, OMP_NUM_THREADS='1'),
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not flag.exists() and process.poll() is None and \
                time.time() < deadline:
            time.sleep(0.05)
        assert flag.exists(), never
        yield process
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


def resume_training(root, config, work, opts):
    """tools/train.py ``config --resume --work-dir work --cfg-options
    opts`` (OMP_NUM_THREADS=1) in a process of its own: its
    CompletedProcess, output captured."""
    return subprocess.run([
        sys.executable, 'tools/train.py', config, '--resume', '--work-dir',
        str(work), '--cfg-options', *opts
    ],
                          cwd=root,
                          env=dict(os.environ, OMP_NUM_THREADS='1'),
                          capture_output=True,
                          text=True)


@pytest.fixture(scope='module')
def killed(tmp_path_factory, config, data, root, train):
    """A two-epoch run killed (SIGKILL) while it writes ``epoch_2.pth``,
    with ``max_keep_ckpts=1`` and the best checkpoint kept (the demo's
    settings). While it is stalled in that write, a second run into the same
    work dir is tried. Then ``--resume``.

    Returns the work dir, its files at the kill (the run is stalled in the
    write: they are those of that moment) and after the second run, the
    first run's PID, the second run's ``(status, stderr)`` and the resumed
    run's output.
    """
    work = tmp_path_factory.mktemp('killed') / 'work'
    with stalled_training(
            work.parent,
            root,
            nth=1,
            args=[
                config, '--work-dir',
                str(work), '--cfg-options', *options(data, epochs=2)
            ],
            never='the run never reached the save of epoch 2') as first:
        at_kill = sorted(p.name for p in work.iterdir())
        whole = {p.name: state(p)['meta']['epoch'] for p in work.glob('*.pth')}
        second = main_in_process(
            train,
            [config, '--work-dir',
             str(work), '--cfg-options', *options(data)])
        alive = first.poll() is None
    after_second = sorted(p.name for p in work.iterdir())
    resumed = resume_training(root, config, work, options(data, epochs=2))
    return SimpleNamespace(
        work=work,
        at_kill=at_kill,
        after_second=after_second,
        whole=whole,
        pid=first.pid,
        alive=alive,
        second=second,
        resumed=resumed)


# 1. A kill while a checkpoint is written.


@pytest.mark.slow
def test_sigkill_while_saving_keeps_a_checkpoint_and_resume_uses_it(killed):
    work = killed.work
    # max_keep_ckpts=1: the previous checkpoint is still there, whole, and
    # so is the best one; the cut-off write is only a temporary file.
    assert killed.whole == {'epoch_1.pth': 1, BEST: 1}
    (partial, ) = [n for n in killed.at_kill if n.startswith('.epoch_2.pth')]
    assert partial.endswith('.tmp')

    out = killed.resumed
    assert out.returncode == 0, out.stderr[-3000:]
    assert f'Removed {work / partial}' in out.stdout + out.stderr
    assert f' from {work / "epoch_1.pth"}' in newest_log(work)
    assert state(work / 'epoch_2.pth')['meta']['epoch'] == 2
    assert not (work / 'epoch_1.pth').exists()
    assert (work / 'last_checkpoint').read_text() == 'epoch_2.pth'
    assert not list(work.glob('.*.tmp'))
    assert not (work / 'train.lock').exists()


def val_scores(work):
    """``{epoch: accuracy/top1}`` of every validation in the work dir's
    logs (mmengine's lines in the log files)."""
    scores = {}
    for log in glob.glob(str(work / '*' / '*.log')):
        for m in re.finditer(
                r'Epoch\(val\) \[(\d+)\].*accuracy/top1: '
                r'([\d.]+)',
                open(log).read()):
            scores[int(m.group(1))] = float(m.group(2))
    return scores


@pytest.mark.slow
def test_a_kill_in_the_second_save_of_an_epoch_keeps_the_new_best(
        tmp_path, config, data, root):
    """mmengine writes epoch_2.pth, then (after a new best) best_*_epoch_2
    and epoch_2.pth again, to record the new best in it. Killed in that
    second write, the run resumes from the first epoch_2.pth, which records
    the best of epoch 1: the resumed run takes the best of epoch 2 (and
    removes the one of epoch 1) instead of keeping two best files and
    measuring later epochs against the outdated score."""
    # rule=less: a lower accuracy is better, so that epoch 2 of this tiny
    # run (accuracy 20, then 10) has a new best.
    opts = options(data) + ['default_hooks.checkpoint.rule=less']
    work = tmp_path / 'work'
    with stalled_training(
            tmp_path,
            root,
            nth=2,
            args=[
                config, '--work-dir',
                str(work), '--cfg-options', *opts, 'train_cfg.max_epochs=2'
            ],
            never='the run never saved epoch 2 a second time'):
        pass  # killed in that write
    old, new = BEST, 'best_accuracy_top1_epoch_2.pth'
    assert sorted(p.name
                  for p in work.glob('*.pth')) == [old, new, 'epoch_2.pth']
    hub = state(work / 'epoch_2.pth')['message_hub']['runtime_info']
    assert osp.basename(hub['best_ckpt']) == old
    new_score = state(work / new)['message_hub']['runtime_info']['best_score']

    resumed = resume_training(root, config, work,
                              [*opts, 'train_cfg.max_epochs=3'])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    out = resumed.stdout + resumed.stderr
    assert f'resume: {new} (score {new_score:.4f}) is the best checkpoint' \
        in out, out
    assert f'resume: removed {old}' in out, out
    # The same optimizer settings as the checkpoint's: no warning of them.
    assert 'optimizer values' not in out, out
    # One best file: the first epoch of the lowest accuracy; the last
    # checkpoint records it.
    scores = val_scores(work)
    assert sorted(scores) == [1, 2, 3]
    best_epoch = min(scores, key=lambda e: (scores[e], e))
    best = f'best_accuracy_top1_epoch_{best_epoch}.pth'
    assert sorted(p.name for p in work.glob('*.pth')) == [best, 'epoch_3.pth']
    hub = state(work / 'epoch_3.pth')['message_hub']['runtime_info']
    assert osp.basename(hub['best_ckpt']) == best
    assert hub['best_score'] == scores[best_epoch]


def test_resume_with_nothing_to_resume_is_an_error(tmp_path, config, data,
                                                   train):
    work = tmp_path / 'work'
    status, err = main_in_process(train, [
        config, '--resume', '--work-dir',
        str(work), '--cfg-options', *options(data)
    ])
    one_error(status, err,
              'no epoch_N.pth / iter_N.pth checkpoint to resume from',
              'leave out --resume')
    assert not work.exists()


# 2. last_checkpoint names the work dir's own file.


@pytest.mark.slow
def test_last_checkpoint_is_relative_and_a_foreign_one_skipped(
        tmp_path, killed):
    run = killed.work
    assert (run / 'last_checkpoint').read_text() == 'epoch_2.pth'
    # A copy (or a renamed folder) whose last_checkpoint names the file of
    # another folder by its absolute path, as mmengine writes it.
    work = tmp_path / 'renamed'
    work.mkdir()
    shutil.copy(run / 'epoch_2.pth', work / 'epoch_1.pth')
    (work / 'last_checkpoint').write_text(str(run / 'epoch_2.pth'))
    path, skipped = find_resume_checkpoint(str(work))
    assert path == str(work / 'epoch_1.pth')
    ((foreign, reason), ) = skipped
    assert foreign == str(run / 'epoch_2.pth')
    assert 'outside the work dir' in reason
    # With the checkpoint hook's out_dir, the checkpoints (and the path
    # last_checkpoint names) are in <out_dir>/<name of the work dir>.
    cfg = dict(
        work_dir=str(tmp_path / 'w'),
        default_hooks=dict(checkpoint=dict(out_dir=str(tmp_path / 'out'))))
    ckpt_dir = checkpoint_dir(cfg)
    assert ckpt_dir == str(tmp_path / 'out' / 'w')
    os.makedirs(ckpt_dir)
    os.makedirs(cfg['work_dir'])
    shutil.copy(run / 'epoch_2.pth', ckpt_dir)
    (tmp_path / 'w' /
     'last_checkpoint').write_text(osp.join(ckpt_dir, 'epoch_2.pth'))
    assert find_resume_checkpoint(cfg['work_dir'], ckpt_dir) == (osp.join(
        ckpt_dir, 'epoch_2.pth'), [])
    with pytest.raises(UserError, match='already holds checkpoints'):
        refuse_to_overwrite(cfg['work_dir'], ckpt_dir)


# 3. One run per work dir.


@pytest.mark.slow
def test_a_second_run_into_the_same_work_dir_is_refused(killed):
    assert killed.alive, 'the second run stopped the first'
    assert killed.after_second == killed.at_kill
    one_error(*killed.second, f'{killed.work} is in use by another training '
              'run', f'PID {killed.pid} on host {socket.gethostname()}',
              'started 20')
    # The dead run's lock was taken over by the resumed run, with a warning.
    assert 'took over the lock' in killed.resumed.stderr
    assert f'PID {killed.pid}' in killed.resumed.stderr
    # The second run wrote nothing: the killed run's log is the only one
    # besides the resumed run's.
    assert len(glob.glob(str(killed.work / '*' / '*.log'))) == 2


def test_only_rank_0_locks_the_work_dir(tmp_path, monkeypatch):
    monkeypatch.setenv('RANK', '1')
    assert lock_work_dir(str(tmp_path / 'a')) is None
    assert not (tmp_path / 'a' / 'train.lock').exists()
    monkeypatch.setenv('RANK', '0')
    lock = lock_work_dir(str(tmp_path / 'a'))
    assert (tmp_path / 'a' / 'train.lock').exists()
    lock.release()


# 4. and 5. A new run never overwrites checkpoints; --resume needs an
# optimizer state.


@pytest.mark.slow
def test_a_new_run_into_a_folder_with_only_a_best_checkpoint_is_refused(
        tmp_path, killed, config, data, train):
    work = tmp_path / 'work'
    work.mkdir()
    shutil.copy(killed.work / BEST, work)
    status, err = main_in_process(
        train,
        [config, '--work-dir',
         str(work), '--cfg-options', *options(data)])
    one_error(status, err, 'already holds checkpoints', BEST, '--resume')
    assert sorted(os.listdir(work)) == [BEST]


@pytest.mark.slow
def test_resume_from_a_weights_only_checkpoint_is_refused(
        tmp_path, killed, config, data, train):
    best = killed.work / BEST
    assert 'optimizer' not in state(best)
    work = tmp_path / 'work'
    status, err = main_in_process(train, [
        config, '--resume',
        str(best), '--work-dir',
        str(work), '--cfg-options', *options(data)
    ])
    one_error(status, err, f'cannot continue a run from {best}',
              'no optimizer state', f'--load-from {best}')
    assert not work.exists()
    # The same in a folder whose only checkpoint is a weights-only one that
    # last_checkpoint names.
    work.mkdir()
    shutil.copy(best, work)
    (work / 'last_checkpoint').write_text(BEST)
    status, err = main_in_process(train, [
        config, '--resume', '--work-dir',
        str(work), '--cfg-options', *options(data)
    ])
    one_error(status, err, 'no optimizer state', '--load-from')
    assert sorted(os.listdir(work)) == [BEST, 'last_checkpoint']


def test_load_from_starts_a_new_run_from_weights(train):
    args = train.parse_args(['c.py', '--load-from', 'best.pth'])
    cfg = SimpleNamespace(resume=True, load_from=None)
    merge_resume_args(cfg, args)
    assert (cfg.resume, cfg.load_from) == (False, 'best.pth')
    args = train.parse_args(['c.py', '--load-from', 'a.pth', '--resume'])
    with pytest.raises(UserError, match='give one of them'):
        merge_resume_args(cfg, args)


# 7. default_hooks keys and the loop's arguments.


def test_config_mistakes_in_hooks_and_loop(capsys):
    from mmengine.runner import EpochBasedTrainLoop

    from mmvan.engine.runner import check_default_hooks
    with pytest.raises(SystemExit):
        run_cli(lambda: check_default_hooks(dict(checkpoints=dict())))
    one_error(2,
              capsys.readouterr().err, "unknown key 'checkpoints'",
              "Did you mean 'checkpoint'?")
    # What mmengine raises for train_cfg.max_epoch=1: the quote is whole.
    with pytest.raises(SystemExit):
        run_cli(lambda: EpochBasedTrainLoop(
            runner=None, dataloader=None, max_epochs=1, max_epoch=1))
    line = one_error(2,
                     capsys.readouterr().err,
                     "unexpected keyword argument 'max_epoch'")
    assert line.endswith("'max_epoch'"), line


# 6. A finished distributed run ends with status 0.

# A tool's main as tools/train.py's: a model in DDP inside an object that
# sits in a reference cycle (as the Runner does), trained a step; run_cli
# closes the process group. At exit, which of gloo's threads still run?
_DDP_TOOL = '''
import atexit, os, sys
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from mmvan.cli import run_cli
from mmvan.utils.errors import UserError


def gloo_threads():
    tasks = os.listdir('/proc/self/task')
    names = [open(f'/proc/self/task/{t}/comm').read().strip() for t in tasks]
    gloo = sorted(n for n in names if 'gloo' in n)
    # One write: the two processes share the pipe.
    sys.stdout.write(f'rank {os.environ["RANK"]} at exit: gloo threads '
                     f'{gloo}\\n')
    sys.stdout.flush()


def main():
    dist.init_process_group('gloo')
    run = type('Run', (), {})()
    run.me = run
    run.model = DistributedDataParallel(torch.nn.Linear(8, 2))
    run.model(torch.randn(4, 8)).sum().backward()
    if sys.argv[1:] == ['stop']:
        # As PreemptionHook ends a run after a stop signal.
        dist.barrier()
        dist.destroy_process_group()
        raise SystemExit(0)


atexit.register(gloo_threads)
run_cli(main)
'''


@pytest.mark.slow
@pytest.mark.parametrize('end', ['return', 'stop'])
def test_no_gloo_thread_outlives_a_finished_run(tmp_path, root, free_port,
                                                end):
    """gloo's threads are joined before Python shuts down (torn down during
    the shutdown, they abort the process now and then), whether the tool
    returns or ends the run itself with SystemExit."""
    script = tmp_path / 'ddp_tool.py'
    script.write_text(_DDP_TOOL)
    out = subprocess.run([
        sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
        f'--master_port={free_port}',
        str(script), end
    ],
                         cwd=root,
                         env=dict(os.environ, OMP_NUM_THREADS='1'),
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    for rank in (0, 1):
        assert f'rank {rank} at exit: gloo threads []' in out.stdout, \
            out.stdout


def test_a_dataset_that_fails_to_build_leaves_nothing(tmp_path):
    # The training loop builds its dataset; when that fails, working out
    # whether the run trained must not build it (and fail) a second time.
    class Toy(BaseModel):

        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 1)

        def forward(self, inputs, labels=None, mode='tensor'):
            return self.linear(inputs)

    work_dir = tmp_path / 'run'
    runner = Runner(
        model=Toy(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=dict(type='NoSuchDataset'),
            sampler=dict(type='DefaultSampler'),
            batch_size=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        default_scope='mmengine')
    with pytest.raises(KeyError, match='NoSuchDataset'):
        runner.train()
    keep_or_remove_outputs(runner, str(work_dir), None, KeyError('x'))
    assert not work_dir.exists()
    # The run's logger writes no more to the removed log file.
    assert not any(hasattr(h, 'baseFilename') for h in runner.logger.handlers)
    runner.logger.info('after the clean-up')
