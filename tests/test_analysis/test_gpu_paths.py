# Copyright (c) mmvan contributors. All rights reserved.
"""The CUDA branches of the GPU measurements (train_speed.py's train steps,
kernel_bandwidth.py), run on CPU tensors under a simulated GPU: torch
reports one CUDA device, every tensor and module sent to it stays on the
CPU, and the GPU's work is asynchronous (it is done, and the clock has
moved on by its duration, only at a synchronisation point)."""
import time
import types
import warnings

import mmengine.runner.runner
import pytest
import torch

from mmvan.analysis import common
from mmvan.analysis import kernel_bandwidth as kb
from mmvan.analysis import train_speed
from mmvan.ops import KernelFallbackWarning


class SimulatedGPU:
    """A clock for ``time.perf_counter`` and a queue of GPU work: a step
    queues ``cost`` seconds; ``torch.cuda.synchronize`` and a copy to the
    GPU (a pageable host-to-device copy waits for the stream) wait for the
    queue."""

    def __init__(self):
        self.now = 0.0
        self.queued = 0.0

    def perf_counter(self):
        return self.now

    def synchronize(self, device=None):
        self.now += self.queued
        self.queued = 0.0


def _cpu(device):
    is_cuda = (isinstance(device, str) and device.startswith('cuda')) or (
        isinstance(device, torch.device) and device.type == 'cuda')
    return 'cpu' if is_cuda else device


def _on_cpu(factory):

    def make(*args, device=None, **kwargs):
        return factory(*args, device=_cpu(device), **kwargs)

    return make


class Event:
    """``torch.cuda.Event``: the time it is recorded at (wall clock)."""

    def __init__(self, enable_timing=False):
        self.enable_timing = enable_timing
        self.at = None

    def record(self, stream=None):
        self.at = time.perf_counter()

    def synchronize(self):
        assert self.at is not None, 'synchronize() before record()'

    def elapsed_time(self, end):
        assert self.enable_timing and end.enable_timing
        return (end.at - self.at) * 1e3


@pytest.fixture
def simulated_gpu(monkeypatch):
    gpu = SimulatedGPU()
    generator = torch.Generator
    monkeypatch.delenv('CUDA_VISIBLE_DEVICES', raising=False)
    cuda = torch.cuda
    for name, value in dict(
            is_available=lambda: True,
            device_count=lambda: 1,
            is_bf16_supported=lambda *a, **k: True,
            get_device_name=lambda device=None: 'NVIDIA H100 80GB HBM3',
            synchronize=gpu.synchronize,
            memory_allocated=lambda device=None: 100 * 2**20,
            max_memory_allocated=lambda device=None: 300 * 2**20,
            reset_peak_memory_stats=lambda device=None: None).items():
        monkeypatch.setattr(cuda, name, value)
    # The optimizers' check for CUDA graph capture.
    monkeypatch.setattr(
        torch.accelerator,
        'current_stream',
        lambda device=None: types.SimpleNamespace(is_capturing=lambda: False))
    tensor_to, module_to = torch.Tensor.to, torch.nn.Module.to

    def to_tensor(self, *args, **kwargs):
        if any(_cpu(a) is not a for a in args + tuple(kwargs.values())):
            gpu.synchronize()
        args = tuple(_cpu(a) for a in args)
        kwargs = {k: _cpu(v) for k, v in kwargs.items()}
        return tensor_to(self, *args, **kwargs)

    def to_module(self, *args, **kwargs):
        return module_to(self, *(_cpu(a) for a in args), **{
            k: _cpu(v)
            for k, v in kwargs.items()
        })

    monkeypatch.setattr(torch.Tensor, 'to', to_tensor)
    for name in ('randn', 'empty'):
        monkeypatch.setattr(torch, name, _on_cpu(getattr(torch, name)))
    monkeypatch.setattr(
        torch,
        'Generator',
        lambda device='cpu': generator(device=_cpu(device)))
    monkeypatch.setattr(cuda, 'Event', Event)
    # mmengine decides its device when it is imported.
    monkeypatch.setattr(mmengine.runner.runner, 'get_device', lambda: 'cuda')
    monkeypatch.setattr(torch.nn.Module, 'to', to_module)
    return gpu


def test_train_steps_are_timed_to_the_end_of_their_gpu_work(
        simulated_gpu, tiny, monkeypatch):
    """Each contender's rate is the time of its own GPU work: mmpretrain's
    steps queue three times mmvan's, so mmvan runs at 3x, whatever the
    order in which the alternating steps leave their work behind."""
    monkeypatch.setattr(
        common, 'time',
        types.SimpleNamespace(perf_counter=simulated_gpu.perf_counter))
    from_cfg = train_speed.Runner.from_cfg

    def build(cfg):
        runner = from_cfg(cfg)
        cost = 3.0 if 'mmpretrain' in cfg.model.backbone.type else 1.0
        step = runner.model.train_step

        def train_step(*args, **kwargs):
            out = step(*args, **kwargs)
            simulated_gpu.queued += cost
            return out

        runner.model.train_step = train_step
        return runner

    monkeypatch.setattr(train_speed.Runner, 'from_cfg', build)
    result = train_speed.measure_train_steps(
        tiny(),
        batch_size=2,
        iters=2,
        warmup=1,
        contenders=['mmvan', 'mmpretrain'],
        device='cuda')
    assert result['rate'] == {'mmvan': 2.0, 'mmpretrain': 2 / 3}
    # The CUDA allocator's peak above what was allocated before the step.
    assert result['peak_mb'] == {'mmvan': 200.0, 'mmpretrain': 200.0}


@pytest.mark.slow
def test_kernel_bandwidth_report(simulated_gpu, monkeypatch, capsys):
    """Every pass of every convolution runs, Triton's kernels (in Triton's
    interpreter) and PyTorch's, in both dtypes, into one table row each."""
    monkeypatch.setenv('TRITON_INTERPRET', '1')
    # One small stage: 4 channels (MLP: 8) of 6 x 6.
    monkeypatch.setattr(kb.depthwise_cases, '__defaults__',
                        (((1, 4, 8, 6), ), ))
    with warnings.catch_warnings():
        warnings.simplefilter('error', KernelFallbackWarning)
        result = kb.report(batch_size=1, repeats=1)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith('GPU: NVIDIA H100 80GB HBM3; torch ')
    assert out[1].startswith('peak memory bandwidth: 3350 GB/s (table)')
    assert result['peak'] == 3350e9
    # 7 convolutions x 3 passes and the fused op's 2, in 2 dtypes.
    rows = out[4:]
    assert len(rows) == (7 * 3 + 2) * 2
    assert len(result['rows']) == 2 * len(rows)
    for row in rows:
        cells = [c.strip() for c in row.strip('|').split('|')]
        assert len(cells) == 11 and '-' not in cells, row
