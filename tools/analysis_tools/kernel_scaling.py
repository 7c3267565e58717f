# Copyright (c) mmvan contributors. All rights reserved.
"""LKA against LSKA as the kernel grows: parameters, FLOPs, peak memory and
throughput of a whole VAN classifier for k in 7, 11, 23, 35, 41, 53.

    python tools/analysis_tools/kernel_scaling.py --arch b0 --out-file k.png

LKA and LSKA use the same decomposition of k (see
``mmvan.models.layers.LSKA_KERNELS``); LKA's kernels are square, LSKA's are
split into 1xk and kx1. A third series, ``lka-trivial``, is LKA with one
undecomposed k x k depth-wise kernel (the LSKA paper's "LKA-trivial"), whose
cost grows with k squared. Each timing runs in a fresh process so that peak
memory (RSS growth during the timed forward passes) is measured alone.
"""
import argparse
import json
import os.path as osp
import subprocess
import sys
import time
import warnings

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
warnings.filterwarnings('ignore')

KERNELS = (7, 11, 23, 35, 41, 53)
ATTENTIONS = ('lka', 'lska', 'lka-trivial')
LABELS = {'lka': 'LKA', 'lska': 'LSKA', 'lka-trivial': 'LKA k x k'}
STYLES = {'lka': 'o-', 'lska': 's-', 'lka-trivial': '^:'}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--arch', default='b0')
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--shape', type=int, default=224)
    p.add_argument('--kernels', type=int, nargs='+', default=list(KERNELS))
    p.add_argument(
        '--attentions',
        nargs='+',
        choices=ATTENTIONS,
        default=list(ATTENTIONS))
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--out-file', default='kernel_scaling.png')
    p.add_argument('--json', help='also write the table as JSON')
    p.add_argument('--worker', nargs=2, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def build(arch, attention, k):
    import torch.nn as nn

    from mmvan.models import VAN
    from mmvan.models.layers import LKA
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

    class Classifier(nn.Module):

        def __init__(self):
            super().__init__()
            self.backbone, self.head = backbone, head

        def forward(self, x):
            return self.head(self.backbone(x)[-1].mean((2, 3)))

    return Classifier().eval()


def worker(args, attention, k):
    """Throughput and peak-memory growth of one model, in this process."""
    import torch

    from mmvan.utils.memory import current_rss_mb, peak_rss_mb, reset_peak_rss
    model = build(args.arch, attention, int(k))
    x = torch.rand(args.batch_size, 3, args.shape, args.shape)
    with torch.inference_mode():
        reset_peak_rss()
        base = current_rss_mb()
        model(x)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
        peak = peak_rss_mb()
    times.sort()
    print(
        json.dumps(
            dict(
                img_per_s=args.batch_size / times[len(times) // 2],
                peak_mb=peak - base)))


def measure(args):
    from mmengine.analysis import get_model_complexity_info
    rows = []
    for attention in args.attentions:
        for k in args.kernels:
            import torch
            model = build(args.arch, attention, k)
            flops = get_model_complexity_info(
                model,
                inputs=(torch.rand(1, 3, args.shape, args.shape), ),
                show_table=False,
                show_arch=False)['flops']
            params = sum(p.numel() for p in model.parameters())
            out = subprocess.run([
                sys.executable,
                osp.abspath(__file__), '--worker', attention,
                str(k), '--arch', args.arch, '--batch-size',
                str(args.batch_size), '--shape',
                str(args.shape), '--repeats',
                str(args.repeats)
            ],
                                 capture_output=True,
                                 text=True,
                                 check=True)
            timing = json.loads(out.stdout.strip().splitlines()[-1])
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


def growth(rows, attention, key, since=None):
    """Relative growth of ``key`` from the smallest kernel measured (or from
    ``since``, when it was measured) to the largest."""
    sel = [r for r in rows if r['attention'] == attention]
    first = min(sel, key=lambda r: r['k'])
    first = next((r for r in sel if r['k'] == since), first)
    last = max(sel, key=lambda r: r['k'])
    return last[key] / first[key] - 1, first['k'], last['k']


def plot(rows, path, arch):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    keys = [('params_m', 'parameters (M)'), ('gflops', 'GFLOPs'),
            ('peak_mb', 'peak memory growth (MiB)'),
            ('img_per_s', 'throughput (img/s)')]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
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


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        worker(args, *args.worker)
        return None
    rows = measure(args)
    for attention in args.attentions:
        for key in ('params_m', 'gflops'):
            # From the smallest kernel, and from the released one (23).
            for since in sorted({min(args.kernels), 23} & set(args.kernels)):
                g, k0, k1 = growth(rows, attention, key, since)
                print(f'{LABELS[attention]} {key}: {g * 100:+.2f} % from '
                      f'k={k0} to k={k1}')
    plot(rows, args.out_file, args.arch)
    print(f'plot saved to {args.out_file}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == '__main__':
    main()
