# Copyright (c) mmvan contributors. All rights reserved.
"""Pre-emption-safe training: a stop signal ends the run with a checkpoint.

A cluster announces a pre-emption or the end of a time limit with a signal
(slurm: SIGTERM, or SIGUSR1 ``sig_time`` seconds ahead with
``--signal=USR1@120``). With :class:`PreemptionHook` the process records the
signal and keeps training; after the iteration that is running (and, with
gradient accumulation, after the optimizer step that completes it) every
process agrees to stop, rank 0 writes ``iter_<N>.pth`` atomically and the
job exits with status 143 after saying where it saved. ``--resume`` then
continues from it (:class:`mmvan.engine.EpochBasedTrainLoop` skips the
epoch's batches it has trained on), and with the data loaded in the main
process (``num_workers=0``) the resumed run ends with the weights of the
uninterrupted one; with worker processes the rest of the interrupted epoch
sees the same images in the same order but other random augmentations.
"""
import os
import os.path as osp
import random
import signal
import threading

import numpy as np
import torch
from mmengine.dist import (all_gather_object, all_reduce, barrier, get_rank,
                           get_world_size, is_distributed, is_main_process)
from mmengine.hooks import Hook

from mmvan.registry import HOOKS
from mmvan.utils.atomic import atomic_backend_args, atomic_write

#: What a job stopped by a signal exits with (128 + SIGTERM).
EXIT_STATUS = 143
STOP_SIGNALS = ('SIGTERM', 'SIGUSR1')
#: Where a launcher wants the status written instead of exited with.
STATUS_FILE_ENV = 'MMVAN_STOP_STATUS_FILE'


class _StopSignals:
    """The stop signals this process has received since :meth:`listen`."""

    def __init__(self):
        self.received = []
        self.listening = False

    def listen(self):
        """Record SIGTERM and SIGUSR1 instead of dying at once (main thread
        only; elsewhere Python cannot set handlers and nothing changes)."""
        if self.listening:
            return True
        if threading.current_thread() is not threading.main_thread():
            return False
        for name in STOP_SIGNALS:
            signal.signal(getattr(signal, name), self._record)
        self.listening = True
        return True

    def _record(self, signum, frame):
        self.received.append(signal.Signals(signum).name)


stop_signals = _StopSignals()


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _random_states():
    """Python's, numpy's and torch's random states, as tensors and ints (a
    ``weights_only`` load reads them)."""
    version, state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = dict(
        python=(version, tuple(state), gauss),
        numpy=(kind, torch.from_numpy(keys.astype(np.int64)), int(pos),
               int(has_gauss), float(cached)),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state()
    return states


def _set_random_states(states):
    version, state, gauss = states['python']
    random.setstate((version, tuple(state), gauss))
    kind, keys, pos, has_gauss, cached = states['numpy']
    np.random.set_state(
        (kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states['torch'])
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states['cuda'])


@HOOKS.register_module()
class PreemptionHook(Hook):
    """Stop at SIGTERM or SIGUSR1 with a resumable checkpoint (see the
    module).

    Every process checks after each training iteration whether one of them
    has received a signal (one small ``all_reduce``), so all stop after the
    same iteration. What it does when:

    - before the first iteration: nothing to save; it says so and exits;
    - during an iteration: the iteration ends, then the checkpoint
      ``iter_<N>.pth`` of the state after it (model, optimizer, schedulers,
      message hub, EMA, every process's random states) is written to a
      temporary file and renamed, ``last_checkpoint`` names it, and the
      job exits with status 143;
    - during gradient accumulation: training goes on to the optimizer step
      that completes it (the accumulated gradients are not saved);
    - during validation: the validation finishes, then the state at the end
      of the epoch is saved the same way;
    - a second signal while saving changes nothing: the first save finishes.

    Args:
        exit_status (int): The status the job exits with. Defaults to 143.
    """
    priority = 'LOWEST'  # after the scheduler, EMA and checkpoint hooks

    def __init__(self, exit_status=EXIT_STATUS):
        self.exit_status = exit_status
        self._training = False
        self._stopping = None
        self._said_accumulating = False
        self._pending_random = None
        self._resumed_stop = None

    def before_run(self, runner):
        stop_signals.listen()

    def _agreed_signal(self):
        """The signal that stops the run, once any process has received
        one; every process calls this at the same point."""
        received = stop_signals.received
        if not is_distributed():
            return received[0] if received else None
        flag = torch.tensor([1.0 if received else 0.0])
        all_reduce(flag, op='max')
        if flag.item() == 0:
            return None
        names = [n for n in all_gather_object(received[:1]) if n]
        return names[0][0] if names else 'a stop signal'

    def before_train(self, runner):
        self._training = True
        name = self._agreed_signal()
        if name is not None:
            self._exit(
                runner, f'{name} before the first training iteration: '
                f'nothing to save, no checkpoint written.')

    def after_train(self, runner):
        self._training = False

    def before_train_epoch(self, runner):
        self._said_accumulating = False

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        if self._stopping is None:
            self._stopping = self._agreed_signal()
        if self._stopping is None:
            return
        should_update = getattr(runner.optim_wrapper, 'should_update', None)
        if should_update is not None and not should_update():
            if not self._said_accumulating:
                runner.logger.info(
                    f'{self._stopping}: finishing the gradient accumulation '
                    f'before saving.')
                self._said_accumulating = True
            return
        per_epoch = len(runner.train_dataloader)
        done = runner.iter + 1
        self._save_and_exit(
            runner, dict(epoch=runner.epoch, iter=done),
            f'after iteration {done} (epoch {runner.epoch + 1}, iteration '
            f'{done - runner.epoch * per_epoch} of {per_epoch})')

    def after_train_epoch(self, runner):
        # The checkpoint hook has run: a newer checkpoint than the stop
        # checkpoint this run resumed from makes it outdated.
        if self._resumed_stop is None or not is_main_process():
            return
        last = osp.join(runner.work_dir, 'last_checkpoint')
        if not osp.isfile(last):
            return
        with open(last, encoding='utf-8') as f:
            named = f.read().strip()
        named = osp.abspath(osp.join(runner.work_dir, named))
        if named != self._resumed_stop and osp.isfile(named):
            self._remove_resumed_stop(runner, osp.basename(named))

    def _remove_resumed_stop(self, runner, newer):
        """Remove the stop checkpoint this run resumed from, once ``newer``
        (in the work dir) holds a later state: ``--resume`` takes the
        highest-numbered checkpoint, and an ``iter_N.pth`` left beside
        ``epoch_M.pth`` files could outnumber newer ones."""
        path, self._resumed_stop = self._resumed_stop, None
        if path and osp.isfile(path):
            os.remove(path)
            runner.logger.info(
                f'removed {osp.basename(path)}, the stop checkpoint this run '
                f'resumed from: {newer} holds a later state.')

    def after_val_epoch(self, runner, metrics=None):
        if not self._training:
            return
        if self._stopping is None:
            self._stopping = self._agreed_signal()
        if self._stopping is not None:
            self._save_and_exit(
                runner, dict(epoch=runner.epoch, iter=runner.iter),
                f'at the end of epoch {runner.epoch} (after its validation)')

    def after_load_checkpoint(self, runner, checkpoint):
        meta = checkpoint.get('meta') or {}
        states = meta.get('random_states')
        self._pending_random = None
        self._resumed_stop = None
        load_from = runner.cfg.get('load_from')
        if meta.get('stopped_by') and runner.cfg.get('resume') and \
                load_from and osp.dirname(osp.abspath(load_from)) == \
                osp.abspath(runner.work_dir):
            self._resumed_stop = osp.abspath(load_from)
        if states and len(states) == get_world_size():
            self._pending_random = (checkpoint['meta'].get('iter'),
                                    states[get_rank()])

    def restore_random_states(self, runner):
        """Set the random states the checkpoint of a stopped run saved, when
        training resumes at its iteration (called by the training loop once
        the epoch's data iterator exists)."""
        if self._pending_random is None:
            return
        saved_iter, states = self._pending_random
        self._pending_random = None
        if saved_iter == runner.iter:
            _set_random_states(states)

    def _save_and_exit(self, runner, meta, when):
        name = self._stopping
        meta = dict(meta, stopped_by=name)
        states = _random_states()
        meta['random_states'] = (
            all_gather_object(states) if is_distributed() else [states])
        filename = f'iter_{meta["iter"]}.pth'
        path = osp.join(runner.work_dir, filename)
        if is_main_process():
            self._write(runner, filename, meta)
            if self._resumed_stop != osp.abspath(path):
                self._remove_resumed_stop(runner, filename)
        barrier()
        self._exit(
            runner, f'{name}: saved the state {when} to {path}; '
            f'--resume continues from it.')

    def _write(self, runner, filename, meta):
        """``runner.save_checkpoint`` through the atomic local file backend
        (a temporary file, fsynced, renamed): the path holds the whole
        checkpoint or nothing, and a save killed half-way leaves a
        temporary file that the next run removes."""
        work_dir = runner.work_dir
        runner.save_checkpoint(
            work_dir,
            filename,
            meta=meta,
            by_epoch=False,
            save_optimizer=True,
            save_param_scheduler=True,
            backend_args=atomic_backend_args())
        # Relative to the work dir, as the checkpoint hook writes it.
        atomic_write(
            osp.join(work_dir, 'last_checkpoint'),
            filename,
            mode='w',
            encoding='utf-8')
        _fsync(work_dir)

    def _exit(self, runner, message):
        if is_main_process():
            runner.logger.info(
                f'{message} Exiting with status {self.exit_status}.')
        if is_distributed():
            barrier()
            torch.distributed.destroy_process_group()
        status_file = os.environ.get(STATUS_FILE_ENV)
        if status_file:
            # A launcher that reports the status itself (tools/dist_train.sh:
            # torchrun turns any non-zero worker status into 1).
            atomic_write(status_file, f'{self.exit_status}\n', mode='w')
            raise SystemExit(0)
        raise SystemExit(self.exit_status)
