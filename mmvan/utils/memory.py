# Copyright (c) mmvan contributors. All rights reserved.
"""Memory of this process (resident on CPU, allocated on CUDA), for
benchmarks.

On Linux the peak resident set size (VmHWM) can be reset, so the peak of
one phase (the timed forward passes) is measured alone; elsewhere the peak
since the process started is used.
"""
import ctypes
import ctypes.util
import resource

import torch


def _status_kib(field):
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss():
    """Start a new peak-RSS window; returns False where that is not
    possible."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def current_rss_mb():
    kib = _status_kib('VmRSS')
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024


def peak_rss_mb():
    """Peak RSS since the last :func:`reset_peak_rss` (or process start)."""
    kib = _status_kib('VmHWM')
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024


def memory_in_use_mb(device='cpu'):
    """Memory this process uses now: the resident set on CPU, allocated
    tensors on CUDA."""
    if str(device).startswith('cuda'):
        return torch.cuda.memory_allocated() / 2**20
    return current_rss_mb()


def start_memory_window(device='cpu'):
    """Start measuring a peak on ``device``; returns the memory in use now
    (MiB), to subtract from :func:`peak_memory_mb` afterwards."""
    if str(device).startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    else:
        reset_peak_rss()
    return memory_in_use_mb(device)


def peak_memory_mb(device='cpu'):
    """The peak since :func:`start_memory_window` (CUDA: of allocated
    tensors; CPU: of the resident set), in MiB."""
    if str(device).startswith('cuda'):
        return torch.cuda.max_memory_allocated() / 2**20
    return peak_rss_mb()


# glibc's mallopt parameters.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4


def _mallopt():
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library('c')).mallopt
    except (OSError, AttributeError, TypeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return mallopt


def return_freed_memory():
    """Make glibc's malloc map every block of 64 KiB or more afresh and
    give it back when freed, so that the resident set follows the memory
    the tensors hold and its peak over a step measures the step (slower:
    for memory measurements, not timings). Affects the whole process.

    Returns:
        bool: whether the settings were applied (False without glibc).
    """
    mallopt = _mallopt()
    if mallopt is None:
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, 64 * 1024) == 1
    return ok and mallopt(_M_TRIM_THRESHOLD, 0) == 1


def keep_freed_memory():
    """Make glibc's malloc keep freed memory for reuse by this process.

    By default glibc maps every allocation above a threshold (at most 32 MiB)
    afresh and gives it back to the system when it is freed, so a model
    whose activations are that large page-faults through each of them again
    on every forward pass. This asks malloc to serve everything from its
    heap and never to return memory, as ``GLIBC_TUNABLES=glibc.malloc.
    mmap_max=0:glibc.malloc.trim_threshold=...`` would at start-up. It
    affects the whole process, from now on; the resident memory then stays
    at its peak.

    Returns:
        bool: whether the settings were applied (False without glibc).
    """
    mallopt = _mallopt()
    if mallopt is None:
        return False
    ok = mallopt(_M_MMAP_MAX, 0) == 1
    return ok and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
