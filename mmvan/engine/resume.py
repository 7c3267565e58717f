# Copyright (c) mmvan contributors. All rights reserved.
"""Which checkpoint ``--resume`` (without a path) continues from.

mmengine reads only ``last_checkpoint``; when that file is missing (a crash
while saving, epoch files copied into a fresh folder) it starts from scratch
and overwrites the epoch files. Here every ``epoch_N.pth`` / ``iter_N.pth``
of the work dir is a candidate, newest first, and the first that loads is
taken; the ones skipped are reported with the reason.
"""
import os
import os.path as osp
import re

from mmvan.utils.errors import CheckpointError, UserError

_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


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


def _check(path):
    """Load ``path`` fully; the reason it cannot be resumed from, or None."""
    import torch

    from mmvan.utils.checkpoint import safe_torch_load
    try:
        ckpt = safe_torch_load(path, map_location='cpu')
    except CheckpointError as e:
        return str(e).split('(')[0].strip().rstrip('.')
    if not isinstance(ckpt, dict) or 'state_dict' not in ckpt or \
            'meta' not in ckpt:
        return 'not a training checkpoint (no state_dict / meta)'
    bad = [
        k for k, v in ckpt['state_dict'].items()
        if isinstance(v, torch.Tensor) and v.is_floating_point()
        and not bool(torch.isfinite(v).all())
    ]
    if bad:
        return f'{len(bad)} tensors hold NaN or inf'
    return None


def find_resume_checkpoint(work_dir):
    """The newest checkpoint of ``work_dir`` that loads.

    Returns:
        tuple: ``(path or None, skipped)`` with ``skipped`` a list of
        ``(path, reason)``.

    Raises:
        UserError: when the work dir holds checkpoints and none loads
            (starting from scratch would overwrite them).
    """
    candidates = run_checkpoints(work_dir)
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            named = f.read().strip()
        if named and osp.isfile(named) and named not in candidates:
            candidates.insert(0, named)
    skipped = []
    for path in candidates:
        reason = _check(path)
        if reason is None:
            return path, skipped
        skipped.append((path, reason))
    if skipped:
        listed = '; '.join(f'{osp.basename(p)}: {r}' for p, r in skipped)
        raise UserError(
            f'--resume: no checkpoint in {work_dir} can be resumed from '
            f'({listed}). Move them away to start afresh, or give one with '
            f'--resume PATH.')
    return None, skipped
