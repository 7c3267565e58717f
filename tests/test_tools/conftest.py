# Copyright (c) mmvan contributors. All rights reserved.
"""What the tool tests share: a repository script run as a user runs it,
a two-process ``tools/dist_train.sh`` launch, and benchmark.py with a timer
that reports given times, so that its throughputs and ratios can be
computed by hand."""
import functools
import os
import subprocess
import sys

import pytest

from mmvan.analysis import speed


def _run(root, args, env, timeout, check):
    full_env = dict(os.environ, **(env or {}))
    # A variable given as None is unset.
    full_env = {k: v for k, v in full_env.items() if v is not None}
    # Two-core machines: one thread per process.
    full_env.setdefault('OMP_NUM_THREADS', '1')
    out = subprocess.run(
        args,
        cwd=root,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout)
    if check:
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


@pytest.fixture(scope='session')
def run_tool(root):
    """``run_tool(args, env=None, timeout=600, check=True)``: a Python
    script of the repository run with ``args`` (the script first), ``env``
    added to the environment (a ``None`` value unsets a variable); with
    ``check``, it must succeed."""

    def run(args, env=None, timeout=600, check=True):
        return _run(root, [sys.executable, *args], env, timeout, check)

    return run


@pytest.fixture
def dist_train(root, free_port):
    """``dist_train(config, *args, env=None, timeout=600, check=True)``:
    ``tools/dist_train.sh config 2 *args``, two CPU processes on a free
    port; with ``check``, it must succeed."""

    def run(config, *args, env=None, timeout=600, check=True):
        env = dict(env or {}, PYTHON=sys.executable, PORT=str(free_port))
        return _run(root, ['bash', 'tools/dist_train.sh', config, '2', *args],
                    env, timeout, check)

    return run


@pytest.fixture
def benchmark_timed(tool, monkeypatch):
    """``benchmark_timed(seconds)``: tools/analysis_tools/benchmark.py (a
    fresh module) whose timer reports ``seconds[name]`` for each call of
    ``name`` ('mmvan', 'mmpretrain', an engine runner's name, or 'matmul'
    and 'conv1x1' for the dense rates of ``--ceiling``). The runners still
    run, so their outputs are real; anything not named is measured."""
    seconds_by_name = {}

    def timer(name, fn, x):
        if name in seconds_by_name:
            return seconds_by_name[name], fn(x)
        return speed.time_once(fn, x, 'cpu')

    def load(seconds):
        seconds_by_name.clear()
        seconds_by_name.update(seconds)
        monkeypatch.setattr(speed, 'benchmark',
                            functools.partial(speed.benchmark, timer=timer))
        return tool('benchmark')

    return load
