# Copyright (c) mmvan contributors. All rights reserved.
"""LKA against LSKA as the kernel grows: parameters, FLOPs, peak memory and
throughput of a whole VAN classifier for each kernel size k.

LKA and LSKA use the same decomposition of k (see
``mmvan.models.layers.LSKA_KERNELS``); LKA's kernels are square, LSKA's are
split into 1xk and kx1. A third series, ``lka-trivial``, is LKA with one
undecomposed k x k depth-wise kernel (the LSKA paper's "LKA-trivial"), whose
cost grows with k squared. Each timing runs in a fresh process so that peak
memory (RSS growth during the timed forward passes) is measured alone.
``tools/analysis_tools/kernel_scaling.py`` prints the rows and draws them.
"""
import json
import multiprocessing
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from matplotlib.figure import Figure
from mmengine.analysis import get_model_complexity_info

from mmvan.models import VAN
from mmvan.models.layers import LKA
from mmvan.utils.memory import current_rss_mb, peak_rss_mb, reset_peak_rss

__all__ = [
    'ATTENTIONS', 'KERNELS', 'LABELS', 'build_classifier', 'growth',
    'kernel_scaling', 'plot_rows', 'print_growth', 'report',
    'time_in_fresh_process'
]

KERNELS = (7, 11, 23, 35, 41, 53)
ATTENTIONS = ('lka', 'lska', 'lka-trivial')
LABELS = {'lka': 'LKA', 'lska': 'LSKA', 'lka-trivial': 'LKA k x k'}
STYLES = {'lka': 'o-', 'lska': 's-', 'lka-trivial': '^:'}


class _Classifier(nn.Module):

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x):
        return self.head(self.backbone(x)[-1].mean((2, 3)))


def build_classifier(arch: str, attention: str, k: int) -> nn.Module:
    """VAN ``arch`` with ``attention`` (``'lka'``, ``'lska'`` or
    ``'lka-trivial'``) at kernel size ``k`` and a 1000-class linear head on
    the pooled last stage, in evaluation mode."""
    if attention == 'lka-trivial':
        backbone = VAN(arch=arch, attention='lka')
        for module in backbone.modules():
            if isinstance(module, LKA):
                c = module.conv1.in_channels
                module.conv0 = nn.Conv2d(c, c, k, padding=k // 2, groups=c)
                module.conv_spatial = nn.Identity()
    else:
        backbone = VAN(arch=arch, attention=attention, kernel_size=k)
    head = nn.Linear(backbone.embed_dims[-1], 1000)
    return _Classifier(backbone, head).eval()


def _time_model(arch, attention, k, batch_size, shape, repeats):
    """Throughput and peak-memory growth of one model, in this process."""
    model = build_classifier(arch, attention, int(k))
    x = torch.rand(batch_size, 3, shape, shape)
    with torch.inference_mode():
        reset_peak_rss()
        base = current_rss_mb()
        model(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
        peak = peak_rss_mb()
    times.sort()
    return dict(
        img_per_s=batch_size / times[len(times) // 2], peak_mb=peak - base)


def time_in_fresh_process(arch: str, attention: str, k: int, batch_size: int,
                          shape: int, repeats: int) -> Dict[str, float]:
    """``img_per_s`` (the median of ``repeats`` timed forward passes) and
    ``peak_mb`` (the resident set's growth during them) of one classifier,
    measured in a new Python process."""
    with multiprocessing.get_context('spawn').Pool(1) as pool:
        return pool.apply(_time_model,
                          (arch, attention, k, batch_size, shape, repeats))


def kernel_scaling(arch: str = 'b0',
                   attentions: Sequence[str] = ATTENTIONS,
                   kernels: Sequence[int] = KERNELS,
                   batch_size: int = 8,
                   shape: int = 224,
                   repeats: int = 5) -> List[dict]:
    """One row per attention and kernel size: ``attention``, ``k``,
    ``params_m`` (millions), ``gflops`` (mmengine's count at ``shape`` x
    ``shape``), ``img_per_s`` and ``peak_mb``; each row is printed as it is
    measured."""
    rows = []
    for attention in attentions:
        for k in kernels:
            model = build_classifier(arch, attention, k)
            flops = get_model_complexity_info(
                model,
                inputs=(torch.rand(1, 3, shape, shape), ),
                show_table=False,
                show_arch=False)['flops']
            params = sum(p.numel() for p in model.parameters())
            timing = time_in_fresh_process(arch, attention, k, batch_size,
                                           shape, repeats)
            rows.append(
                dict(
                    attention=attention,
                    k=k,
                    params_m=params / 1e6,
                    gflops=flops / 1e9,
                    **timing))
            print(
                f'{LABELS[attention]:9s} k={k:2d}  params '
                f'{params / 1e6:6.3f} M  FLOPs {flops / 1e9:6.3f} G  '
                f'{timing["img_per_s"]:7.2f} img/s  peak +'
                f'{timing["peak_mb"]:7.1f} MiB',
                flush=True)
    return rows


def growth(rows: Sequence[dict],
           attention: str,
           key: str,
           since: Optional[int] = None) -> Tuple[float, int, int]:
    """Relative growth of ``key`` from the smallest kernel measured (or from
    ``since``, when it was measured) to the largest.

    Returns:
        tuple: ``(growth, first k, last k)``.
    """
    sel = [r for r in rows if r['attention'] == attention]
    first = min(sel, key=lambda r: r['k'])
    first = next((r for r in sel if r['k'] == since), first)
    last = max(sel, key=lambda r: r['k'])
    return last[key] / first[key] - 1, first['k'], last['k']


def print_growth(rows: Sequence[dict], attentions: Sequence[str],
                 kernels: Sequence[int]) -> None:
    """Each attention's growth of parameters and FLOPs, from the smallest
    kernel and from the released one (23) where it was measured."""
    for attention in attentions:
        for key in ('params_m', 'gflops'):
            for since in sorted({min(kernels), 23} & set(kernels)):
                g, k0, k1 = growth(rows, attention, key, since)
                print(f'{LABELS[attention]} {key}: {g * 100:+.2f} % from '
                      f'k={k0} to k={k1}')


def plot_rows(rows: Sequence[dict], path: str, arch: str) -> None:
    """Parameters, FLOPs, peak memory and throughput against k, one
    series per attention, written to ``path``."""
    keys = [('params_m', 'parameters (M)'), ('gflops', 'GFLOPs'),
            ('peak_mb', 'peak memory growth (MiB)'),
            ('img_per_s', 'throughput (img/s)')]
    fig = Figure(figsize=(16, 3.6))
    axes = fig.subplots(1, 4)
    for ax, (key, label) in zip(axes, keys):
        for attention, style in STYLES.items():
            sel = [r for r in rows if r['attention'] == attention]
            if not sel:
                continue
            ax.plot([r['k'] for r in sel], [r[key] for r in sel],
                    style,
                    label=LABELS[attention])
        ax.set_xlabel('kernel size k')
        ax.set_ylim(bottom=0)
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f'VAN-{arch}: LKA vs LSKA as the kernel grows (CPU)')
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def report(arch: str = 'b0',
           attentions: Sequence[str] = ATTENTIONS,
           kernels: Sequence[int] = KERNELS,
           batch_size: int = 8,
           shape: int = 224,
           repeats: int = 5,
           out_file: str = 'kernel_scaling.png',
           json_file: Optional[str] = None) -> List[dict]:
    """:func:`kernel_scaling`, the growth lines, the plot at ``out_file``
    and, with ``json_file``, the rows as JSON: what
    ``tools/analysis_tools/kernel_scaling.py`` prints and writes."""
    rows = kernel_scaling(arch, attentions, kernels, batch_size, shape,
                          repeats)
    print_growth(rows, attentions, kernels)
    plot_rows(rows, out_file, arch)
    print(f'plot saved to {out_file}')
    if json_file:
        with open(json_file, 'w') as f:
            json.dump(rows, f, indent=1)
    return rows
