# Copyright (c) mmvan contributors. All rights reserved.
"""mmengine's CheckpointHook, with the save order that survives a crash.

mmengine removes the oldest epoch checkpoint (``max_keep_ckpts``) and the
previous ``best_*.pth`` *before* it writes the new one, so a process killed
during the write leaves no checkpoint at all. Here the new file is written
first (to a temporary name, fsynced, renamed: mmengine's checkpoint saving
is given the atomic local file backend of :mod:`mmvan.utils.atomic` through
``backend_args``, when the checkpoints go to a local folder and the config
names no backend of its own), then ``last_checkpoint``, and only then are
the outdated files removed: at every moment the work dir holds at least one
complete checkpoint and the latest best one.

``last_checkpoint`` holds the checkpoint's path relative to the work dir
(a renamed or copied work dir still names its own files), written
atomically.

Every checkpoint of the run records the LayerNorm eps of its VAN stage
norms in ``meta['arch']['out_norm_eps']``, as converted files do: a model
whose eps was taken over from its pretrained weights (mmpretrain's 1e-5)
gets it back when the checkpoint is loaded into a config left at the
default (``tools/test.py``, ``init_model``).

mmengine writes a new ``best_*.pth`` and then the epoch checkpoint a second
time, to record the new best in it. A run killed during that second write
resumes from the first version, which records the previous best: the
resumed run then adopts the newer best file (its own message hub holds its
score) and removes the previous one, with a log line each (see
``SafeCheckpointHook._adopt_unrecorded_best``). A best file of a later
iteration than the resumed one (a resume from an earlier epoch of a run that
went on) is not adopted: one warning names it.

The temporary files that a killed save leaves (``.epoch_2.pth.<random>.tmp``)
are removed when the next run into the work dir starts, each with one log
line: the checkpoint they were meant to become was never renamed into place,
and the previous one is still there.

:class:`mmvan.engine.runner.Runner` uses this hook wherever a config asks
for ``type='CheckpointHook'`` (the mmpretrain, mmdet, mmseg and mmpose bases
all do), with the same arguments.
"""
import os
import os.path as osp
import re

from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook
from torch import nn

from mmvan.models.backbones.van import VAN
from mmvan.registry import HOOKS
from mmvan.utils.atomic import atomic_backend_args, atomic_write
from mmvan.utils.checkpoint import safe_torch_load
from mmvan.utils.errors import CheckpointError

LAST_CHECKPOINT = 'last_checkpoint'
# What mmvan.utils.atomic.atomic_write names its temporary files:
# '.' + final name + '.' + 8 random characters + '.tmp' (the final name may
# itself be such a temporary name: what a stop signal's save of earlier mmvan
# versions left).
# What mmengine's hook names a best checkpoint: best_<metric>_<epoch_N.pth>.
_BEST = re.compile(r'^best_.+\.pth$')
_TEMPORARY = re.compile(
    r'^\.(?:.*\.pth(?:\.\w{8}\.tmp)?|last_checkpoint)\.\w{8}\.tmp$')


def _scored(key, score):
    """``acc 0.7000``, as mmengine's hook shows a best score."""
    metric = key if key != 'auto' else 'score'
    try:
        return f'{metric} {float(score):.4f}'
    except (TypeError, ValueError):
        return f'{metric} {score}'


def stale_temporaries(folder):
    """The temporary checkpoint (and ``last_checkpoint``) files that an
    interrupted save left in ``folder``."""
    if not osp.isdir(folder):
        return []
    return sorted(
        osp.join(folder, name) for name in os.listdir(folder)
        if _TEMPORARY.match(name) and osp.isfile(osp.join(folder, name)))


def last_checkpoint_text(checkpoint, work_dir):
    """What ``last_checkpoint`` holds for ``checkpoint``: its path relative
    to ``work_dir`` when it lies inside it, else the path as given (an
    ``out_dir`` elsewhere, a remote URL)."""
    checkpoint = str(checkpoint)
    if '://' in checkpoint:
        return checkpoint
    work_dir = osp.realpath(work_dir)
    path = osp.realpath(checkpoint)
    if osp.commonpath([work_dir, path]) == work_dir:
        return osp.relpath(path, work_dir)
    return checkpoint


def stage_norm_eps(model):
    """The LayerNorm eps of the stage norms of the first VAN in ``model``;
    None without a VAN or with other stage norms."""
    for module in model.modules():
        if isinstance(module, VAN):
            norm = module.stage_modules(0)[2]
            return norm.eps if isinstance(norm, nn.LayerNorm) else None
    return None


class _DeferredRemovals:
    """A file backend whose ``remove`` / ``rmtree`` only note the path; the
    rest goes to ``backend``."""

    def __init__(self, backend):
        self.backend = backend
        self.pending = []

    def remove(self, path):
        self.pending.append(path)

    def rmtree(self, path):
        self.pending.append(path)

    def isfile(self, path):
        return path not in self.pending and self.backend.isfile(path)

    def isdir(self, path):
        return path not in self.pending and self.backend.isdir(path)

    def __getattr__(self, name):
        return getattr(self.backend, name)


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """:class:`mmengine.hooks.CheckpointHook` (same arguments) that removes
    an outdated checkpoint only after the new one is complete on disk.

    See the module for the order of the writes and the clean-up of
    temporary files.
    """

    def before_train(self, runner):
        super().before_train(runner)
        if self.backend_args is None and self.file_client_args is None and \
                type(self.file_backend) is LocalBackend:
            # runner.save_checkpoint writes through this backend.
            self.backend_args = atomic_backend_args()
        self._own_best_paths()
        self._adopt_unrecorded_best(runner)
        if not is_main_process():
            return
        folders = [runner.work_dir]
        if isinstance(self.file_backend, LocalBackend) and \
                osp.abspath(self.out_dir) != osp.abspath(runner.work_dir):
            folders.append(self.out_dir)
        for folder in folders:
            for path in stale_temporaries(folder):
                os.remove(path)
                runner.logger.warning(
                    f'Removed {path}: the temporary file of a save that was '
                    f'interrupted (the checkpoint it was to become was never '
                    f'put in place; the previous one was kept).')

    def before_save_checkpoint(self, runner, checkpoint):
        eps = stage_norm_eps(runner.model)
        if eps is None:
            return
        meta = checkpoint.setdefault('meta', {})
        if not isinstance(meta.get('arch'), dict):
            meta['arch'] = {}
        meta['arch']['out_norm_eps'] = eps

    def _own_best_paths(self):
        """A resumed run's best checkpoint is the one in its own folder:
        the message hub of a checkpoint keeps the absolute path it had when
        saved, which after a rename of the work dir names another folder
        (whose file would be removed at the next better score)."""
        if self.save_best is None or not isinstance(self.file_backend,
                                                    LocalBackend):
            return

        def own(path):
            if not path or osp.dirname(osp.abspath(path)) == osp.abspath(
                    self.out_dir):
                return path
            return osp.join(self.out_dir, osp.basename(path))

        if hasattr(self, 'best_ckpt_path'):
            self.best_ckpt_path = own(self.best_ckpt_path)
        for key, path in getattr(self, 'best_ckpt_path_dict', {}).items():
            self.best_ckpt_path_dict[key] = own(path)

    def _best_keys(self):
        """``{metric: (message hub key of its score, of its path)}``, as
        mmengine's hook names them (one metric, 'auto' included: no
        suffix)."""
        keys = list(getattr(self, 'key_indicators', None) or [])
        if len(keys) == 1:
            return {keys[0]: ('best_score', 'best_ckpt')}
        return {k: (f'best_score_{k}', f'best_ckpt_{k}') for k in keys}

    def _is_better(self, key, score, than):
        rule = getattr(self, 'is_better_than', {}).get(key)
        if rule is None:  # 'auto' before the first validation
            return None
        return bool(rule(score, than))

    def _adopt_unrecorded_best(self, runner):
        """A resumed run tracks the best checkpoint of each metric that the
        run saved last, even where the checkpoint it resumes from does not
        record it.

        mmengine writes a new ``best_*.pth`` and then the epoch (iter)
        checkpoint again, so that its message hub records the new best
        score and path. A run killed (or out of disk space) during that
        second write resumes from the first version of the epoch
        checkpoint, which records the previous best: the new best file
        would never be removed, and a later score between the two would be
        saved as the best. Each ``best_*.pth`` of the checkpoint folder
        that the resumed message hub does not record, but whose own message
        hub records it as the best of a metric of this run, is read
        (metadata only); the better one of it and the recorded one (for
        ``save_best='auto'`` before its first validation: the one of the
        later iteration) becomes the run's best, with one log line, and the
        other is removed as the interrupted save would have done.

        Only a file saved at the iteration the run resumes from or earlier
        (its ``meta['iter']``; the interrupted best has exactly the resumed
        iteration: mmengine counts no iteration between the save of the
        checkpoint and the validation that saves the best) is adopted. A
        later one belongs to a part of the run that a resume from an
        earlier checkpoint abandons (``--resume epoch_2.pth`` of a run that
        went on): it is left alone, with one warning that names them all.
        A file that cannot be read, or records no iteration, is left alone
        with a warning.
        """
        if self.save_best is None or getattr(runner, 'iter', 0) <= 0 or \
                not isinstance(self.file_backend, LocalBackend) or \
                not osp.isdir(self.out_dir):
            return
        keys = self._best_keys()
        recorded = self._best_paths()
        known = {osp.basename(p) for p in recorded.values() if p}
        found = {key: [] for key in keys}
        later = []
        for name in sorted(os.listdir(self.out_dir)):
            path = osp.join(self.out_dir, name)
            if not _BEST.match(name) or name in known or \
                    not osp.isfile(path):
                continue
            try:
                ckpt = safe_torch_load(path, map_location='cpu', mmap=True)
            except CheckpointError as e:
                runner.logger.warning(
                    f'resume: left {path} alone: it cannot be read to '
                    f'compare its score with the best checkpoint the run '
                    f'tracks ({e}).')
                continue
            if not isinstance(ckpt, dict):
                continue
            hub = (ckpt.get('message_hub') or {}).get('runtime_info') or {}
            step = (ckpt.get('meta') or {}).get('iter')
            best_of = [
                key for key, (score_key, path_key) in keys.items()
                if hub.get(path_key) and score_key in hub
                and osp.basename(str(hub[path_key])) == name
            ]
            if not best_of:
                continue
            if not isinstance(step, int):
                runner.logger.warning(
                    f'resume: left {path} alone: it records no iteration '
                    f"(meta['iter']) that would place it before the "
                    f'checkpoint this run resumes from.')
                continue
            if step > runner.iter:
                later.append(name)
                continue
            for key in best_of:
                found[key].append((path, hub[keys[key][0]], step))
        for key, candidates in found.items():
            if candidates:
                self._adopt_best(runner, key, candidates)
        if later:
            resumed = runner.message_hub.get_info('last_ckpt')
            resumed = f'{osp.basename(resumed)} (' if resumed else '('
            they = 'it belongs' if len(later) == 1 else 'they belong'
            runner.logger.warning(
                f'resume: left {", ".join(later)} alone: {they} to a later '
                f'point of the run than {resumed}the checkpoint this run '
                f'resumes from). Not removed; a new best saved under the '
                f'same name replaces the file.')

    def _adopt_best(self, runner, key, candidates):
        """Make the best of ``candidates`` (``(path, score, iter)`` of the
        unrecorded best files of metric ``key``) and the recorded best the
        run's best checkpoint of ``key``."""
        score_key, path_key = self._best_keys()[key]
        hub = runner.message_hub
        recorded = self._best_paths().get(key)
        best = None
        if recorded and score_key in hub.runtime_info:
            best = (recorded, hub.get_info(score_key), runner.iter)
        left = []
        for candidate in sorted(candidates, key=lambda c: c[2]):
            better = best is None or self._is_better(key, candidate[1],
                                                     best[1])
            if better is None:
                better = candidate[2] >= best[2]
            if better:
                if best is not None and best[0] != recorded:
                    left.append(best)
                best = candidate
            else:
                left.append(candidate)
        path, score, _ = best
        if path == recorded:
            replaced = None
        else:
            replaced = (recorded, hub.get_info(score_key)) \
                if recorded else None
            hub.update_info(score_key, score)
            hub.update_info(path_key, path)
            if len(self._best_keys()) == 1:
                self.best_ckpt_path = path
            else:
                self.best_ckpt_path_dict[key] = path
            was = 'no best one'
            if replaced:
                was = (f'{osp.basename(recorded)} '
                       f'({_scored(key, replaced[1])})')
            resumed = 'the checkpoint this run resumes from'
            if hub.get_info('last_ckpt'):
                resumed = (f'{osp.basename(hub.get_info("last_ckpt"))}, '
                           f'which this run resumes from,')
            runner.logger.warning(
                f'resume: {osp.basename(path)} ({_scored(key, score)}) is '
                f'the best checkpoint of the run, although {resumed} '
                f'records {was}: the save that was to record the new best '
                f'was interrupted.')
        if replaced and is_main_process() and self._remove(recorded):
            runner.logger.warning(
                f'resume: removed {osp.basename(recorded)} '
                f'({_scored(key, replaced[1])}), the best checkpoint that '
                f'{osp.basename(path)} replaced (as the interrupted save '
                f'would have).')
        for other, other_score, _ in left:
            runner.logger.warning(
                f'resume: left {osp.basename(other)} '
                f'({_scored(key, other_score)}) alone: it is not better than '
                f'{osp.basename(path)} ({_scored(key, score)}); the run does '
                f'not track it, so it stays until you remove it.')

    def _save_checkpoint_with_step(self, runner, step, meta):
        outdated = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            # The list goes into the checkpoint as it will be once the
            # outdated file is gone; the file itself goes after the save.
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        atomic_write(
            osp.join(runner.work_dir, LAST_CHECKPOINT),
            last_checkpoint_text(self.last_ckpt, runner.work_dir),
            mode='w',
            encoding='utf-8')
        for old in outdated:
            self._remove(
                self.file_backend.join_path(self.out_dir,
                                            self.filename_tmpl.format(old)))

    def _save_best_checkpoint(self, runner, metrics):
        # mmengine's logic decides what is best; the previous best file is
        # removed only once the new one (and the epoch checkpoint that
        # records it) has been written.
        backend = self.file_backend
        deferred = _DeferredRemovals(backend)
        before = self._best_paths()
        self.file_backend = deferred
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            self.file_backend = backend
        current = set(self._best_paths().values())
        for path in deferred.pending:
            # (A new best of the same name replaced it: it stays.)
            if path not in current:
                self._remove(path)
        # mmengine's own line goes to the log file; this one to the console.
        # (With save_best='auto' the metric is named at the first call.)
        for key, path in self._best_paths().items():
            if path and path not in before.values() and key in metrics:
                runner.logger.info(f'best {key}: {metrics[key]:.4f}, saved '
                                   f'to {osp.basename(path)}')

    def _best_paths(self):
        """The best checkpoint's path, by metric."""
        if not getattr(self, 'key_indicators', None):
            return {}
        if len(self.key_indicators) == 1:
            return {
                self.key_indicators[0]: getattr(self, 'best_ckpt_path', None)
            }
        return dict(getattr(self, 'best_ckpt_path_dict', {}))

    def _remove(self, path):
        """Remove the checkpoint ``path``; whether there was one."""
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):
            # checkpoints saved by deepspeed are folders
            self.file_backend.rmtree(path)
        else:
            return False
        return True
