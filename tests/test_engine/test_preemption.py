# Copyright (c) mmvan contributors. All rights reserved.
"""The stop checkpoint: written once, atomically; the random states it
carries survive a safe load."""
import os
import os.path as osp
import random

import numpy as np
import torch
from mmengine.runner.checkpoint import save_checkpoint

from mmvan.engine.hooks.preemption_hook import (PreemptionHook, _random_states,
                                                _set_random_states)
from mmvan.utils.atomic import atomic_backend_args


def _draw():
    return (random.random(), float(np.random.rand()), float(torch.rand(1)),
            float(np.random.randn()))


def test_random_states_round_trip_through_a_weights_only_load(tmp_path):
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    np.random.randn()  # a cached Gaussian is part of numpy's state
    path = tmp_path / 'states.pth'
    torch.save(dict(meta=dict(random_states=[_random_states()])), path)
    expected = _draw()
    _draw()
    states = torch.load(path, weights_only=True)['meta']['random_states']
    _set_random_states(states[0])
    assert _draw() == expected


class _Runner:
    """What PreemptionHook's save reads of a Runner; ``save_checkpoint``
    writes as mmengine's does (through the file backend it is given)."""

    def __init__(self, work_dir):
        self.work_dir = str(work_dir)
        self.calls = []

    def save_checkpoint(self, out_dir, filename, backend_args=None, **kwargs):
        self.calls.append((filename, backend_args))
        save_checkpoint(
            dict(state_dict=dict(w=torch.ones(2)), meta=kwargs['meta']),
            osp.join(out_dir, filename),
            backend_args=backend_args)


def test_the_stop_checkpoint_is_written_once_and_renamed(
        tmp_path, monkeypatch):
    """One write into a temporary file, one rename onto ``iter_7.pth``
    (and one onto ``last_checkpoint``)."""
    runner = _Runner(tmp_path)
    renames = []
    replace = os.replace
    monkeypatch.setattr(
        os, 'replace', lambda src, dst: renames.append(
            (osp.basename(src), osp.basename(dst))) or replace(src, dst))
    PreemptionHook()._write(runner, 'iter_7.pth', dict(iter=7))
    assert runner.calls == [('iter_7.pth', atomic_backend_args())]
    assert [dst for _, dst in renames] == ['iter_7.pth', 'last_checkpoint']
    assert renames[0][0].startswith('.iter_7.pth.') and \
        renames[0][0].count('.tmp') == 1
    assert sorted(os.listdir(tmp_path)) == ['iter_7.pth', 'last_checkpoint']
    assert (tmp_path / 'last_checkpoint').read_text() == 'iter_7.pth'
    assert torch.load(tmp_path / 'iter_7.pth')['meta'] == dict(iter=7)
