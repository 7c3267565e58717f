# Copyright (c) mmvan contributors. All rights reserved.
"""Fixtures of the kernel tests: CUDA's current device simulated without a
GPU, and a stand-in kernel that records it at each launch."""
import pytest
import torch


@pytest.fixture
def cuda_device_state(monkeypatch):
    """CUDA's current device without a GPU, starting at device 0:
    ``torch.cuda.device`` switches it (through
    ``torch.cuda._exchange_device``) and ``torch.cuda.current_device()``
    reads it, as Triton's launcher does to pick the device and stream a
    kernel runs on."""
    state = dict(current=0)

    def exchange(index):
        previous = state['current']
        if index >= 0:
            state['current'] = index
        return previous

    monkeypatch.setattr(torch.cuda, '_exchange_device', exchange)
    monkeypatch.setattr(torch.cuda, '_maybe_exchange_device', exchange)
    monkeypatch.setattr(torch.cuda, 'current_device', lambda: state['current'])
    return state


class LaunchRecorder:
    """Stands in for a Triton kernel (``kernel[grid](*args, **meta)``):
    ``launches`` lists the current CUDA device at each launch, ``args``
    the arguments."""

    def __init__(self):
        self.launches = []
        self.args = []

    def __getitem__(self, grid):

        def launch(*args, **kwargs):
            self.launches.append(torch.cuda.current_device())
            self.args.append(args)

        return launch


@pytest.fixture
def recording_kernel():
    return LaunchRecorder()
