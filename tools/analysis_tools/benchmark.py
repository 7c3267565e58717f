# Copyright (c) mmvan contributors. All rights reserved.
"""Throughput and peak memory of a config's backbone (or whole classifier),
optionally against mmpretrain's VAN with the same weights in the same run.

    python tools/analysis_tools/benchmark.py \
        configs/van/van-b0_8xb128_in1k.py --batch-size 16 --deploy \
        --channels-last --compile --compare mmpretrain

Throughput is the median of repeated timed runs after warm-up. With
``--compare mmpretrain`` the two models run alternately, so machine noise
affects both alike, and the ratio and the largest output difference are
printed.

``--train`` times training steps as ``tools/train.py`` builds them (the
config's data preprocessor, the runner's optimizer wrapper, the training
fast path; on CUDA the Triton depth-wise kernels) against the same with
PyTorch's depth-wise convolutions, mmpretrain's VAN in its default path
and channels-last, with activation checkpointing, on the same weights and
batches: the table of ``tools/analysis_tools/train_speed.py`` (img/s, peak
memory, loss difference); ``--precisions fp32 amp`` in fp32 and as
``tools/train.py --amp`` trains (bf16 on a GPU with bf16).

    python tools/analysis_tools/benchmark.py \
        configs/van/van-b2_8xb128_in1k.py --train --device cuda \
        --batch-size 32 --precisions fp32 amp

``--compare onnxruntime openvino mmpretrain`` runs every engine on the same
folded weights (exported once to ONNX), alternated in one process, next to
mmvan's default inference path (``init_model(backend='auto')``: the engine
``auto`` picks, run as mmvan runs it) and the folded PyTorch model; it
prints img/s, the latency at batch 1, peak memory, the share of the compute
ceiling (``--ceiling``) and the largest output difference from the model as
trained, as a table (``--plot`` draws it). ``--bf16`` adds mmvan's
``precision='bf16'`` path and OpenVINO's default precision.

    python tools/analysis_tools/benchmark.py \
        configs/van/van-b0_8xb128_in1k.py --batch-size 16 --deploy \
        --channels-last --compare onnxruntime openvino mmpretrain --bf16 \
        --ceiling --plot b0.png
"""
import argparse
import copy
import os
import os.path as osp
import statistics
import sys
import time
import warnings

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
warnings.filterwarnings('ignore')

from mmvan import cli  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('config')
    p.add_argument('--checkpoint', help='weights (default: random init)')
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--shape', type=int, nargs=2, default=[224, 224])
    p.add_argument(
        '--deploy', action='store_true', help='fold BatchNorms/layer scales')
    p.add_argument('--channels-last', action='store_true')
    p.add_argument(
        '--chunk-mib',
        type=float,
        default=8,
        help='with --deploy: slice each batch so a stage\'s largest '
        'activation fits in this many MiB (0: whole batches)')
    p.add_argument(
        '--keep-freed-memory',
        action='store_true',
        help='make glibc malloc reuse freed memory instead of mapping it '
        'afresh (process-wide, so it speeds up both implementations)')
    p.add_argument(
        '--compile',
        action='store_true',
        help='torch.compile (inductor, freezing) the mmvan model')
    p.add_argument(
        '--compare',
        nargs='+',
        choices=['mmpretrain', 'onnxruntime', 'openvino'],
        default=[],
        help='also run these implementations / engines with the same '
        'weights')
    p.add_argument(
        '--bf16',
        action='store_true',
        help='with engines in --compare: also time mmvan\'s '
        'precision=\'bf16\' path and OpenVINO\'s default precision')
    p.add_argument(
        '--latency-repeats',
        type=int,
        default=None,
        help='timed batch-1 runs per engine (default: --repeats)')
    p.add_argument('--plot', help='with engines: draw the table to this file')
    p.add_argument('--json', help='write the results to this file')
    p.add_argument(
        '--compare-channels-last',
        action='store_true',
        help='run the reference model channels-last too')
    p.add_argument(
        '--train',
        action='store_true',
        help='time training steps as tools/train.py builds them, against '
        'mmpretrain and with activation checkpointing (train_speed.py)')
    p.add_argument(
        '--precisions',
        nargs='+',
        choices=['fp32', 'amp'],
        default=['fp32'],
        help='with --train: time each path in these precisions (amp: as '
        'tools/train.py --amp)')
    p.add_argument(
        '--ceiling',
        action='store_true',
        help='also measure this machine\'s fp32 matrix-multiply rate and '
        'report each throughput as a share of the rate it allows')
    p.add_argument('--repeats', type=int, default=7)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--device', default='cuda' if _cuda() else 'cpu')
    p.add_argument('--cfg-options', nargs='+', default=[])
    return p.parse_args(argv)


def _cuda():
    import torch
    return torch.cuda.is_available()


def peak_memory_mb(device):
    import torch
    if device.startswith('cuda'):
        return torch.cuda.max_memory_allocated() / 2**20
    from mmvan.utils.memory import peak_rss_mb
    return peak_rss_mb()


def memory_in_use(device):
    """Memory this process uses now (CUDA: allocated tensors)."""
    import torch
    if device.startswith('cuda'):
        return torch.cuda.memory_allocated() / 2**20
    from mmvan.utils.memory import current_rss_mb
    return current_rss_mb()


def start_memory_window(device):
    """Memory in use now; peaks are measured from here on."""
    import torch
    if device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    else:
        from mmvan.utils.memory import reset_peak_rss
        reset_peak_rss()
    return memory_in_use(device)


def build_backbones(args):
    import torch
    from mmengine.config import DictAction  # noqa: F401

    from mmvan.models import VAN
    cfg = cli.load_config(args.config, _options(args.cfg_options))
    bcfg = dict(cfg.model.backbone)
    bcfg.pop('type')
    bcfg.pop('init_cfg', None)
    bcfg['out_indices'] = (3, )
    bcfg['drop_path_rate'] = 0.0
    cli.sync_bn_to_bn(bcfg)
    torch.manual_seed(0)
    ours = VAN(**bcfg)
    ours.init_weights()
    if args.checkpoint:
        # Any format mmvan converts, its backbone part; one line instead of
        # mmengine's report of every key the backbone leaves out.
        from mmvan.zoo.loader import load_pretrained
        report = load_pretrained(
            ours,
            dict(checkpoint=args.checkpoint, strict=False),
            logger='silent')
        left = [
            f'{len(report[k])} {k}'
            for k in ('missing', 'unexpected', 'mismatched') if report[k]
        ]
        print(f'weights: {report["loaded"]} of {report["total"]} backbone '
              f'tensors from {args.checkpoint} ({report["format"]} format)'
              f'{"; " + ", ".join(left) if left else ""}')
    theirs = None
    if 'mmpretrain' in args.compare:
        if ours.attention != 'lka' or ours.kernel_size != 21:
            raise cli.UserError('--compare mmpretrain: mmpretrain has LKA '
                                'with the released kernel only.')
        from mmpretrain.models.backbones import VAN as MMPretrainVAN

        from mmvan.converters import rename_keys
        theirs = MMPretrainVAN(
            arch=dict(
                embed_dims=ours.embed_dims,
                depths=ours.depths,
                ffn_ratios=ours.mlp_ratios),
            out_indices=(3, ),
            norm_cfg=dict(type='LN', eps=ours.norm1.eps))
        # mmpretrain's keys -> ours is a bijection; load theirs from ours.
        mapping = {}
        renamed, _ = rename_keys(theirs.state_dict(), 'mmpretrain', 'cls')
        for (src, _), dst in zip(theirs.state_dict().items(), renamed):
            mapping[src] = dst[len('backbone.'):]
        sd = ours.state_dict()
        theirs.load_state_dict({k: sd[v] for k, v in mapping.items()})
    return ours, theirs


def backbone_macs(model, shape):
    """Multiply-adds of one image through ``model`` (mmengine's count, which
    calls them FLOPs), taken before any folding."""
    from mmengine.analysis import get_model_complexity_info
    info = get_model_complexity_info(
        model, input_shape=(3, *shape), show_table=False, show_arch=False)
    return info['flops']


def dense_rates(device, repeats=7):
    """Median fp32 multiply-adds per second of the two dense primitives: an
    n x n matrix product and a channels-last 1x1 convolution (the kernel of
    most of VAN's work). The higher one is the ceiling for convolutions."""
    import torch

    def median_time(fn, x):
        times = []
        for i in range(repeats + 2):
            t, _ = time_once(fn, x, device)
            if i >= 2:
                times.append(t)
        return statistics.median(times)

    n = 2048
    a = torch.rand(n, n, device=device)
    b = torch.rand(n, n, device=device)
    rates = {'matmul': n**3 / median_time(lambda x: torch.mm(x, b), a)}
    c, hw, batch = 1024, 14, 16
    conv = torch.nn.Conv2d(c, c, 1).to(device).eval()
    x = torch.rand(batch, c, hw, hw, device=device)
    conv = conv.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        rates['conv1x1'] = batch * hw * hw * c * c / median_time(conv, x)
    return rates


def _options(opts):
    from mmengine.config import DictAction
    if not opts:
        return None
    ns = argparse.Namespace()
    DictAction(option_strings=[], dest='o')(None, ns, opts)
    return ns.o


def make_runner(model, args, optimise):
    import torch
    model = model.to(args.device)
    model.eval()
    if optimise:
        from mmvan.apis.fast import optimize_for_inference
        if args.deploy:
            return optimize_for_inference(
                model,
                channels_last=args.channels_last,
                compile=args.compile,
                chunk_mib=args.chunk_mib)
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if args.compile:
            model = torch.compile(model)
    elif args.compare_channels_last:
        model = model.to(memory_format=torch.channels_last)

    def forward(x):
        with torch.inference_mode():
            return model(x)

    return forward


def _input(args, channels_last):
    import torch
    x = torch.rand(
        args.batch_size,
        3,
        *args.shape,
        generator=torch.Generator().manual_seed(1)).to(args.device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def time_once(fn, x, device):
    import torch
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn(x)
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


ENGINE_LABELS = {
    'mmvan': 'mmvan, folded PyTorch',
    'mmpretrain': 'mmpretrain VAN',
    'onnxruntime': 'ONNX Runtime (fp32)',
    'openvino': 'OpenVINO (f32 hint)',
    'openvino-bf16': 'OpenVINO (bf16: its default on this CPU)',
}


def build_engine_runners(model, args, engines, folder):
    """Runners of the folded ``model`` on each engine of ``engines`` (as a
    user runs it: one session / one request on all threads), and mmvan's
    default path (``backend='auto'``, as mmvan runs it); with ``--bf16``
    also mmvan's ``precision='bf16'`` path and OpenVINO in bf16.

    Returns:
        tuple: ``(runners, labels)``.
    """
    from mmvan.backends import (export_onnx, fold_for_export, get_engine,
                                pick_backend)
    from mmvan.backends.model import EngineRunner, TorchRunner
    for name in engines:
        get_engine(name).import_module()  # one line when it is missing
    if not args.device.startswith('cpu'):
        raise cli.UserError('--compare onnxruntime/openvino: the engines '
                            'installed run on CPU; use --device cpu.')
    folded = fold_for_export(model)
    onnx = osp.join(folder, 'model.onnx')
    export_onnx(folded, _input(args, False)[:1], onnx, ['out'])
    files = {'onnxruntime': onnx}

    def file_for(name):
        if name not in files:
            files[name] = get_engine(name).convert(
                onnx, osp.join(folder, 'model.xml'))
        return files[name]

    def engine(name, precision='fp32', **kwargs):
        cls = get_engine(name)
        return EngineRunner(cls(file_for(name), precision=precision, **kwargs))

    runners, labels = {}, {}
    for name in engines:
        plain = dict(streams=False) if name == 'openvino' else {}
        runners[name] = engine(name, **plain)
        labels[name] = ENGINE_LABELS[name]
    auto = pick_backend('cpu', 'fp32')
    if auto != 'pytorch':
        runners['mmvan-auto'] = engine(auto)
    labels['mmvan-auto'] = f'mmvan default (auto: {auto})'
    if args.bf16:
        auto16 = pick_backend('cpu', 'bf16')
        if auto16 == 'pytorch':
            runners['mmvan-bf16'] = TorchRunner(fold_for_export(model), 'bf16')
        else:
            runners['mmvan-bf16'] = engine(auto16, 'bf16')
        labels['mmvan-bf16'] = f"mmvan precision='bf16' (auto: {auto16})"
        if 'openvino' in engines:
            runners['openvino-bf16'] = engine(
                'openvino', 'bf16', streams=False)
            labels['openvino-bf16'] = ENGINE_LABELS['openvino-bf16']
    return runners, labels


def _last(out):
    return out[-1] if isinstance(out, (tuple, list)) else out


def engine_table(result, labels, names):
    """The comparison as a markdown table."""
    lines = [
        '| engine | img/s | batch-1 latency (ms) | first-batch memory (MiB) | '
        'ceiling share | max rel. difference |',
        '| --- | --- | --- | --- | --- | --- |'
    ]
    for name in names:
        share = result.get(f'{name}_share')
        lines.append(f'| {labels.get(name, name)} | {result[name]:.2f} | '
                     f'{result[f"{name}_latency_ms"]:.1f} | '
                     f'{result[f"{name}_peak_mb"]:.0f} | '
                     f'{"" if share is None else f"{share:.1%}"} | '
                     f'{result[f"{name}_max_rel"]:.2g} |')
    return '\n'.join(lines)


def plot_engines(result, labels, names, path, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.5 * len(names) + 1.8))
    ys = range(len(names))
    text = [labels.get(n, n) for n in names]
    axes[0].barh(ys, [result[n] for n in names], color='tab:blue')
    axes[0].set_xlabel('img/s (higher is better)')
    axes[1].barh(
        ys, [result[f'{n}_latency_ms'] for n in names], color='tab:orange')
    axes[1].set_xlabel('batch-1 latency, ms (lower is better)')
    for ax in axes:
        ax.set_yticks(list(ys))
        ax.set_xlim(left=0)
        ax.invert_yaxis()
    axes[0].set_yticklabels(text)
    axes[1].set_yticklabels([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def train_table(args):
    """``--train``: train_speed.py's comparison of whole training steps."""
    if args.compare or args.deploy or args.compile or args.bf16:
        raise cli.UserError('--train compares training paths (mmvan, '
                            'mmpretrain, with_cp) by itself; drop '
                            '--compare, --deploy, --compile and --bf16.')
    if args.shape != [224, 224] or args.cfg_options:
        raise cli.UserError('--train feeds the config\'s training pipeline; '
                            'set its size in the config, not with --shape '
                            'or --cfg-options.')
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'mmvan_train_speed', osp.join(osp.dirname(__file__), 'train_speed.py'))
    train_speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_speed)
    return train_speed.main([
        args.config, '--batch-size',
        str(args.batch_size), '--iters',
        str(args.repeats), '--warmup',
        str(args.warmup), '--device',
        'cuda' if args.device.startswith('cuda') else 'cpu', '--precisions',
        *args.precisions
    ])


def check_device(device):
    """A ``--device cuda`` without a GPU is an error, not a CPU run."""
    import torch
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise cli.UserError(f'--device {device} needs a CUDA GPU, and this '
                            f'machine has none; use --device cpu.')


def main(argv=None):
    args = parse_args(argv)
    check_device(args.device)
    if args.train:
        return train_table(args)
    if args.precisions != ['fp32']:
        raise cli.UserError('--precisions goes with --train; inference in '
                            'bf16 is --bf16 with --compare engines.')
    import torch

    from mmvan.backends import get_engine
    for name in args.compare:
        if name != 'mmpretrain':
            get_engine(name).import_module()  # one line when it is missing
    malloc = 'default'
    if args.keep_freed_memory:
        from mmvan.utils.memory import keep_freed_memory
        if not keep_freed_memory():
            raise cli.UserError('--keep-freed-memory needs glibc (Linux); '
                                'run without it.')
        malloc = 'keeps freed memory'
    # Everything but the models (Python, the libraries): on CPU the peak
    # minus this counts what CUDA's max_memory_allocated would.
    before_models = memory_in_use(args.device)
    ours, theirs = build_backbones(args)
    params = sum(p.numel() for p in ours.parameters())
    macs = (
        backbone_macs(copy.deepcopy(ours).eval(), args.shape)
        if args.ceiling else None)
    engines = [c for c in args.compare if c != 'mmpretrain']
    if args.bf16 and not engines:
        raise cli.UserError('--bf16 needs engines in --compare (onnxruntime '
                            'or openvino).')
    tmp = None
    if engines:
        import tempfile
        tmp = tempfile.TemporaryDirectory(prefix='mmvan-benchmark-')
        reference = copy.deepcopy(ours).eval()
        engine_runners, labels = build_engine_runners(ours, args, engines,
                                                      tmp.name)
    runners = {'mmvan': make_runner(ours, args, optimise=True)}
    inputs = {'mmvan': _input(args, args.channels_last)}
    if engines:
        labels['mmvan'] = ENGINE_LABELS['mmvan']
        for name, fn in engine_runners.items():
            runners[name] = fn
            inputs[name] = _input(args, False)
        if 'mmvan-auto' not in runners:  # auto is the PyTorch path
            labels['mmvan'] = labels.pop('mmvan-auto')
    if theirs is not None:
        runners['mmpretrain'] = make_runner(theirs, args, optimise=False)
        inputs['mmpretrain'] = _input(args, args.compare_channels_last)
        if engines:
            labels['mmpretrain'] = ENGINE_LABELS['mmpretrain']
    outputs = {}
    first_pass = {}
    if engines:
        # What each engine allocates for its first batch (activations,
        # arenas), above what was in use just before it.
        for name, fn in runners.items():
            base = start_memory_window(args.device)
            _, outputs[name] = time_once(fn, inputs[name], args.device)
            first_pass[name] = peak_memory_mb(args.device) - base
    base_memory = start_memory_window(args.device)
    for name, fn in runners.items():
        for _ in range(args.warmup):
            _, outputs[name] = time_once(fn, inputs[name], args.device)
    times = {name: [] for name in runners}
    for _ in range(args.repeats):
        for name, fn in runners.items():  # alternate the implementations
            t, _ = time_once(fn, inputs[name], args.device)
            times[name].append(t)
    print(f'{args.config}: inference, batch {args.batch_size}, '
          f'{args.shape[0]}x{args.shape[1]}, {args.device}, '
          f'{torch.get_num_threads()} threads, backbone params '
          f'{params / 1e6:.2f} M')
    chunk = f' chunk_mib={args.chunk_mib:g}' if args.deploy else ''
    print(f'  mmvan options: deploy={args.deploy} '
          f'channels_last={args.channels_last} compile={args.compile}'
          f'{chunk}; malloc: {malloc}')
    result = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        result[name] = args.batch_size / med
        print(f'  {name:10s} {result[name]:8.2f} img/s  (median of '
              f'{len(ts)} runs, {med * 1000:.1f} ms per batch)')
    if theirs is not None:
        ratio = result['mmvan'] / result['mmpretrain']
        a = outputs['mmvan'][-1].float()
        b = outputs['mmpretrain'][-1].float()
        diff = (a - b).abs().max().item()
        print(f'  ratio mmvan / mmpretrain: {ratio:.2f}x'
              f' (mmpretrain channels_last={args.compare_channels_last})')
        print(f'  max |output difference|: {diff:.3g}')
        result['ratio'] = ratio
        result['max_diff'] = diff
    if macs:
        rates = dense_rates(args.device)
        rate = max(rates.values())
        ceiling = rate / macs
        print(f'  dense fp32 rate: {rates["matmul"] / 1e9:.0f} G '
              f'multiply-adds/s (2048x2048 matmul), '
              f'{rates["conv1x1"] / 1e9:.0f} G (1x1 convolution); '
              f'compute ceiling {rate / 1e9:.0f} G / {macs / 1e9:.3f} G per '
              f'image = {ceiling:.1f} img/s')
        for name in times:
            share = result[name] / ceiling
            result[f'{name}_share'] = share
            print(f'  {name:10s} reaches {share:6.1%} of the ceiling')
        result['ceiling'] = ceiling
    result['peak_memory_mb'] = peak_memory_mb(args.device)
    result['peak_growth_mb'] = result['peak_memory_mb'] - base_memory
    result['peak_model_mb'] = result['peak_memory_mb'] - before_models
    if engines:
        for name, mb in first_pass.items():
            result[f'{name}_peak_mb'] = mb
        compare_engines(args, runners, inputs, outputs, reference, result,
                        labels)
        tmp.cleanup()
    kind = 'CUDA' if 'cuda' in args.device else 'RSS'
    print(f'  peak memory (process {kind}): {result["peak_memory_mb"]:.0f} '
          f'MiB during the runs; {result["peak_model_mb"]:.0f} MiB above the '
          f'process before the models were built (weights, gradients, '
          f'activations); {result["peak_growth_mb"]:.0f} MiB above what was '
          f'in use just before the runs (activations)')
    if args.json:
        import json

        from mmvan.utils.atomic import atomic_write
        atomic_write(args.json, json.dumps(result, indent=2), mode='w')
    return result


def compare_engines(args, runners, inputs, outputs, reference, result, labels):
    """Batch-1 latency, per-engine peak memory and output differences;
    the table, the targets and the plot."""
    import torch

    from mmvan.backends import native_bf16
    with torch.inference_mode():
        want = _last(reference(inputs['mmvan'].contiguous())).float()
    for name in runners:
        got = _last(outputs[name]).float()
        result[f'{name}_max_rel'] = float(
            (got - want).abs().max() / want.abs().max())
    # Batch-1 latency, alternating.
    ones = {n: x[:1] for n, x in inputs.items()}
    lat = {n: [] for n in runners}
    for _ in range(args.warmup):
        for name, fn in runners.items():
            time_once(fn, ones[name], args.device)
    for _ in range(args.latency_repeats or args.repeats):
        for name, fn in runners.items():
            t, _ = time_once(fn, ones[name], args.device)
            lat[name].append(t)
    for name in runners:
        result[f'{name}_latency_ms'] = statistics.median(lat[name]) * 1000
    names = list(runners)
    print()
    print(engine_table(result, labels, names))
    exact = [n for n in ('onnxruntime', 'openvino') if n in runners]
    default = 'mmvan-auto' if 'mmvan-auto' in runners else 'mmvan'
    if exact:
        best = max(exact, key=lambda n: result[n])
        ratio = result[default] / result[best]
        lat_ratio = (
            result[f'{best}_latency_ms'] / result[f'{default}_latency_ms'])
        result['default_vs_fastest_engine'] = ratio
        result['default_latency_vs_fastest_engine'] = lat_ratio
        result['fastest_engine'] = best
        print(f'  {labels[default]} / fastest exact engine ({best}): '
              f'{ratio:.2f}x img/s (target >= 1.0); batch-1 latency '
              f'{result[f"{default}_latency_ms"]:.1f} vs '
              f'{result[f"{best}_latency_ms"]:.1f} ms ({lat_ratio:.2f}x '
              f'as fast; target >= 1.0)')
    if 'mmvan-bf16' in runners:
        ratio = result['mmvan-bf16'] / result[default]
        result['bf16_vs_fp32_default'] = ratio
        print(f"  precision='bf16' / fp32 default: {ratio:.2f}x (target "
              f'>= 1.5 where the CPU has AMX or AVX512-BF16; this CPU: '
              f'{native_bf16() or "neither (bf16 emulated)"}); max '
              f'relative difference {result["mmvan-bf16_max_rel"]:.2g}')
    if args.plot:
        plot_engines(
            result, labels, names, args.plot,
            f'{osp.basename(args.config)}, batch {args.batch_size}, '
            f'{args.shape[0]}x{args.shape[1]}, '
            f'{torch.get_num_threads()} threads')
        print(f'  plot written to {args.plot}')


if __name__ == '__main__':
    os.environ.setdefault('OMP_NUM_THREADS', str(os.cpu_count()))
    cli.run_cli(main)
