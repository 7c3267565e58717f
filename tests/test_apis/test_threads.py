# Copyright (c) mmvan contributors. All rights reserved.
"""One model served from several threads: every backend returns, for each
call, exactly what the same call returns alone (real threads, a tiny
classifier exported once per backend); OpenVINO's choice between one
request and throughput streams."""
import threading

import numpy as np
import pytest
import torch

from mmvan.apis import inference_model, init_model
from mmvan.backends import OpenVINORuntime
from mmvan.backends.runtimes import StreamChoice

THREADS, CALLS = 4, 8


@pytest.fixture(scope='module')
def checkpoint(tiny, tmp_path_factory):
    config = tiny(base='van-b0_demo.py')
    torch.manual_seed(0)
    model = init_model(config, deploy=False)
    model.init_weights()
    path = tmp_path_factory.mktemp('threads') / 'tiny.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, str(path))
    return config, str(path)


@pytest.fixture(scope='module')
def models(checkpoint):
    """The tiny classifier on each backend (exported once each)."""
    config, path = checkpoint
    return {
        backend: init_model(config, path, backend=backend)
        for backend in ('pytorch', 'onnxruntime', 'openvino')
    }


@pytest.fixture(scope='module')
def images():
    """Distinct images (noise of several sizes): a call that returned
    another call's scores cannot go unnoticed."""
    rng = np.random.default_rng(0)
    return [
        rng.integers(0, 256, (60 + 7 * i, 80 - 3 * i, 3), dtype=np.uint8)
        for i in range(8)
    ]


def run_threads(work, count=THREADS):
    """``work(thread)`` in ``count`` threads started together; the
    exceptions they raised."""
    barrier = threading.Barrier(count)
    errors = []

    def target(thread):
        try:
            barrier.wait()
            work(thread)
        except Exception as e:  # noqa: B902 - collected for the assert
            errors.append(e)

    threads = [
        threading.Thread(target=target, args=(t, )) for t in range(count)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.mark.parametrize('backend', ['pytorch', 'onnxruntime', 'openvino'])
def test_one_model_many_threads_equals_serial(backend, models, images):
    model = models[backend]
    assert model.backend == backend
    serial = [inference_model(model, img).pred_score for img in images]
    assert len({tuple(s.tolist()) for s in serial}) == len(images)
    got = []  # (image index, scores), appended by every thread

    def work(thread):
        for call in range(CALLS):
            index = (thread * 3 + call) % len(images)
            got.append((index, inference_model(model,
                                               images[index]).pred_score))

    errors = run_threads(work)
    assert not errors, errors[:3]
    assert len(got) == THREADS * CALLS
    wrong = [i for i, scores in got if not torch.equal(scores, serial[i])]
    assert not wrong, f'{len(wrong)} calls got other scores'


@pytest.mark.parametrize('streams', [False, True, 'auto'])
def test_openvino_runtime_batches_from_threads(streams, models):
    """Whole batches, split over throughput streams or not: each call gets
    its own batch's outputs."""
    path = models['openvino'].backend_report['file']
    runtime = OpenVINORuntime(path, threads=2, streams=streams)
    assert runtime.stream_count >= 2  # two streams of one thread
    rng = np.random.default_rng(1)
    batches = [
        rng.standard_normal((8, 3, 64, 64)).astype(np.float32)
        for _ in range(6)
    ]
    serial = [runtime(b)[0] for b in batches]
    got = []

    def work(thread):
        for call in range(6):
            index = (thread + call) % len(batches)
            got.append((index, runtime(batches[index])[0]))

    errors = run_threads(work)
    assert not errors, errors[:3]
    assert len(got) == THREADS * 6
    wrong = [i for i, out in got if not np.array_equal(out, serial[i])]
    assert not wrong, f'{len(wrong)} calls got other outputs'


class FakeClock:
    """A timer whose time advances only by what the ways say they take."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_stream_choice_measures_alternately_and_keeps_the_faster():
    clock = FakeClock()
    order = []

    def way(name, seconds):

        def run():
            order.append(name)
            clock.now += seconds.pop(0)
            return name

        return run

    choice = StreamChoice(warmup=1, trials=2, margin=0.03)
    key = (8, 3, 64, 64)
    # Warm-up runs (9 s each) do not count; streams take 0.95 s on average
    # (the median of two), the single request 1.1 s: streams.
    single = way('single', [9.0, 1.0, 1.2])
    streams = way('streams', [9.0, 0.9, 1.0])
    assert choice.measure(
        key, dict(single=single, streams=streams),
        timer=clock) == ('streams', 'streams')
    assert order == ['single', 'streams'] * 3
    assert choice.get(key) == 'streams'
    assert choice.get((16, 3, 64, 64)) is None
    # Faster by less than the margin (0.98 s against 1.0 s): one request.
    single = way('single', [1.0, 1.0, 1.0])
    streams = way('streams', [1.0, 0.98, 0.98])
    assert choice.measure((4, 3, 64, 64),
                          dict(single=single, streams=streams),
                          timer=clock)[0] == 'single'


def test_stream_choice_follows_later_times():
    choice = StreamChoice(warmup=0, trials=1, recheck=4, window=3)
    key = (8, 3, 64, 64)
    clock = FakeClock()

    def taking(seconds):

        def run():
            clock.now += seconds
            return seconds

        return run

    assert choice.next_way(key) is None  # not measured yet
    choice.measure(
        key, dict(single=taking(1.0), streams=taking(1.5)), timer=clock)
    # Every 4th call tries the other way.
    assert [choice.next_way(key) for _ in range(8)] == [
        'single', 'single', 'single', 'streams', 'single', 'single', 'single',
        'streams'
    ]
    # The machine got busier: streams now take 0.8 s, one request 1.0 s.
    # The median of streams' last three times (1.5, 0.8, 0.8) is 0.8 s.
    choice.record(key, 'streams', 0.8)
    assert choice.get(key) == 'single'
    choice.record(key, 'streams', 0.8)
    assert choice.get(key) == 'streams'
    assert choice.next_way(key) == 'streams'
    # And back: one request at 0.5 s (median of 1.0, 0.5, 0.5).
    choice.record(key, 'single', 0.5)
    choice.record(key, 'single', 0.5)
    assert choice.get(key) == 'single'


def test_openvino_auto_measures_once_per_shape(models, monkeypatch):
    path = models['openvino'].backend_report['file']
    runtime = OpenVINORuntime(path, threads=2)  # streams='auto'
    assert runtime.stream_count >= 2  # two streams of one thread
    calls = []
    for name in ('run_single', 'run_streams'):
        real = getattr(runtime, name)

        def counted(x, real=real, name=name):
            calls.append((name, len(x)))
            return real(x)

        monkeypatch.setattr(runtime, name, counted)
    x = np.random.default_rng(2).standard_normal(
        (8, 3, 64, 64)).astype(np.float32)
    first = runtime(x)[0]
    # warm-up + 2 timed runs of each way, alternately.
    assert [c[0] for c in calls] == ['run_single', 'run_streams'] * 3
    way = runtime.choice.get((8, 3, 64, 64))
    assert way in ('single', 'streams')
    # The times of the next calls could move the choice with the machine's
    # load (how the times decide is tested with a fake clock); here only
    # that each call runs the chosen way once counts.
    monkeypatch.setattr(runtime.choice, 'record', lambda *args: None)
    calls.clear()
    for _ in range(3):
        assert np.array_equal(runtime(x)[0], first)
    assert calls == [(f'run_{way}', 8)] * 3
    # Too small a batch to split: one request, nothing measured.
    calls.clear()
    runtime(x[:2])
    assert calls == [('run_single', 2)]
    assert runtime.choice.get((2, 3, 64, 64)) is None
    # Fixed choices measure nothing.
    for streams, way in ((False, 'run_single'), (True, 'run_streams')):
        fixed = OpenVINORuntime(path, threads=2, streams=streams)
        monkeypatch.setattr(
            fixed, way, lambda x, way=way: calls.append((way, len(x))))
        calls.clear()
        fixed(x)
        assert calls == [(way, 8)]
