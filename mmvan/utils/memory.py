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
