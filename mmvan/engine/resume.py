# Copyright (c) mmvan contributors. All rights reserved.
"""Which checkpoint ``--resume`` continues from, and which work dirs a new
run may not write into.

mmengine reads only ``last_checkpoint``; when that file is missing (a crash
while saving, epoch files copied into a fresh folder) it starts from scratch
and overwrites the epoch files. Here every ``epoch_N.pth`` / ``iter_N.pth``
of the work dir is a candidate, newest first, and the first that loads and
holds an optimizer state is taken; the ones skipped are reported with the
reason. ``--resume`` that finds nothing to continue is an error: starting
afresh is asked for by leaving ``--resume`` out.

``last_checkpoint`` names a file of its own work dir (relative, as
:class:`mmvan.engine.hooks.SafeCheckpointHook` writes it). An absolute path
outside the work dir (a renamed or copied folder whose old name a new run
took) is not resumed from: it is reported as skipped.

A checkpoint without optimizer state (``best_*.pth``, a published or
converted file) cannot continue a run: the optimizer's moments and the
schedule would start over while the epoch count goes on. ``--load-from``
starts a new run from its weights.

A resumed run continues with the optimizer values its checkpoint holds
(the learning rate, weight decay, momentum ... of every parameter group, and
the schedule built on them), as mmengine resumes them; a config that sets
other ones (``--resume --cfg-options optim_wrapper.optimizer.lr=0.01``) gets
one warning naming each value in both and how to train with the config's
(:func:`changed_optimizer_settings`).
"""
import math
import os
import os.path as osp
import re

import torch

from mmvan.utils.checkpoint import safe_torch_load
from mmvan.utils.errors import CheckpointError, UserError

_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')
LAST_CHECKPOINT = 'last_checkpoint'
# What resume_problem says of a checkpoint that holds only weights.
NO_OPTIMIZER = 'it holds no optimizer state (weights only)'


def checkpoint_dir(cfg):
    """Where the run of ``cfg`` saves its checkpoints: the work dir, or
    ``<out_dir>/<name of the work dir>`` when the checkpoint hook has a
    local ``out_dir`` (as mmengine's CheckpointHook places them)."""
    work_dir = cfg.get('work_dir')
    hook = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
    out_dir = hook.get('out_dir') if isinstance(hook, dict) else None
    if not out_dir or '://' in str(out_dir):
        return work_dir
    if osp.abspath(out_dir) == osp.abspath(work_dir):
        return work_dir
    return osp.join(out_dir, osp.basename(work_dir.rstrip(osp.sep)))


def run_checkpoints(work_dir):
    """The ``epoch_N.pth`` / ``iter_N.pth`` files in ``work_dir``, newest
    (highest N, then latest modified) first."""
    if not osp.isdir(work_dir):
        return []
    found = []
    for name in os.listdir(work_dir):
        m = _NAME.match(name)
        if m:
            path = osp.join(work_dir, name)
            found.append((int(m.group(2)), osp.getmtime(path), path))
    return [p for _, _, p in sorted(found, reverse=True)]


def all_checkpoints(work_dir):
    """Every checkpoint a run leaves in ``work_dir``: the ``*.pth`` files
    (and folders, as deepspeed saves them) of its top level, the
    ``epoch_N`` / ``iter_N`` ones first, newest first, then the others
    (``best_*.pth``, published ``*-<sha>.pth``, any other name) by name."""
    if not osp.isdir(work_dir):
        return []
    runs = run_checkpoints(work_dir)
    others = sorted(
        osp.join(work_dir, name) for name in os.listdir(work_dir)
        if name.endswith('.pth') and osp.join(work_dir, name) not in runs)
    return runs + others


def _inside(path, folder):
    folder = osp.realpath(folder)
    return osp.commonpath([folder, osp.realpath(path)]) == folder


def read_last_checkpoint(work_dir, ckpt_dir=None):
    """The checkpoint ``<work_dir>/last_checkpoint`` names.

    Returns:
        tuple: ``(path, reason)``: ``path`` (or None when there is no such
        file or it is empty) and, when that path must not be resumed from
        (outside ``work_dir`` and ``ckpt_dir``), the reason (else None). A
        relative name is taken relative to ``work_dir``.
    """
    last = osp.join(work_dir, LAST_CHECKPOINT)
    if not osp.isfile(last):
        return None, None
    with open(last, encoding='utf-8', errors='replace') as f:
        named = f.read().strip()
    if not named:
        return None, None
    path = named if osp.isabs(named) else osp.join(work_dir, named)
    if not _inside(path, work_dir) and not (ckpt_dir
                                            and _inside(path, ckpt_dir)):
        return path, (f'named by {last} but outside the work dir (a renamed '
                      f'or copied folder?); give it with --resume PATH to '
                      f'continue that run')
    return path, None


def resume_problem(path):
    """Why ``path`` cannot be resumed from (loading it fully), or None."""
    try:
        ckpt = safe_torch_load(path, map_location='cpu')
    except CheckpointError as e:
        return str(e).split('(')[0].strip().rstrip('.')
    if not isinstance(ckpt, dict) or 'state_dict' not in ckpt or \
            'meta' not in ckpt:
        return 'not a training checkpoint (no state_dict / meta)'
    if 'optimizer' not in ckpt:
        return NO_OPTIMIZER
    bad = [
        k for k, v in ckpt['state_dict'].items()
        if isinstance(v, torch.Tensor) and v.is_floating_point()
        and not bool(torch.isfinite(v).all())
    ]
    if bad:
        return f'{len(bad)} tensors hold NaN or inf'
    return None


def check_resume_checkpoint(path):
    """Raise a :class:`UserError` when ``--resume PATH`` cannot continue a
    run from ``path``."""
    if not osp.isfile(path):
        raise UserError(f'--resume: checkpoint {path} does not exist.')
    problem = resume_problem(path)
    if problem is None:
        return
    hint = ''
    if problem == NO_OPTIMIZER:
        hint = (' To start a new run from its weights, use --load-from '
                f'{path} instead of --resume.')
    raise UserError(f'--resume: cannot continue a run from {path}: '
                    f'{problem}.{hint}')


def find_resume_checkpoint(work_dir, ckpt_dir=None):
    """The newest checkpoint of ``work_dir`` (or of ``ckpt_dir``, where the
    run saves them: :func:`checkpoint_dir`) that a run can continue from.

    Returns:
        tuple: ``(path, skipped)`` with ``skipped`` a list of
        ``(path, reason)`` of the newer ones that could not be used.

    Raises:
        UserError: when there is none (starting from scratch would be a
            silent restart, and would overwrite the files there).
    """
    ckpt_dir = ckpt_dir or work_dir
    candidates = run_checkpoints(ckpt_dir)
    skipped = []
    named, reason = read_last_checkpoint(work_dir, ckpt_dir)
    if named is not None and reason is not None:
        skipped.append((named, reason))
    elif named is not None and osp.isfile(named) and \
            osp.realpath(named) not in map(osp.realpath, candidates):
        candidates.insert(0, named)
    for path in candidates:
        problem = resume_problem(path)
        if problem is None:
            return path, skipped
        skipped.append((path, problem))
    if skipped:
        listed = '; '.join(f'{osp.basename(p)}: {r}' for p, r in skipped)
        raise UserError(
            f'--resume: no checkpoint in {ckpt_dir} can be resumed from '
            f'({listed}). Give one with --resume PATH, start a new run from '
            f'weights with --load-from PATH, or move them away to start '
            f'afresh.')
    others = [osp.basename(p) for p in all_checkpoints(ckpt_dir)]
    held = ''
    if others:
        held = (f' (it holds {", ".join(others[:3])}: give one with --resume '
                f'PATH when it holds an optimizer state, or start a new run '
                f'from its weights with --load-from PATH)')
    raise UserError(f'--resume: no epoch_N.pth / iter_N.pth checkpoint to '
                    f'resume from in {ckpt_dir}{held}. To start a new run, '
                    f'leave out --resume.')


def refuse_to_overwrite(work_dir, ckpt_dir=None):
    """Raise a :class:`UserError` when a new run (no ``--resume``) would
    write into a work dir (or checkpoint folder) that holds checkpoints of
    an earlier run."""
    for folder in dict.fromkeys([work_dir, ckpt_dir or work_dir]):
        existing = all_checkpoints(folder)
        if not existing:
            continue
        names = ', '.join(osp.basename(p) for p in existing[:3])
        more = f' and {len(existing) - 3} more' if len(existing) > 3 else ''
        raise UserError(
            f'{folder} already holds checkpoints of an earlier run '
            f'({names}{more}); a new run would overwrite them. Continue it '
            f'with --resume, or choose another --work-dir.')


# What a config sets of each parameter group (the base values: a schedule
# keeps its start in 'initial_<name>' and moves '<name>').
OPTIMIZER_SETTINGS = ('lr', 'weight_decay', 'momentum', 'betas', 'eps',
                      'dampening', 'nesterov', 'amsgrad')


def _group_settings(group):
    settings = {}
    for name in OPTIMIZER_SETTINGS:
        if f'initial_{name}' in group:
            settings[name] = group[f'initial_{name}']
        elif name == 'betas' and 'initial_momentum' in group and \
                name in group:
            # A momentum schedule moves betas[0] (its start is
            # initial_momentum); betas[1] stays as set.
            settings['betas[1]'] = tuple(group[name])[1]
        elif name in group and not (name == 'momentum' and 'betas' in group):
            settings[name] = group[name]
    return settings


def optimizer_settings(optim_wrapper):
    """``{optimizer name: [settings of each parameter group]}`` of a built
    optim wrapper (name '' for a single one); None while it is still a
    config."""
    wrappers = getattr(optim_wrapper, 'optim_wrappers', None)
    if wrappers is None:
        wrappers = {'': optim_wrapper}
    settings = {}
    for name, wrapper in wrappers.items():
        optimizer = getattr(wrapper, 'optimizer', None)
        if optimizer is None:
            return None
        settings[name] = [_group_settings(g) for g in optimizer.param_groups]
    return settings


def _same(a, b):
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    return a == b


def _shown(value):
    if isinstance(value, float):
        return f'{value:g}'
    if isinstance(value, (tuple, list)):
        return '(' + ', '.join(_shown(v) for v in value) + ')'
    return str(value)


def changed_optimizer_settings(configured, resumed, checkpoint):
    """The warning for a resumed run whose config sets other optimizer
    values than the checkpoint it continues from holds, or None.

    Args:
        configured: :func:`optimizer_settings` of the optimizer the config
            built.
        resumed: the same after the checkpoint's optimizer state was loaded.
        checkpoint (str): the checkpoint's path.
    """
    changes = []
    for name, groups in configured.items():
        loaded = resumed.get(name, [])
        if len(loaded) != len(groups):
            continue
        prefix = f'{name}.' if name else ''
        keys = dict.fromkeys(k for g in groups for k in g)
        for key in keys:
            differ = [
                (new[key], old[key]) for new, old in zip(groups, loaded)
                if key in new and key in old and not _same(new[key], old[key])
            ]
            if not differ:
                continue
            new, old = differ[0]
            where = ''
            if len(groups) > 1:
                count = (f'all {len(groups)}' if len(differ) == len(groups)
                         else f'{len(differ)} of {len(groups)}')
                first = '' if all(
                    _same(n, new) and _same(o, old)
                    for n, o in differ) else '; the first shown'
                where = f' (in {count} parameter groups{first})'
            changes.append(f'{prefix}{key} {_shown(old)} in the checkpoint, '
                           f'{_shown(new)} in the config{where}')
    if not changes:
        return None
    return (f'resume: the config sets other optimizer values than '
            f'{checkpoint}: {"; ".join(changes)}. The run continues with '
            f'the checkpoint\'s values (the optimizer state and the '
            f'schedule it resumes carry them). To train with the config\'s '
            f'values, start a new run from its weights instead: '
            f'--load-from {checkpoint} (without --resume) and another '
            f'--work-dir.')
