# Copyright (c) mmvan contributors. All rights reserved.
"""Checkpoints that survive a crash, and one run per work dir.

SafeCheckpointHook is driven here by a small stand-in for the Runner (what
the hook reads of it) whose saves are real files written through mmengine's
file backend. A process that dies while a checkpoint is written is played
in two ways: a save that stops halfway with an exception (in this process),
and a real process killed with SIGKILL while it is writing.
"""
import io
import itertools
import logging
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from mmengine.logging import MessageHub, MMLogger
from mmengine.runner.checkpoint import save_checkpoint

from mmvan.engine.hooks import SafeCheckpointHook
from mmvan.engine.resume import resume_problem
from mmvan.engine.runner import Runner, check_default_hooks
from mmvan.engine.work_dir_lock import WorkDirInUseError, WorkDirLock
from mmvan.utils.atomic import (AtomicLocalBackend, atomic_backend_args,
                                atomic_write)
from mmvan.utils.errors import ConfigError


class Died(BaseException):
    """The process ends here (nothing after this line runs)."""


_RUNNERS = itertools.count()


class StandInRunner:
    """What CheckpointHook reads of a Runner, for an epoch-based run of
    ``max_epochs``. ``save_checkpoint`` writes a small training checkpoint
    (weights that say their epoch, an optimizer state, the message hub);
    the write of the file named ``stop_at`` (its ``stop_at_write``-th
    write: mmengine writes an epoch checkpoint a second time after a new
    best) stops halfway: ``on_stop()`` is called (default: raise
    :class:`Died`)."""

    def __init__(self,
                 work_dir,
                 max_epochs,
                 stop_at=None,
                 on_stop=None,
                 stop_at_write=1):
        self.work_dir = str(work_dir)
        self.epoch = 0
        self.iter = 0
        self.max_epochs = max_epochs
        # A new message hub each time (an id can be reused).
        name = f'ckpt-safety-{next(_RUNNERS)}'
        self.message_hub = MessageHub.get_instance(name)
        self.logger = MMLogger.get_instance(name, log_level='INFO')
        self.stop_at = stop_at
        self.stop_at_write = stop_at_write
        self.writes = {}
        self.on_stop = on_stop or self._die
        self.backend_args = []

    @staticmethod
    def _die():
        raise Died()

    def save_checkpoint(self,
                        out_dir,
                        filename,
                        file_client_args=None,
                        save_optimizer=True,
                        save_param_scheduler=True,
                        meta=None,
                        by_epoch=True,
                        backend_args=None):
        state = dict(
            meta=meta,
            state_dict=dict(w=torch.full((256, ), float(self.epoch))),
            message_hub=self.message_hub.state_dict())
        if save_optimizer:
            state['optimizer'] = dict(state={}, param_groups=[dict(lr=0.1)])
        path = osp.join(out_dir, filename)
        self.backend_args.append(backend_args)
        self.writes[filename] = self.writes.get(filename, 0) + 1
        if filename != self.stop_at or \
                self.writes[filename] != self.stop_at_write:
            # As mmengine's Runner.save_checkpoint writes.
            save_checkpoint(state, path, backend_args=backend_args)
            return
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()

        def half(f):
            f.write(data[:len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
            self.on_stop()

        atomic_write(path, writer=half)


def run_epochs(hook, runner, scores):
    """mmengine's epoch loop as the hook sees it: each training epoch
    (4 iterations, counted before its ``after_train_epoch``), then
    validation with ``scores[e]`` (the metrics, or the value of 'acc')."""
    hook.before_train(runner)
    for score in scores:
        runner.iter += 4
        hook.after_train_epoch(runner)
        runner.epoch += 1
        hook.after_val_epoch(
            runner, score if isinstance(score, dict) else {'acc': score})


def resumed(work_dir, checkpoint, max_epochs):
    """A stand-in runner as mmengine's ``Runner.resume`` leaves it after
    loading ``checkpoint``: its message hub, epoch and iteration."""
    ckpt = torch.load(checkpoint, map_location='cpu', weights_only=True)
    runner = StandInRunner(work_dir, max_epochs=max_epochs)
    runner.message_hub.load_state_dict(ckpt['message_hub'])
    runner.epoch = ckpt['meta']['epoch']
    runner.iter = ckpt['meta']['iter']
    return runner


def log_lines(runner):
    """The messages ``runner`` logs from now on."""
    records = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    runner.logger.addHandler(handler)
    return records


def names(folder):
    return sorted(os.listdir(folder))


def test_outdated_epoch_checkpoint_stays_until_the_new_one_is_in_place(
        tmp_path):
    runner = StandInRunner(tmp_path, max_epochs=3, stop_at='epoch_2.pth')
    hook = SafeCheckpointHook(interval=1, max_keep_ckpts=1)
    with pytest.raises(Died):
        run_epochs(hook, runner, [0.5, 0.6, 0.7])
    # mmengine's hook would have removed epoch_1.pth before this write.
    assert names(tmp_path) == ['epoch_1.pth', 'last_checkpoint']
    assert resume_problem(str(tmp_path / 'epoch_1.pth')) is None
    assert (tmp_path / 'last_checkpoint').read_text() == 'epoch_1.pth'


def test_previous_best_stays_until_the_new_best_is_in_place(tmp_path):
    runner = StandInRunner(
        tmp_path, max_epochs=3, stop_at='best_acc_epoch_2.pth')
    hook = SafeCheckpointHook(interval=1, max_keep_ckpts=1, save_best='acc')
    with pytest.raises(Died):
        run_epochs(hook, runner, [0.5, 0.6, 0.7])
    assert names(tmp_path) == [
        'best_acc_epoch_1.pth', 'epoch_2.pth', 'last_checkpoint'
    ]
    best = torch.load(
        tmp_path / 'best_acc_epoch_1.pth',
        map_location='cpu',
        weights_only=True)
    assert best['meta']['epoch'] == 1


def test_a_better_best_of_the_same_epoch_is_kept(tmp_path):
    """Two validations of one epoch (a second ``runner.val()``), the later
    better: mmengine removes the first best file and writes the new one
    under the same name, which must still be there afterwards."""
    runner = StandInRunner(tmp_path, max_epochs=1)
    hook = SafeCheckpointHook(interval=1, save_best='acc')
    run_epochs(hook, runner, [0.5])
    hook.after_val_epoch(runner, {'acc': 0.6})
    assert names(tmp_path) == [
        'best_acc_epoch_1.pth', 'epoch_1.pth', 'last_checkpoint'
    ]
    assert hub_info(tmp_path / 'epoch_1.pth')['best_score'] == 0.6
    assert hub_info(tmp_path / 'best_acc_epoch_1.pth')['best_score'] == 0.6


def test_a_whole_run_keeps_what_it_should(tmp_path):
    runner = StandInRunner(tmp_path, max_epochs=4)
    hook = SafeCheckpointHook(interval=1, max_keep_ckpts=2, save_best='acc')
    run_epochs(hook, runner, [0.5, 0.7, 0.6, 0.8])
    assert names(tmp_path) == [
        'best_acc_epoch_4.pth', 'epoch_3.pth', 'epoch_4.pth', 'last_checkpoint'
    ]
    # Relative to the work dir: a renamed folder still names its own file.
    assert (tmp_path / 'last_checkpoint').read_text() == 'epoch_4.pth'
    last = torch.load(
        tmp_path / 'epoch_4.pth', map_location='cpu', weights_only=True)
    hub = last['message_hub']['runtime_info']
    assert hub['keep_ckpt_ids'] == [3, 4]
    assert hub['best_score'] == 0.8
    assert hub['best_ckpt'] == str(tmp_path / 'best_acc_epoch_4.pth')


def test_checkpoints_are_written_through_the_atomic_backend(
        tmp_path, monkeypatch):
    """Every save (epoch and best checkpoints) asks mmengine for mmvan's
    atomic local backend, and so goes to a temporary file renamed into
    place."""
    runner = StandInRunner(tmp_path, max_epochs=2)
    hook = SafeCheckpointHook(interval=1, save_best='acc')
    written = []
    put = AtomicLocalBackend.put
    monkeypatch.setattr(
        AtomicLocalBackend, 'put', lambda self, obj, path: written.append(
            osp.basename(path)) or put(self, obj, path))
    run_epochs(hook, runner, [0.5, 0.7])
    assert runner.backend_args and all(args == atomic_backend_args()
                                       for args in runner.backend_args)
    assert sorted(set(written)) == [
        'best_acc_epoch_1.pth', 'best_acc_epoch_2.pth', 'epoch_1.pth',
        'epoch_2.pth'
    ]
    assert not [n for n in names(tmp_path) if n.endswith('.tmp')]


def test_each_new_best_is_named_once(tmp_path):
    """One short line per new best checkpoint (mmengine's own lines go to
    the log file), none when the score does not improve."""
    runner = StandInRunner(tmp_path, max_epochs=3)
    lines = log_lines(runner)
    hook = SafeCheckpointHook(interval=1, save_best='auto')
    run_epochs(hook, runner, [0.5, 0.5, 0.75])
    assert [line for line in lines if line.startswith('best ')] == [
        'best acc: 0.5000, saved to best_acc_epoch_1.pth',
        'best acc: 0.7500, saved to best_acc_epoch_3.pth'
    ]


def test_a_configured_backend_is_kept(tmp_path):
    """A config that names its own backend (or a remote out_dir) keeps
    it."""
    runner = StandInRunner(tmp_path, max_epochs=1)
    hook = SafeCheckpointHook(interval=1, backend_args=dict(backend='local'))
    run_epochs(hook, runner, [0.5])
    assert runner.backend_args == [dict(backend='local')]


def test_stale_temporaries_are_removed_on_the_next_start(tmp_path):
    stale = [
        '.epoch_3.pth.k2j4_x9a.tmp', '.best_acc_epoch_2.pth.0a1b2c3d.tmp',
        '.last_checkpoint.zz_9y8x7.tmp'
    ]
    kept = ['.notes.txt.abcdefgh.tmp', 'epoch_2.pth.tmp', 'scalars.json']
    for name in stale + kept:
        (tmp_path / name).write_bytes(b'x')
    runner = StandInRunner(tmp_path, max_epochs=1)
    hook = SafeCheckpointHook(interval=1)
    hook.before_train(runner)
    assert names(tmp_path) == sorted(kept)


def test_a_resumed_best_in_a_renamed_folder_is_its_own(tmp_path):
    """The message hub keeps the best checkpoint's absolute path; after a
    rename of the work dir that path names a file of another folder, which
    must not be removed at the next better score."""
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'best_acc_epoch_1.pth').write_bytes(b'another run')
    work = tmp_path / 'renamed'
    work.mkdir()
    runner = StandInRunner(work, max_epochs=2)
    runner.epoch = runner.iter = 1
    save_checkpoint({'meta': {}}, str(work / 'best_acc_epoch_1.pth'))
    runner.message_hub.update_info('best_ckpt',
                                   str(other / 'best_acc_epoch_1.pth'))
    runner.message_hub.update_info('best_score', 0.5)
    hook = SafeCheckpointHook(interval=1, save_best='acc')
    hook.before_train(runner)
    hook.after_train_epoch(runner)
    runner.epoch += 1
    hook.after_val_epoch(runner, {'acc': 0.9})
    assert (other / 'best_acc_epoch_1.pth').read_bytes() == b'another run'
    assert names(work) == [
        'best_acc_epoch_2.pth', 'epoch_2.pth', 'last_checkpoint'
    ]


def hub_info(path):
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    return ckpt['message_hub']['runtime_info']


@pytest.mark.parametrize('save_best', ['acc', 'auto'])
def test_a_best_saved_before_an_interrupted_resave_is_adopted(
        tmp_path, save_best):
    """A run that stops while mmengine writes ``epoch_2.pth`` again (to
    record the new best of epoch 2) resumes from the first version, which
    records the best of epoch 1: the best of epoch 2 is adopted, the one of
    epoch 1 removed, and a later score between the two is not a best."""
    runner = StandInRunner(
        tmp_path, max_epochs=4, stop_at='epoch_2.pth', stop_at_write=2)
    hook = SafeCheckpointHook(
        interval=1, max_keep_ckpts=1, save_best=save_best)
    with pytest.raises(Died):
        run_epochs(hook, runner, [0.5, 0.7])
    assert names(tmp_path) == [
        'best_acc_epoch_1.pth', 'best_acc_epoch_2.pth', 'epoch_2.pth',
        'last_checkpoint'
    ]
    assert hub_info(tmp_path / 'epoch_2.pth')['best_score'] == 0.5

    runner = resumed(tmp_path, tmp_path / 'epoch_2.pth', max_epochs=4)
    lines = log_lines(runner)
    hook = SafeCheckpointHook(
        interval=1, max_keep_ckpts=1, save_best=save_best)
    run_epochs(hook, runner, [0.6])
    # (With 'auto' the metric is named at the first validation.)
    metric = 'score' if save_best == 'auto' else 'acc'
    assert [line for line in lines if line.startswith('resume:')] == [
        f'resume: best_acc_epoch_2.pth ({metric} 0.7000) is the best '
        f'checkpoint of the run, although epoch_2.pth, which this run '
        f'resumes from, records best_acc_epoch_1.pth ({metric} 0.5000): the '
        f'save that was to record the new best was interrupted.',
        f'resume: removed best_acc_epoch_1.pth ({metric} 0.5000), the best '
        f'checkpoint that best_acc_epoch_2.pth replaced (as the interrupted '
        f'save would have).'
    ]
    # 0.6 is not better than 0.7.
    assert names(tmp_path) == [
        'best_acc_epoch_2.pth', 'epoch_3.pth', 'last_checkpoint'
    ]
    info = hub_info(tmp_path / 'epoch_3.pth')
    assert info['best_score'] == 0.7
    assert info['best_ckpt'] == str(tmp_path / 'best_acc_epoch_2.pth')
    # The adopted best is tracked: a better score replaces it.
    run_epochs(hook, runner, [0.8])
    assert names(tmp_path) == [
        'best_acc_epoch_4.pth', 'epoch_4.pth', 'last_checkpoint'
    ]


def test_each_metrics_best_is_adopted_after_an_interrupted_resave(tmp_path):
    """save_best with several metrics (mmengine's best_ckpt_path_dict)."""
    scores = [
        dict(acc=0.5, loss=0.9),
        dict(acc=0.7, loss=0.8),
        dict(acc=0.6, loss=0.85)
    ]
    runner = StandInRunner(
        tmp_path, max_epochs=3, stop_at='epoch_2.pth', stop_at_write=2)

    def make_hook():
        return SafeCheckpointHook(
            interval=1,
            max_keep_ckpts=1,
            save_best=['acc', 'loss'],
            rule=['greater', 'less'])

    with pytest.raises(Died):
        run_epochs(make_hook(), runner, scores[:2])
    assert names(tmp_path) == [
        'best_acc_epoch_1.pth', 'best_acc_epoch_2.pth',
        'best_loss_epoch_1.pth', 'best_loss_epoch_2.pth', 'epoch_2.pth',
        'last_checkpoint'
    ]
    runner = resumed(tmp_path, tmp_path / 'epoch_2.pth', max_epochs=3)
    lines = log_lines(runner)
    run_epochs(make_hook(), runner, scores[2:])
    assert names(tmp_path) == [
        'best_acc_epoch_2.pth', 'best_loss_epoch_2.pth', 'epoch_3.pth',
        'last_checkpoint'
    ]
    info = hub_info(tmp_path / 'epoch_3.pth')
    assert (info['best_score_acc'], info['best_score_loss']) == (0.7, 0.8)
    assert info['best_ckpt_loss'] == str(tmp_path / 'best_loss_epoch_2.pth')
    adopted = [line for line in lines if 'is the best checkpoint' in line]
    assert [line.split(' is ')[0] for line in adopted] == [
        'resume: best_acc_epoch_2.pth (acc 0.7000)',
        'resume: best_loss_epoch_2.pth (loss 0.8000)'
    ]


def test_a_worse_unrecorded_best_is_left_alone(tmp_path):
    """A best file the run does not track and that is not better than the
    recorded one (here: the rule changed) is neither adopted nor removed."""
    runner = StandInRunner(
        tmp_path, max_epochs=3, stop_at='epoch_2.pth', stop_at_write=2)
    with pytest.raises(Died):
        run_epochs(
            SafeCheckpointHook(interval=1, save_best='acc', rule='less'),
            runner, [0.7, 0.5])
    runner = resumed(tmp_path, tmp_path / 'epoch_2.pth', max_epochs=3)
    lines = log_lines(runner)
    hook = SafeCheckpointHook(interval=1, save_best='acc', rule='greater')
    hook.before_train(runner)
    assert hook.best_ckpt_path == str(tmp_path / 'best_acc_epoch_1.pth')
    assert runner.message_hub.get_info('best_score') == 0.7
    assert (tmp_path / 'best_acc_epoch_2.pth').exists()
    (line, ) = [line for line in lines if line.startswith('resume:')]
    assert line.startswith('resume: left best_acc_epoch_2.pth (acc 0.5000) '
                           'alone: it is not better than '
                           'best_acc_epoch_1.pth (acc 0.7000)')


def test_a_resume_to_an_earlier_point_adopts_no_later_best(tmp_path):
    """``--resume epoch_2.pth`` of a run that went on to epoch 4: the best
    of epoch 3 belongs to the abandoned later part of the run. It is not
    adopted (the new epochs are measured against the best of epoch 2) and
    not removed, with one warning."""
    runner = StandInRunner(tmp_path, max_epochs=4)
    run_epochs(
        SafeCheckpointHook(interval=1, save_best='acc'), runner,
        [0.5, 0.6, 0.9, 0.7])
    assert names(tmp_path) == [
        'best_acc_epoch_3.pth', 'epoch_1.pth', 'epoch_2.pth', 'epoch_3.pth',
        'epoch_4.pth', 'last_checkpoint'
    ]
    runner = resumed(tmp_path, tmp_path / 'epoch_2.pth', max_epochs=4)
    lines = log_lines(runner)
    hook = SafeCheckpointHook(interval=1, save_best='acc')
    run_epochs(hook, runner, [0.55, 0.8])
    assert [line for line in lines if line.startswith('resume:')] == [
        'resume: left best_acc_epoch_3.pth alone: it belongs to a later '
        'point of the run than epoch_2.pth (the checkpoint this run resumes '
        'from). Not removed; a new best saved under the same name replaces '
        'the file.'
    ]
    # 0.55 is not better than the 0.6 of epoch 2; 0.8 is.
    info = hub_info(tmp_path / 'epoch_4.pth')
    assert info['best_score'] == 0.8
    assert info['best_ckpt'] == str(tmp_path / 'best_acc_epoch_4.pth')
    assert hub_info(tmp_path / 'best_acc_epoch_3.pth')['best_score'] == 0.9
    assert names(tmp_path) == [
        'best_acc_epoch_3.pth', 'best_acc_epoch_4.pth', 'epoch_1.pth',
        'epoch_2.pth', 'epoch_3.pth', 'epoch_4.pth', 'last_checkpoint'
    ]


def test_a_new_run_adopts_no_best_file(tmp_path):
    """Only a resumed run (iteration > 0) looks for unrecorded best
    files."""
    save_checkpoint(
        {
            'meta': {},
            'message_hub': {
                'runtime_info': {
                    'best_score': 0.9,
                    'best_ckpt': str(tmp_path / 'best_acc_epoch_5.pth')
                }
            }
        }, str(tmp_path / 'best_acc_epoch_5.pth'))
    runner = StandInRunner(tmp_path, max_epochs=1)
    hook = SafeCheckpointHook(interval=1, save_best='acc')
    hook.before_train(runner)
    assert hook.best_ckpt_path is None
    assert 'best_score' not in runner.message_hub.runtime_info


_CHILD = '''
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location('safety', {test!r})
safety = importlib.util.module_from_spec(spec)
spec.loader.exec_module(safety)

def stop():
    open({signal!r}, 'w').close()
    time.sleep(600)

runner = safety.StandInRunner({work!r}, max_epochs=3, stop_at={stop_at!r},
                              on_stop=stop, stop_at_write={stop_at_write})
hook = safety.SafeCheckpointHook(interval=1, max_keep_ckpts=1,
                                 save_best='acc')
safety.run_epochs(hook, runner, [0.5, 0.6, 0.7])
'''


def kill_while_writing(tmp_path, stop_at, stop_at_write=1):
    """A child process that runs three epochs (scores 0.5, 0.6, 0.7; one
    checkpoint kept, the best one too), killed with SIGKILL while it writes
    ``stop_at`` (for the ``stop_at_write``-th time): its work dir."""
    work = tmp_path / 'work'
    work.mkdir()
    flag = tmp_path / 'writing'
    script = tmp_path / 'child.py'
    script.write_text(
        _CHILD.format(
            test=osp.abspath(__file__),
            signal=str(flag),
            work=str(work),
            stop_at=stop_at,
            stop_at_write=stop_at_write))
    child = subprocess.Popen([sys.executable, str(script)],
                             env=dict(os.environ, OMP_NUM_THREADS='1'))
    deadline = time.time() + 120
    while not flag.exists() and child.poll() is None and \
            time.time() < deadline:
        time.sleep(0.02)
    assert flag.exists(), 'the child never reached the write'
    child.send_signal(signal.SIGKILL)
    child.wait()
    return work


@pytest.mark.slow
def test_sigkill_while_writing_the_best_keeps_the_previous_best(tmp_path):
    """(tests/test_tools/test_train_safety.py kills tools/train.py while
    it writes an epoch checkpoint.)"""
    stop_at = 'best_acc_epoch_2.pth'
    expected = ['best_acc_epoch_1.pth', 'epoch_2.pth']
    work = kill_while_writing(tmp_path, stop_at)
    files = names(work)
    complete = [n for n in files if n.endswith('.pth')]
    assert complete == expected
    for name in complete:
        assert torch.load(
            work / name, map_location='cpu', weights_only=True)['meta']
    # The write that was cut off is only a temporary file.
    partial = [n for n in files if n.startswith(f'.{stop_at}.')]
    assert len(partial) == 1 and partial[0].endswith('.tmp')
    # The next start removes it.
    SafeCheckpointHook(
        interval=1).before_train(StandInRunner(work, max_epochs=3))
    assert [n for n in names(work) if n.endswith('.tmp')] == []


@pytest.mark.slow
def test_sigkill_while_rewriting_the_epoch_checkpoint_keeps_the_new_best(
        tmp_path):
    """Killed in mmengine's second write of ``epoch_2.pth`` (the one that
    records the new best): the resumed run adopts ``best_acc_epoch_2.pth``
    and removes the best of epoch 1."""
    work = kill_while_writing(tmp_path, 'epoch_2.pth', stop_at_write=2)
    assert [n for n in names(work) if n.endswith('.pth')] == [
        'best_acc_epoch_1.pth', 'best_acc_epoch_2.pth', 'epoch_2.pth'
    ]
    assert hub_info(work / 'epoch_2.pth')['best_score'] == 0.5
    runner = resumed(work, work / 'epoch_2.pth', max_epochs=3)
    hook = SafeCheckpointHook(interval=1, max_keep_ckpts=1, save_best='acc')
    run_epochs(hook, runner, [0.55])
    assert names(work) == [
        'best_acc_epoch_2.pth', 'epoch_3.pth', 'last_checkpoint'
    ]
    assert hub_info(work / 'epoch_3.pth')['best_score'] == 0.6


# The runner: every config's CheckpointHook is the safe one; default_hooks
# keys are checked.


@pytest.mark.parametrize(
    'kind', ['CheckpointHook', 'mmengine.CheckpointHook', 'class'])
def test_runner_builds_the_safe_checkpoint_hook(kind):
    from mmengine.hooks import CheckpointHook
    runner = Runner.__new__(Runner)
    runner._hooks = []
    kind = CheckpointHook if kind == 'class' else kind
    runner.register_hook(dict(type=kind, interval=2, max_keep_ckpts=1))
    (hook, ) = runner._hooks
    assert type(hook) is SafeCheckpointHook
    assert (hook.interval, hook.max_keep_ckpts) == (2, 1)


@pytest.mark.configs('van/van-b0_demo.py', 'retinanet/*demo.py',
                     'sem_fpn/*demo.py', 'simplebaseline/*demo.py')
def test_each_family_asks_for_mmengines_checkpoint_hook(path):
    """What the runner replaces is what the configs (and the mmpretrain,
    mmdet, mmseg and mmpose bases they inherit) ask for."""
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    assert cfg.default_hooks.checkpoint.type == 'CheckpointHook'
    check_default_hooks(cfg.default_hooks)


def test_a_mistyped_default_hook_is_an_error():
    with pytest.raises(ConfigError) as err:
        check_default_hooks(
            dict(checkpoint=dict(interval=1), checkpoints=dict(interval=2)))
    assert "unknown key 'checkpoints'. Did you mean 'checkpoint'?" in str(
        err.value)
    assert 'custom_hooks' in str(err.value)


# The work dir lock. (tests/test_tools/test_train_safety.py refuses a run
# while a real one holds it, and takes over the lock of a killed one.)


def test_a_second_lock_is_refused_and_a_dead_ones_taken_over(tmp_path):
    work = str(tmp_path / 'work')
    first = WorkDirLock(work).acquire()
    with pytest.raises(WorkDirInUseError) as err:
        WorkDirLock(work).acquire()
    text = str(err.value)
    assert f'PID {os.getpid()} on host {socket.gethostname()}' in text
    assert 'started 20' in text and '--work-dir' in text
    first.release()
    assert not osp.exists(first.path)
    # A normal end leaves nothing to take over.
    warnings = []
    with WorkDirLock(work, warn=warnings.append) as lock:
        assert str(os.getpid()) in open(lock.path).read()
    assert warnings == []
    # The file of a process that died holding the lock (nobody holds it).
    with open(osp.join(work, 'train.lock'), 'w') as f:
        f.write('{"pid": 999999, "host": "node7", "started": "then"}')
    with WorkDirLock(work, warn=warnings.append):
        pass
    (warning, ) = warnings
    assert 'PID 999999 on host node7, started then' in warning
    assert 'no longer running' in warning


def test_checkpoints_record_the_stage_norm_eps_a_load_takes_over(tmp_path):
    """A run whose VAN took over mmpretrain's eps 1e-5 from its pretrained
    weights writes checkpoints that give it back to a model built from a
    config left at the default (as tools/test.py and init_model build it):
    the same features as the model that was trained."""
    import mmengine

    from mmvan.models import VAN
    from mmvan.testing import TINY, randomized
    torch.manual_seed(0)
    trained = randomized(
        VAN(arch=TINY,
            out_indices=(0, 1, 2, 3),
            out_norm_cfg=dict(type='LN', eps=1e-5))).eval()
    detector = torch.nn.Module()
    detector.backbone = trained
    checkpoint = dict(
        state_dict={
            'backbone.' + k: v
            for k, v in trained.state_dict().items()
        },
        meta=dict(mmengine_version=mmengine.__version__))
    runner = StandInRunner(tmp_path, max_epochs=1)
    runner.model = detector
    SafeCheckpointHook().before_save_checkpoint(runner, checkpoint)
    assert checkpoint['meta']['arch'] == dict(out_norm_eps=1e-5)
    path = str(tmp_path / 'epoch_1.pth')
    torch.save(checkpoint, path)

    loaded = VAN(
        arch=TINY,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=path))
    loaded.init_weights()
    assert [loaded.stage_modules(i)[2].eps for i in range(4)] == [1e-5] * 4
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        for got, expected in zip(loaded.eval()(x), trained(x)):
            assert torch.equal(got, expected)
