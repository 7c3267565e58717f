# Copyright (c) mmvan contributors. All rights reserved.
"""Small helpers the analysis tools share."""
import contextlib
import logging
import os
import os.path as osp
import time
import warnings
from typing import Any, Callable, Tuple

import torch
from mmengine.logging import MMLogger

# What mmseg says whenever a segmentor is built (its loss builder and the
# cross-entropy default); nothing the user of an analysis tool can act on.
_BUILD_NOTES = (r'``build_loss`` would be deprecated soon',
                r'Default ``avg_non_ignore`` is False')


@contextlib.contextmanager
def ignore_build_notes():
    """Without mmseg's notes on building a segmentor (its loss builder and
    the cross-entropy default) for the duration."""
    with warnings.catch_warnings():
        for message in _BUILD_NOTES:
            warnings.filterwarnings(
                'ignore', message=message, category=UserWarning)
        yield


@contextlib.contextmanager
def quiet_mmengine(level=logging.WARNING):
    """Raise mmengine's loggers to ``level`` for the duration (e.g. to skip
    the per-parameter report of ``init_weights``), without mmseg's notes on
    building a segmentor."""
    loggers = [MMLogger.get_current_instance()]
    loggers += list(MMLogger._instance_dict.values())
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    try:
        with ignore_build_notes():
            yield
    finally:
        for lg, old in saved:
            lg.setLevel(old)


def random_init(module, seed=0):
    """``module.init_weights()`` (the model's own random initialisation),
    seeded and without mmengine's report."""
    torch.manual_seed(seed)
    with quiet_mmengine():
        module.init_weights()
    return module


def save_figure(fig, path, dpi):
    """Write a matplotlib ``fig`` to ``path`` (its folder made if
    missing)."""
    folder = osp.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=dpi)


def time_once(fn: Callable, x: Any, device: str) -> Tuple[float, Any]:
    """``(seconds, fn(x))``: one call's wall-clock time, CUDA work
    included (from an idle GPU to the end of the work the call queued: a
    call returns before its kernels finish)."""
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn(x)
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    return time.perf_counter() - start, out
