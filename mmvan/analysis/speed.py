# Copyright (c) mmvan contributors. All rights reserved.
"""Inference throughput and peak memory of a config's backbone, optionally
against mmpretrain's VAN and the deployment runtimes with the same weights.

Throughput is the median of repeated timed runs after warm-up. The
implementations run alternately, one call each per round, so machine noise
affects all alike. :func:`benchmark` prints the report of
``tools/analysis_tools/benchmark.py`` and returns its numbers; see
``docs/benchmark.md`` for measured figures.

Every timing goes through a *timer*, ``timer(name, fn, x) -> (seconds,
output)``, which calls ``fn(x)``; ``name`` says what runs (``'mmvan'``,
``'mmpretrain'``, an engine's name, or ``'matmul'`` / ``'conv1x1'`` for the
dense rates of the compute ceiling). The default, :func:`time_once`,
measures wall-clock time (CUDA synchronised); another timer turns the
arithmetic of the report into something that can be checked by hand.

Example:
    >>> from mmvan.analysis.speed import benchmark
    >>> result = benchmark('configs/van/van-b0_8xb128_in1k.py',
    ...                    batch_size=2, shape=(64, 64), deploy=True,
    ...                    compare=['mmpretrain'])  # doctest: +SKIP
    >>> result['ratio']  # mmvan's img/s over mmpretrain's  # doctest: +SKIP
"""
import copy
import json
import os.path as osp
import statistics
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from matplotlib.figure import Figure
from mmengine.analysis import get_model_complexity_info

from mmvan.analysis.common import time_once
from mmvan.apis import optimize_for_inference
from mmvan.backends import (RuntimePredictor, TorchPredictor, export_onnx,
                            fold_for_export, get_runtime, native_bf16,
                            pick_backend)
from mmvan.converters import rename_keys
from mmvan.models import VAN
from mmvan.utils.atomic import atomic_write
from mmvan.utils.config import load_config, sync_bn_to_bn
from mmvan.utils.errors import UserError
from mmvan.utils.memory import (keep_freed_memory, memory_in_use_mb,
                                peak_memory_mb, start_memory_window)
from mmvan.zoo import load_pretrained

__all__ = [
    'ENGINE_LABELS', 'Timer', 'backbone_macs', 'benchmark', 'build_backbones',
    'build_runtime_predictors', 'check_device', 'dense_rates', 'runtime_table',
    'make_predictor', 'plot_runtimes', 'time_once'
]

# ``timer(name, fn, x) -> (seconds, fn(x))``.
Timer = Callable[[str, Callable, torch.Tensor], Tuple[float, Any]]

ENGINE_LABELS = {
    'mmvan': 'mmvan, folded PyTorch',
    'mmpretrain': 'mmpretrain VAN',
    'onnxruntime': 'ONNX Runtime (fp32)',
    'openvino': 'OpenVINO (f32 hint)',
    'openvino-bf16': 'OpenVINO (bf16: its default on this CPU)',
}


def default_device() -> str:
    """``'cuda'`` where there is a GPU, else ``'cpu'``."""
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def check_device(device: str) -> None:
    """A ``--device cuda`` without a GPU is an error, not a CPU run."""
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise UserError(f'--device {device} needs a CUDA GPU, and this '
                        f'machine has none; use --device cpu.')


def _default_timer(device: str) -> Timer:
    return lambda name, fn, x: time_once(fn, x, device)


def build_backbones(config: str,
                    checkpoint: Optional[str] = None,
                    with_mmpretrain: bool = False,
                    cfg_options: Optional[dict] = None
                    ) -> Tuple[VAN, Optional[torch.nn.Module]]:
    """mmvan's backbone of ``config`` (last stage out, no stochastic
    depth, BN for SyncBN), seeded random weights or ``checkpoint``'s
    backbone part in any format mmvan converts; with ``with_mmpretrain``
    also mmpretrain's VAN with the same weights.

    Returns:
        tuple: ``(ours, theirs)``; ``theirs`` is None without
        ``with_mmpretrain``.
    """
    cfg = load_config(config, cfg_options)
    bcfg = dict(cfg.model.backbone)
    bcfg.pop('type')
    bcfg.pop('init_cfg', None)
    bcfg['out_indices'] = (3, )
    bcfg['drop_path_rate'] = 0.0
    sync_bn_to_bn(bcfg)
    torch.manual_seed(0)
    ours = VAN(**bcfg)
    ours.init_weights()
    if checkpoint:
        # Any format mmvan converts, its backbone part; one line instead of
        # mmengine's report of every key the backbone leaves out.
        report = load_pretrained(
            ours, dict(checkpoint=checkpoint, strict=False), logger='silent')
        left = [
            f'{len(report[k])} {k}'
            for k in ('missing', 'unexpected', 'mismatched') if report[k]
        ]
        print(f'weights: {report["loaded"]} of {report["total"]} backbone '
              f'tensors from {checkpoint} ({report["format"]} format)'
              f'{"; " + ", ".join(left) if left else ""}')
    if not with_mmpretrain:
        return ours, None
    if ours.attention != 'lka' or ours.kernel_size != 21:
        raise UserError('--compare mmpretrain: mmpretrain has LKA '
                        'with the released kernel only.')
    from mmpretrain.models.backbones import \
        VAN as MMPretrainVAN  # optional: the mmpretrain comparison
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


def backbone_macs(model: torch.nn.Module, shape: Sequence[int]) -> float:
    """Multiply-adds of one image through ``model`` (mmengine's count, which
    calls them FLOPs), taken before any folding."""
    info = get_model_complexity_info(
        model, input_shape=(3, *shape), show_table=False, show_arch=False)
    return info['flops']


def dense_rates(device: str,
                repeats: int = 7,
                timer: Optional[Timer] = None) -> Dict[str, float]:
    """Median fp32 multiply-adds per second of the two dense primitives: an
    n x n matrix product (``'matmul'``) and a channels-last 1x1 convolution
    (``'conv1x1'``, the kernel of most of VAN's work). The higher one is
    the ceiling for convolutions."""
    timer = timer or _default_timer(device)

    def median_time(name, fn, x):
        times = []
        for i in range(repeats + 2):
            t, _ = timer(name, fn, x)
            if i >= 2:
                times.append(t)
        return statistics.median(times)

    n = 2048
    a = torch.rand(n, n, device=device)
    b = torch.rand(n, n, device=device)
    rates = {
        'matmul': n**3 / median_time('matmul', lambda x: torch.mm(x, b), a)
    }
    c, hw, batch = 1024, 14, 16
    conv = torch.nn.Conv2d(c, c, 1).to(device).eval()
    x = torch.rand(batch, c, hw, hw, device=device)
    conv = conv.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        rates['conv1x1'] = batch * hw * hw * c * c / median_time(
            'conv1x1', conv, x)
    return rates


def make_predictor(model: torch.nn.Module,
                   device: str,
                   optimise: bool = True,
                   deploy: bool = False,
                   channels_last: bool = False,
                   compile: bool = False,
                   chunk_mib: float = 8,
                   reference_channels_last: bool = False) -> Callable:
    """``model`` on ``device`` in evaluation mode as a tensor -> output
    function under inference mode. With ``optimise`` (mmvan's model):
    folded by :func:`~mmvan.apis.optimize_for_inference` with ``deploy``,
    else channels-last and / or ``torch.compile`` as asked; without it (the
    reference): channels-last with ``reference_channels_last``."""
    model = model.to(device)
    model.eval()
    if optimise:
        if deploy:
            return optimize_for_inference(
                model,
                channels_last=channels_last,
                compile=compile,
                chunk_mib=chunk_mib)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        if compile:
            model = torch.compile(model)
    elif reference_channels_last:
        model = model.to(memory_format=torch.channels_last)

    def forward(x):
        with torch.inference_mode():
            return model(x)

    return forward


def _input(batch_size, shape, device, channels_last):
    x = torch.rand(
        batch_size, 3, *shape,
        generator=torch.Generator().manual_seed(1)).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def build_runtime_predictors(model: torch.nn.Module,
                             runtimes: Sequence[str],
                             folder: str,
                             example: torch.Tensor,
                             bf16: bool = False,
                             device: str = 'cpu'
                             ) -> Tuple[Dict[str, Callable], Dict[str, str]]:
    """Predictors of the folded ``model`` on each runtime of ``runtimes`` (as a
    user runs it: one session / one request on all threads), and mmvan's
    default path (``backend='auto'``, as mmvan runs it); with ``bf16``
    also mmvan's ``precision='bf16'`` path and OpenVINO in bf16. The ONNX
    file (exported once, from ``example``'s shape) and its conversions go
    to ``folder``.

    Returns:
        tuple: ``(predictors, labels)``, both by name.
    """
    for name in runtimes:
        get_runtime(name).import_module()  # one line when it is missing
    if not device.startswith('cpu'):
        raise UserError('--compare onnxruntime/openvino: the runtimes '
                        'installed run on CPU; use --device cpu.')
    folded = fold_for_export(model)
    onnx = osp.join(folder, 'model.onnx')
    export_onnx(folded, example, onnx, ['out'])
    files = {'onnxruntime': onnx}

    def file_for(name):
        if name not in files:
            files[name] = get_runtime(name).convert(
                onnx, osp.join(folder, 'model.xml'))
        return files[name]

    def runtime(name, precision='fp32', **kwargs):
        cls = get_runtime(name)
        return RuntimePredictor(
            cls(file_for(name), precision=precision, **kwargs))

    predictors, labels = {}, {}
    for name in runtimes:
        plain = dict(streams=False) if name == 'openvino' else {}
        predictors[name] = runtime(name, **plain)
        labels[name] = ENGINE_LABELS[name]
    auto = pick_backend('cpu', 'fp32')
    if auto != 'pytorch':
        predictors['mmvan-auto'] = runtime(auto)
    labels['mmvan-auto'] = f'mmvan default (auto: {auto})'
    if bf16:
        auto16 = pick_backend('cpu', 'bf16')
        if auto16 == 'pytorch':
            predictors['mmvan-bf16'] = TorchPredictor(
                fold_for_export(model), 'bf16')
        else:
            predictors['mmvan-bf16'] = runtime(auto16, 'bf16')
        labels['mmvan-bf16'] = f"mmvan precision='bf16' (auto: {auto16})"
        if 'openvino' in runtimes:
            predictors['openvino-bf16'] = runtime(
                'openvino', 'bf16', streams=False)
            labels['openvino-bf16'] = ENGINE_LABELS['openvino-bf16']
    return predictors, labels


def _last(out):
    return out[-1] if isinstance(out, (tuple, list)) else out


def runtime_table(result: Dict[str, Any], labels: Dict[str, str],
                  names: Sequence[str]) -> str:
    """The engine comparison as a markdown table."""
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


def plot_runtimes(result: Dict[str, Any], labels: Dict[str, str],
                  names: Sequence[str], path: str, title: str) -> None:
    """Bars of img/s and batch-1 latency per engine, written to ``path``."""
    fig = Figure(figsize=(11, 0.5 * len(names) + 1.8))
    axes = fig.subplots(1, 2)
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


def benchmark(config: str,
              checkpoint: Optional[str] = None,
              batch_size: int = 16,
              shape: Sequence[int] = (224, 224),
              deploy: bool = False,
              channels_last: bool = False,
              chunk_mib: float = 8,
              keep_freed: bool = False,
              compile: bool = False,
              compare: Sequence[str] = (),
              bf16: bool = False,
              latency_repeats: Optional[int] = None,
              plot: Optional[str] = None,
              json_file: Optional[str] = None,
              compare_channels_last: bool = False,
              ceiling: bool = False,
              repeats: int = 7,
              warmup: int = 2,
              device: Optional[str] = None,
              cfg_options: Optional[dict] = None,
              timer: Optional[Timer] = None) -> Dict[str, Union[float, str]]:
    """Time the backbone of ``config`` in inference and print the report.

    Args:
        config: a classifier (or any VAN) config file.
        checkpoint: weights, any format mmvan converts (default: seeded
            random initialisation).
        batch_size, shape: the input batch, ``(H, W)``.
        deploy: fold BatchNorms and layer scales
            (:func:`~mmvan.apis.optimize_for_inference`), with
            ``chunk_mib`` (slice each batch so a stage's largest
            activation fits in this many MiB; 0: whole batches).
        channels_last, compile: mmvan's layout and ``torch.compile``.
        keep_freed: make glibc malloc reuse freed memory (process-wide;
            :func:`~mmvan.utils.memory.keep_freed_memory`).
        compare: also run ``'mmpretrain'`` (same weights) and the runtimes
            ``'onnxruntime'`` / ``'openvino'`` (folded weights exported
            once to ONNX, next to mmvan's default ``backend='auto'`` path);
            runtimes add batch-1 latency, first-batch memory and output
            differences, as a table.
        bf16: with runtimes, also mmvan's ``precision='bf16'`` path and
            OpenVINO's default precision.
        latency_repeats: timed batch-1 runs per engine (default:
            ``repeats``).
        plot: with runtimes, draw the table to this file.
        json_file: write the results to this file (atomically).
        compare_channels_last: run mmpretrain's model channels-last too.
        ceiling: also measure this machine's dense fp32 rate and report
            each throughput as a share of the rate it allows.
        repeats, warmup: timed and untimed rounds.
        device: ``'cpu'`` or ``'cuda'`` (default: a GPU where there is
            one).
        cfg_options: overrides merged into the config.
        timer: see the module's docstring (default: :func:`time_once`).

    Returns:
        dict: img/s by name (``'mmvan'``, ``'mmpretrain'``, runtimes), and
        ``'ratio'``, ``'max_diff'``, ``'ceiling'``, ``'<name>_share'``,
        the peak memories (MiB) and, with runtimes, ``'<name>_latency_ms'``,
        ``'<name>_peak_mb'``, ``'<name>_max_rel'`` and the comparisons of
        the default path.
    """
    device = device or default_device()
    shape = list(shape)
    compare = list(compare)
    timer = timer or _default_timer(device)
    for name in compare:
        if name != 'mmpretrain':
            get_runtime(name).import_module()  # one line when it is missing
    malloc = 'default'
    if keep_freed:
        if not keep_freed_memory():
            raise UserError('--keep-freed-memory needs glibc (Linux); '
                            'run without it.')
        malloc = 'keeps freed memory'
    # Everything but the models (Python, the libraries): on CPU the peak
    # minus this counts what CUDA's max_memory_allocated would.
    before_models = memory_in_use_mb(device)
    ours, theirs = build_backbones(config, checkpoint, 'mmpretrain' in compare,
                                   cfg_options)
    params = sum(p.numel() for p in ours.parameters())
    macs = (
        backbone_macs(copy.deepcopy(ours).eval(), shape) if ceiling else None)
    runtimes = [c for c in compare if c != 'mmpretrain']
    if bf16 and not runtimes:
        raise UserError('--bf16 needs runtimes in --compare (onnxruntime '
                        'or openvino).')
    tmp = None
    if runtimes:
        tmp = tempfile.TemporaryDirectory(prefix='mmvan-benchmark-')
        reference = copy.deepcopy(ours).eval()
        runtime_predictors, labels = build_runtime_predictors(
            ours, runtimes, tmp.name,
            _input(batch_size, shape, device, False)[:1], bf16, device)
    predictors = {
        'mmvan':
        make_predictor(ours, device, True, deploy, channels_last, compile,
                       chunk_mib)
    }
    inputs = {'mmvan': _input(batch_size, shape, device, channels_last)}
    if runtimes:
        labels['mmvan'] = ENGINE_LABELS['mmvan']
        for name, fn in runtime_predictors.items():
            predictors[name] = fn
            inputs[name] = _input(batch_size, shape, device, False)
        if 'mmvan-auto' not in predictors:  # auto is the PyTorch path
            labels['mmvan'] = labels.pop('mmvan-auto')
    if theirs is not None:
        predictors['mmpretrain'] = make_predictor(
            theirs,
            device,
            optimise=False,
            reference_channels_last=compare_channels_last)
        inputs['mmpretrain'] = _input(batch_size, shape, device,
                                      compare_channels_last)
        if runtimes:
            labels['mmpretrain'] = ENGINE_LABELS['mmpretrain']
    outputs = {}
    first_pass = {}
    if runtimes:
        # What each engine allocates for its first batch (activations,
        # arenas), above what was in use just before it.
        for name, fn in predictors.items():
            base = start_memory_window(device)
            _, outputs[name] = timer(name, fn, inputs[name])
            first_pass[name] = peak_memory_mb(device) - base
    base_memory = start_memory_window(device)
    for name, fn in predictors.items():
        for _ in range(warmup):
            _, outputs[name] = timer(name, fn, inputs[name])
    times = {name: [] for name in predictors}
    for _ in range(repeats):
        for name, fn in predictors.items():  # alternate the implementations
            t, _ = timer(name, fn, inputs[name])
            times[name].append(t)
    print(f'{config}: inference, batch {batch_size}, '
          f'{shape[0]}x{shape[1]}, {device}, '
          f'{torch.get_num_threads()} threads, backbone params '
          f'{params / 1e6:.2f} M')
    chunk = f' chunk_mib={chunk_mib:g}' if deploy else ''
    print(f'  mmvan options: deploy={deploy} '
          f'channels_last={channels_last} compile={compile}'
          f'{chunk}; malloc: {malloc}')
    result = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        result[name] = batch_size / med
        print(f'  {name:10s} {result[name]:8.2f} img/s  (median of '
              f'{len(ts)} runs, {med * 1000:.1f} ms per batch)')
    if theirs is not None:
        ratio = result['mmvan'] / result['mmpretrain']
        a = outputs['mmvan'][-1].float()
        b = outputs['mmpretrain'][-1].float()
        diff = (a - b).abs().max().item()
        print(f'  ratio mmvan / mmpretrain: {ratio:.2f}x'
              f' (mmpretrain channels_last={compare_channels_last})')
        print(f'  max |output difference|: {diff:.3g}')
        result['ratio'] = ratio
        result['max_diff'] = diff
    if macs:
        rates = dense_rates(device, timer=timer)
        rate = max(rates.values())
        top = rate / macs
        print(f'  dense fp32 rate: {rates["matmul"] / 1e9:.0f} G '
              f'multiply-adds/s (2048x2048 matmul), '
              f'{rates["conv1x1"] / 1e9:.0f} G (1x1 convolution); '
              f'compute ceiling {rate / 1e9:.0f} G / {macs / 1e9:.3f} G per '
              f'image = {top:.1f} img/s')
        for name in times:
            share = result[name] / top
            result[f'{name}_share'] = share
            print(f'  {name:10s} reaches {share:6.1%} of the ceiling')
        result['ceiling'] = top
    result['peak_memory_mb'] = peak_memory_mb(device)
    result['peak_growth_mb'] = result['peak_memory_mb'] - base_memory
    result['peak_model_mb'] = result['peak_memory_mb'] - before_models
    if runtimes:
        for name, mb in first_pass.items():
            result[f'{name}_peak_mb'] = mb
        _compare_runtimes(predictors, inputs, outputs, reference, result,
                          labels, timer, warmup, latency_repeats or repeats)
        if plot:
            plot_runtimes(
                result, labels, list(predictors), plot,
                f'{osp.basename(config)}, batch {batch_size}, '
                f'{shape[0]}x{shape[1]}, '
                f'{torch.get_num_threads()} threads')
            print(f'  plot written to {plot}')
        tmp.cleanup()
    kind = 'CUDA' if 'cuda' in device else 'RSS'
    print(f'  peak memory (process {kind}): {result["peak_memory_mb"]:.0f} '
          f'MiB during the runs; {result["peak_model_mb"]:.0f} MiB above the '
          f'process before the models were built (weights, gradients, '
          f'activations); {result["peak_growth_mb"]:.0f} MiB above what was '
          f'in use just before the runs (activations)')
    if json_file:
        atomic_write(json_file, json.dumps(result, indent=2), mode='w')
    return result


def _compare_runtimes(predictors, inputs, outputs, reference, result, labels,
                      timer, warmup, repeats):
    """Batch-1 latency, output differences and the default path against
    the runtimes: into ``result``, and printed with the table."""
    with torch.inference_mode():
        want = _last(reference(inputs['mmvan'].contiguous())).float()
    for name in predictors:
        got = _last(outputs[name]).float()
        result[f'{name}_max_rel'] = float(
            (got - want).abs().max() / want.abs().max())
    # Batch-1 latency, alternating.
    ones = {n: x[:1] for n, x in inputs.items()}
    lat: Dict[str, List[float]] = {n: [] for n in predictors}
    for _ in range(warmup):
        for name, fn in predictors.items():
            timer(name, fn, ones[name])
    for _ in range(repeats):
        for name, fn in predictors.items():
            t, _ = timer(name, fn, ones[name])
            lat[name].append(t)
    for name in predictors:
        result[f'{name}_latency_ms'] = statistics.median(lat[name]) * 1000
    print()
    print(runtime_table(result, labels, list(predictors)))
    exact = [n for n in ('onnxruntime', 'openvino') if n in predictors]
    default = 'mmvan-auto' if 'mmvan-auto' in predictors else 'mmvan'
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
    if 'mmvan-bf16' in predictors:
        ratio = result['mmvan-bf16'] / result[default]
        result['bf16_vs_fp32_default'] = ratio
        print(f"  precision='bf16' / fp32 default: {ratio:.2f}x (target "
              f'>= 1.5 where the CPU has AMX or AVX512-BF16; this CPU: '
              f'{native_bf16() or "neither (bf16 emulated)"}); max '
              f'relative difference {result["mmvan-bf16_max_rel"]:.2g}')
