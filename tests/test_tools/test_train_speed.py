# Copyright (c) mmvan contributors. All rights reserved.
"""tools/analysis_tools/train_speed.py: the training paths it compares are
the same computation, and it measures their memory."""
import pytest


def test_paths_compute_the_same_loss_and_with_cp_saves_memory(
        tiny, tool, capsys):
    train_speed = tool('train_speed')
    result = train_speed.main([
        tiny('lka', base='van-b0_demo.py'), '--batch-size', '4', '--iters',
        '1', '--warmup', '0', '--contenders', 'mmvan', 'mmvan-cp', 'mmpretrain'
    ])
    out = capsys.readouterr().out
    names = ('mmvan', 'mmvan-cp', 'mmpretrain')
    assert set(result['rate']) == set(names)
    # Same weights and batch (no stochastic depth in the demo config):
    # mmpretrain's VAN computes mmvan's loss.
    loss = result['loss']['mmvan']
    for name in names:
        assert result['loss'][name] == pytest.approx(loss, rel=1e-5), name
        assert result['rate'][name] > 0
        assert name in out
    # Activation checkpointing keeps less at the step's peak.
    peak = result['peak_mb']
    assert 0 < peak['mmvan-cp'] < peak['mmvan']
    assert 'with_cp:' in out
