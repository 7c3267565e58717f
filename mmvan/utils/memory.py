# Copyright (c) mmvan contributors. All rights reserved.
"""Resident memory of this process on CPU, for benchmarks.

On Linux the peak resident set size (VmHWM) can be reset, so the peak of
one phase (the timed forward passes) is measured alone; elsewhere the peak
since the process started is used.
"""
import resource


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


# glibc's mallopt parameters.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


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
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library('c')
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(_M_MMAP_MAX, 0) == 1
    return ok and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
