# Copyright (c) mmvan contributors. All rights reserved.
"""What the tool tests share: benchmark.py with a timer that reports given
times, so that its throughputs and ratios can be computed by hand."""
import pytest


@pytest.fixture
def benchmark_timed(tool):
    """``benchmark_timed(seconds)``: tools/analysis_tools/benchmark.py (a
    fresh module) whose timer reports ``seconds[name]`` for each call of the
    runner ``name`` ('mmvan', 'mmpretrain' or an engine runner's name). The
    runners still run, so their outputs are real; any other timing (the
    dense rates of ``--ceiling``) is measured."""

    def load(seconds):
        benchmark = tool('benchmark')
        runners = []  # (runner, name); kept alive, compared by identity
        make_runner = benchmark.make_runner
        build_engine_runners = benchmark.build_engine_runners
        time_once = benchmark.time_once

        def named_runner(model, args, optimise):
            fn = make_runner(model, args, optimise)
            runners.append((fn, 'mmvan' if optimise else 'mmpretrain'))
            return fn

        def named_engine_runners(*args, **kwargs):
            built, labels = build_engine_runners(*args, **kwargs)
            runners.extend((fn, name) for name, fn in built.items())
            return built, labels

        def timed(fn, x, device):
            name = next((n for f, n in runners if f is fn), None)
            if name is None:
                return time_once(fn, x, device)
            return seconds[name], fn(x)

        benchmark.make_runner = named_runner
        benchmark.build_engine_runners = named_engine_runners
        benchmark.time_once = timed
        return benchmark

    return load
