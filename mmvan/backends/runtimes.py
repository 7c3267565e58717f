# Copyright (c) mmvan contributors. All rights reserved.
"""The inference runtimes an exported VAN runs on: ONNX Runtime and OpenVINO,
and the choice among them (:func:`pick_backend`, :func:`check_request`).

Each runtime loads an exported ONNX file (OpenVINO converts it to its own IR
first) and runs a float32 NCHW batch, returning the graph's outputs as numpy
arrays. Both use as many threads as torch does (``torch.get_num_threads()``),
so the three backends are compared on the same cores. A loaded runtime may
be called from several threads at once: ONNX Runtime's sessions are
thread-safe, and :class:`OpenVINORuntime` gives each call requests of its
own.

A missing runtime is a :class:`BackendNotInstalledError` that names the
backend and the pip command.
"""
import collections
import contextlib
import functools
import importlib
import os
import os.path as osp
import statistics
import tempfile
import threading
import time

import numpy as np
import torch

from mmvan.utils.atomic import atomic_write
from mmvan.utils.errors import UserError

PRECISIONS = ('fp32', 'bf16', 'int8')


class BackendNotInstalledError(UserError):
    """The requested inference backend is not installed."""


class BackendUnsupportedError(UserError):
    """The backend cannot run what was asked (a precision, a device)."""


def _threads(threads):
    if threads:
        return int(threads)
    return torch.get_num_threads()


@functools.lru_cache(maxsize=None)
def cpu_flags():
    """The CPU's feature flags (Linux ``/proc/cpuinfo``; empty elsewhere)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    return frozenset(line.split(':', 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16():
    """How this CPU computes bfloat16: ``'amx'`` (AMX tiles, Sapphire
    Rapids and later), ``'avx512_bf16'`` (Cooper Lake, Zen 4 and later) or
    None (no bf16 instructions: runtimes convert to float32 and back, which
    is slower than float32)."""
    flags = cpu_flags()
    if 'amx_bf16' in flags:
        return 'amx'
    if 'avx512_bf16' in flags:
        return 'avx512_bf16'
    return None


class Runtime:
    """A model loaded by one backend's runtime; ``runtime(x)`` runs a float32
    numpy batch and returns the list of outputs."""
    name = None
    pip = None
    module = None
    # What a cached export for this runtime is: '.onnx', or '.xml' (+ '.bin').
    suffix = '.onnx'

    @classmethod
    def installed(cls):
        try:
            cls.import_module()
        except BackendNotInstalledError:
            return False
        return True

    @classmethod
    def import_module(cls):
        try:
            return importlib.import_module(cls.module)
        except ImportError:
            raise BackendNotInstalledError(
                f'backend {cls.name!r} is not installed: pip install '
                f'{cls.pip}') from None

    @classmethod
    def version(cls):
        return cls.import_module().__version__

    @classmethod
    def precisions(cls):
        return ('fp32', )

    @classmethod
    def check_precision(cls, precision):
        if precision not in cls.precisions():
            raise BackendUnsupportedError(
                f'backend {cls.name!r} has no {precision} mode on CPU '
                f'(it offers {", ".join(cls.precisions())}); use '
                f'{_who_offers(precision)}.')

    @classmethod
    def convert(cls, onnx_path, out_path):
        """Write the runtime's own file for ``onnx_path`` (nothing to do for
        runtimes that read ONNX)."""
        raise NotImplementedError

    def __call__(self, x):
        raise NotImplementedError


def _who_offers(precision):
    names = [r.name for r in RUNTIMES.values() if precision in r.precisions()]
    if precision in ('fp32', 'bf16'):
        names.append('pytorch')
    return ' or '.join(f"backend='{n}'" for n in names) or 'fp32'


class OnnxRuntime(Runtime):
    """ONNX Runtime's CPU execution provider with all graph optimisations.
    ``int8`` runs a statically quantised copy of the graph (see
    :func:`mmvan.backends.quantize_int8`)."""
    name = 'onnxruntime'
    pip = 'onnxruntime'
    module = 'onnxruntime'

    @classmethod
    def precisions(cls):
        return ('fp32', 'int8')

    def __init__(self, path, precision='fp32', threads=None):
        ort = self.import_module()
        self.check_precision(precision)
        self.path, self.precision = path, precision
        options = ort.SessionOptions()
        options.intra_op_num_threads = _threads(threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            path, options, providers=['CPUExecutionProvider'])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, x):
        return self.session.run(None, {self.input_name: x})


class RequestPool:
    """Idle infer requests of one OpenVINO compiled model.

    A request holds its input and output buffers, so one request must not
    serve two calls at once (OpenVINO raises "Infer Request is busy", or a
    call reads the outputs of another). A call takes requests for its own
    use (a new one when every request is busy) and gives them back; the
    compiled model runs requests of several threads at once.
    """

    def __init__(self, compiled):
        self.compiled = compiled
        self._idle = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def take(self, count=1):
        with self._lock:
            taken = [
                self._idle.pop() for _ in range(min(count, len(self._idle)))
            ]
            taken += [
                self.compiled.create_infer_request()
                for _ in range(count - len(taken))
            ]
        try:
            yield taken
        finally:
            with self._lock:
                self._idle.extend(taken)


class StreamChoice:
    """Whether a batch shape runs faster split over throughput streams or
    as one request on all threads, measured on this machine.

    At the first call with a shape, :meth:`measure` runs the batch both
    ways, alternately (``warmup`` untimed runs each, then ``trials`` timed
    runs each), and keeps the faster way for that shape. Which way is
    faster changes with what else the machine runs, so the choice is
    checked on: every ``recheck``-th call of the shape runs the other way
    (:meth:`next_way`), and the choice follows the median of the last
    ``window`` times of each way (:meth:`record`). Streams win only when
    they are faster by ``margin``.

    Args:
        warmup (int): Untimed runs of each way first (allocations, the
            first run of a new shape).
        trials (int): Timed runs of each way at the first call.
        margin (float): Share by which streams must be faster.
        recheck (int): Every this many calls of a shape run the other way.
        window (int): Times kept per way and shape.
        max_shapes (int): Shapes remembered (the oldest are measured again
            when seen again).
    """
    WAYS = ('single', 'streams')

    def __init__(self,
                 warmup=1,
                 trials=2,
                 margin=0.03,
                 recheck=32,
                 window=5,
                 max_shapes=64):
        self.warmup, self.trials, self.margin = warmup, trials, margin
        self.recheck, self.window = recheck, window
        self.max_shapes = max_shapes
        # key -> dict(way=..., calls=int, times={way: deque of seconds})
        self.shapes = collections.OrderedDict()
        self._lock = threading.Lock()

    def decide(self, single, streams):
        """``'streams'`` or ``'single'`` from the times (seconds) of each
        way."""
        fast = (1 - self.margin) * statistics.median(single)
        return 'streams' if statistics.median(streams) < fast else 'single'

    def get(self, key):
        """The way chosen for ``key``, or None (not measured yet)."""
        with self._lock:
            state = self.shapes.get(key)
            return state['way'] if state else None

    def next_way(self, key):
        """The way the next call of ``key`` runs: the chosen one, the other
        on every ``recheck``-th call; None when ``key`` was not measured
        yet."""
        with self._lock:
            state = self.shapes.get(key)
            if state is None:
                return None
            state['calls'] += 1
            if self.recheck and state['calls'] % self.recheck == 0:
                return self.WAYS[1 - self.WAYS.index(state['way'])]
            return state['way']

    def record(self, key, way, seconds):
        """Add the time of a call that ran ``way`` alone, and choose
        again."""
        with self._lock:
            state = self.shapes.get(key)
            if state is None:
                return
            state['times'][way].append(seconds)
            state['way'] = self.decide(*(state['times'][w] for w in self.WAYS))

    def measure(self, key, ways, timer=time.perf_counter):
        """Run ``ways['single']()`` and ``ways['streams']()`` alternately,
        choose for ``key`` and return ``(way, output)``: the output of the
        chosen way's last run."""
        times = {
            way: collections.deque(maxlen=self.window)
            for way in self.WAYS
        }
        outs = {}
        for run in range(self.warmup + self.trials):
            for way in self.WAYS:
                start = timer()
                outs[way] = ways[way]()
                if run >= self.warmup:
                    times[way].append(timer() - start)
        way = self.decide(times['single'], times['streams'])
        with self._lock:
            self.shapes[key] = dict(way=way, calls=0, times=times)
            while len(self.shapes) > self.max_shapes:
                self.shapes.popitem(last=False)
        return way, outs[way]


class OpenVINORuntime(Runtime):
    """OpenVINO's CPU plugin with an explicit inference precision (its
    default on a CPU with bf16 instructions is bf16, which is not exact).

    A batch runs as one request on all threads (the latency setting), or
    split over the plugin's throughput streams (on 2 cores: two streams of
    one thread each). Which is faster depends on the model, the batch and
    the CPU and with what else runs on it: with ``streams='auto'``
    (default) the first call of each batch shape with at least two images
    per stream runs both and keeps the faster, and later calls check the
    choice now and then (:class:`StreamChoice`; the first call takes a few
    runs of the batch). Both ways compute each image alone, with the same
    graph. ``streams=False`` always runs one request, ``True`` always
    splits such batches.

    It may be called from several threads at once: each call runs on
    requests of its own (:class:`RequestPool`).
    """
    name = 'openvino'
    pip = 'openvino'
    module = 'openvino'
    suffix = '.xml'

    @classmethod
    def precisions(cls):
        return ('fp32', 'bf16')

    @classmethod
    def convert(cls, onnx_path, out_path):
        """ONNX -> OpenVINO IR (``out_path``: ``.xml``; the ``.bin`` beside
        it), float32 weights kept as they are."""
        ov = cls.import_module()
        model = ov.convert_model(onnx_path)
        with tempfile.TemporaryDirectory(dir=osp.dirname(out_path)) as tmp:
            xml = osp.join(tmp, 'model.xml')
            ov.save_model(model, xml, compress_to_fp16=False)
            # The .bin first: a complete .xml means a complete pair.
            for src, dst in ((xml[:-4] + '.bin', out_path[:-4] + '.bin'),
                             (xml, out_path)):
                with open(src, 'rb') as f:
                    atomic_write(dst, f.read())
        return out_path

    def __init__(self, path, precision='fp32', threads=None, streams='auto'):
        ov = self.import_module()
        self.check_precision(precision)
        if streams not in ('auto', True, False):
            raise UserError(f"streams must be 'auto', True or False, got "
                            f'{streams!r}.')
        self.path, self.precision = path, precision
        self.core = ov.Core()
        self.model = self.core.read_model(path)
        hint = 'f32' if precision == 'fp32' else 'bf16'
        self.config = {
            'INFERENCE_PRECISION_HINT': hint,
            'INFERENCE_NUM_THREADS': _threads(threads),
        }
        self.latency = self.core.compile_model(
            self.model, 'CPU', dict(self.config, PERFORMANCE_HINT='LATENCY'))
        self.single = RequestPool(self.latency)
        self.streams = streams if streams == 'auto' else bool(streams)
        self.choice = StreamChoice()
        self.outputs = len(self.latency.outputs)
        self._throughput = None
        self._lock = threading.Lock()
        self._measuring = threading.Lock()
        self._active = self._started = 0  # calls in flight, calls begun

    @property
    def runs_precision(self):
        """The precision the plugin really uses (bf16 only on CPUs with
        bf16 instructions; it falls back to f32 elsewhere)."""
        hint = self.latency.get_property('INFERENCE_PRECISION_HINT')
        return hint.to_string() if hasattr(hint, 'to_string') else str(hint)

    def _stream_pool(self):
        """``(pool, streams)`` of the throughput-compiled model (compiled
        at the first use)."""
        with self._lock:
            if self._throughput is None:
                compiled = self.core.compile_model(
                    self.model, 'CPU',
                    dict(self.config, PERFORMANCE_HINT='THROUGHPUT'))
                count = int(compiled.get_property('NUM_STREAMS'))
                self._throughput = (RequestPool(compiled), count)
            return self._throughput

    def _outputs(self, request):
        return [
            request.get_output_tensor(i).data.copy()
            for i in range(self.outputs)
        ]

    def run_single(self, x):
        """``x`` as one request on all threads."""
        with self.single.take() as (request, ):
            request.infer({0: x}, share_inputs=True)
            return self._outputs(request)

    def run_streams(self, x):
        """``x`` split over the throughput streams, one part each."""
        pool, count = self._stream_pool()
        parts = np.array_split(x, count)
        with pool.take(count) as requests:
            for request, part in zip(requests, parts):
                request.start_async({0: part}, share_inputs=True)
            for request in requests:
                request.wait()
            outs = [self._outputs(r) for r in requests]
        return [np.concatenate(o) for o in zip(*outs)]

    def __call__(self, x):
        if not self.streams or len(x) < 4:
            return self.run_single(x)
        count = self.stream_count
        if count < 2 or len(x) < 2 * count:
            return self.run_single(x)
        if self.streams is True:
            return self.run_streams(x)
        key = tuple(x.shape)
        way = self.choice.next_way(key)
        if way is None:
            # One measurement at a time: concurrent first calls wait for it
            # instead of disturbing it.
            with self._measuring:
                if self.choice.get(key) is None:
                    return self.choice.measure(
                        key,
                        dict(
                            single=lambda: self.run_single(x),
                            streams=lambda: self.run_streams(x)))[1]
            way = self.choice.next_way(key)
        return self._timed(key, way, x)

    def _timed(self, key, way, x):
        """Run ``x`` the ``way`` given; its time counts for the choice only
        when no other call ran meanwhile."""
        run = self.run_streams if way == 'streams' else self.run_single
        with self._lock:
            self._active += 1
            self._started += 1
            alone, started = self._active == 1, self._started
        start = time.perf_counter()
        try:
            out = run(x)
        finally:
            seconds = time.perf_counter() - start
            with self._lock:
                self._active -= 1
                alone = alone and self._started == started
        if alone:
            self.choice.record(key, way, seconds)
        return out

    @property
    def stream_count(self):
        """The throughput streams a large batch may be split over."""
        return self._stream_pool()[1]


RUNTIMES = {r.name: r for r in (OnnxRuntime, OpenVINORuntime)}
BACKENDS = ('pytorch', ) + tuple(RUNTIMES)


def get_runtime(name):
    """The :class:`Runtime` class of a backend name."""
    if name not in RUNTIMES:
        raise UserError(f'Unknown backend {name!r}; expected one of '
                        f'{", ".join(("auto", ) + BACKENDS)}.')
    return RUNTIMES[name]


def load_runtime(name, path, precision='fp32', threads=None, **kwargs):
    """Load an exported file with a backend's runtime."""
    return get_runtime(name)(
        path, precision=precision, threads=threads, **kwargs)


def installed_backends():
    """The backends usable here (``pytorch`` always)."""
    return ['pytorch'] + [n for n, r in RUNTIMES.items() if r.installed()]


# The order ``backend='auto'`` tries on CPU, fastest first, per precision
# (measured in docs/benchmark.md, "Deployment engines").
AUTO_ORDER = {
    'fp32': ('openvino', 'onnxruntime', 'pytorch'),
    'bf16': ('openvino', 'pytorch'),
    'int8': ('onnxruntime', ),
}


def pick_backend(device='cpu', precision='fp32'):
    """The backend ``'auto'`` resolves to for ``device`` and
    ``precision``: PyTorch on GPUs (the runtimes installed here are CPU
    builds), the fastest installed runtime of :data:`AUTO_ORDER` on CPU.
    ``MMVAN_BACKEND`` overrides it."""
    forced = os.environ.get('MMVAN_BACKEND')
    if forced and forced != 'auto':
        return forced
    if not str(device).startswith('cpu'):
        return 'pytorch'
    if precision not in AUTO_ORDER:
        raise UserError(f'Unknown precision {precision!r}; expected one of '
                        f'{", ".join(PRECISIONS)}.')
    for name in AUTO_ORDER[precision]:
        if name == 'pytorch' or RUNTIMES[name].installed():
            return name
    raise BackendNotInstalledError(
        f'precision {precision!r} needs backend '
        f'{AUTO_ORDER[precision][0]!r}, which is not installed: pip install '
        f'{RUNTIMES[AUTO_ORDER[precision][0]].pip}')


def check_request(backend, precision, device='cpu'):
    """Fail early (before a model is built) on a backend or precision
    that cannot be served: unknown, not installed, not offered."""
    if backend != 'auto' and backend not in BACKENDS:
        raise UserError(f'Unknown backend {backend!r}; expected one of '
                        f'{", ".join(("auto", ) + BACKENDS)}.')
    if precision not in PRECISIONS:
        raise UserError(f'Unknown precision {precision!r}; expected one of '
                        f'{", ".join(PRECISIONS)}.')
    if backend == 'pytorch' and precision == 'int8':
        raise BackendUnsupportedError(
            "backend 'pytorch' has no int8 mode; int8 runs on "
            "backend='onnxruntime'.")
    if backend not in ('auto', 'pytorch'):
        runtime = get_runtime(backend)
        runtime.import_module()
        runtime.check_precision(precision)
