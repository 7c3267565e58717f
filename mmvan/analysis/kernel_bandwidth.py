# Copyright (c) mmvan contributors. All rights reserved.
"""How close VAN's depth-wise kernels come to the GPU's memory bandwidth.

A depth-wise convolution does a handful of multiply-adds per byte it
moves, so on a GPU its speed limit is the memory bandwidth. For each pass
of each depth-wise convolution of VAN-b2 at its stage-1 and stage-3 shapes
(batch 32, 224x224), this times the Triton kernel of :mod:`mmvan.ops` and
PyTorch's own op, and reports the bytes the pass must move at least (its
compulsory traffic: every input read once, every output written once), the
achieved rate and its share of the GPU's peak bandwidth:

- forward: read ``x``, write ``y`` (plus the weights);
- input gradient: read ``dy``, write ``dx``;
- weight gradient: read ``x`` and ``dy`` (plus the weight gradient);
- the MLP's fused depth-wise 3x3 + bias + GELU
  (:mod:`mmvan.ops.dwconv_gelu`): forward read ``x``, write ``y``;
  backward read ``x`` and ``dy``, write ``dx`` (plus the weight and bias
  gradients).

The peak comes from :data:`PEAK_BANDWIDTH_GBS` by the GPU's name, or is
measured by a large device-to-device copy (:func:`copy_bandwidth`).
``tools/analysis_tools/kernel_bandwidth.py`` prints the table (see
``tools/analysis_tools/gpu_check.sh``).
"""
import statistics
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from mmvan.models.layers.kernel_decomposition import LKA_KERNELS
from mmvan.ops import depthwise_conv2d
from mmvan.ops import dwconv_gelu as fused_op
from mmvan.ops.depthwise_conv import failed_variants
from mmvan.ops.dwconv_gelu import dwconv_gelu
from mmvan.utils.errors import UserError

# Peak memory bandwidth in GB/s (1e9 bytes) by a part of the name
# torch.cuda.get_device_name() reports, most specific first.
PEAK_BANDWIDTH_GBS = (
    ('GH200', 4000),
    ('H200', 4800),
    ('H100 NVL', 3900),
    ('H100 PCIe', 2000),
    ('H100', 3350),  # SXM5, "NVIDIA H100 80GB HBM3"
    ('H800', 3350),
    ('B200', 8000),
    ('A100-SXM4-80GB', 2039),
    ('A100 80GB PCIe', 1935),
    ('A100', 1555),  # 40 GB, SXM4 and PCIe
    ('A800', 2039),
    ('L40S', 864),
    ('L40', 864),
    ('L4', 300),
    ('A10G', 600),
    ('A10', 600),
    ('RTX 6000 Ada', 960),
    ('RTX 4090', 1008),
    ('RTX 3090', 936),
    ('V100', 900),
    ('T4', 320),
)

# VAN-b2 at 224x224: (stage, channels, hidden channels of the MLP, size).
B2_STAGES = ((1, 64, 512, 56), (3, 320, 1280, 14))
DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16}


def peak_bandwidth(name):
    """The peak memory bandwidth of the GPU called ``name`` in bytes per
    second, or None for a GPU not in :data:`PEAK_BANDWIDTH_GBS`."""
    for part, gbs in PEAK_BANDWIDTH_GBS:
        if part.lower() in name.lower():
            return gbs * 1e9
    return None


def depthwise_cases(stages=B2_STAGES):
    """The depth-wise convolutions of VAN (LKA's released ``(5, 7, 3)``,
    LSKA's k=23 split into ``1 x k`` / ``k x 1`` halves, the MLP's 3x3) at
    ``stages``: dicts with ``stage``, ``name``, ``channels``, ``size``,
    ``kernel`` ``(kh, kw)``, ``dilation`` and ``fused`` (the MLP's conv +
    bias + GELU)."""
    a, b, d = LKA_KERNELS[21]
    cases = []
    for stage, c, hidden, size in stages:
        convs = [
            ('LKA conv0', c, (a, a), 1),
            ('LKA conv_spatial', c, (b, b), d),
            ('LSKA conv0h', c, (1, a), 1),
            ('LSKA conv0v', c, (a, 1), 1),
            ('LSKA conv_spatial_h', c, (1, b), d),
            ('LSKA conv_spatial_v', c, (b, 1), d),
            ('MLP dwconv', hidden, (3, 3), 1),
        ]
        for name, channels, kernel, dil in convs:
            cases.append(
                dict(
                    stage=stage,
                    name=name,
                    channels=channels,
                    size=size,
                    kernel=kernel,
                    dilation=dil,
                    fused=False))
        cases.append(
            dict(
                stage=stage,
                name='MLP dwconv+GELU',
                channels=hidden,
                size=size,
                kernel=(3, 3),
                dilation=1,
                fused=True))
    return cases


def compulsory_bytes(pass_name,
                     batch,
                     channels,
                     size,
                     kernel,
                     element_size,
                     weight_element_size=4):
    """Bytes a pass must read and write at least.

    Args:
        pass_name (str): ``'forward'``, ``'input grad'``, ``'weight grad'``
            or, for the fused MLP op, ``'fused forward'`` and
            ``'fused backward'``.
        batch, channels, size (int): The map is ``(batch, channels, size,
            size)``; stride 1 and same padding, so the output is too.
        kernel (tuple[int, int]): ``(kh, kw)``.
        element_size (int): Bytes per activation (4 fp32, 2 bf16).
        weight_element_size (int): Bytes per weight. Defaults to 4.

    Returns:
        int: bytes.
    """
    act = batch * channels * size * size * element_size
    # Weights and bias (read, or their gradients written).
    params = channels * (kernel[0] * kernel[1] + 1) * weight_element_size
    maps = {
        'forward': 2,
        'input grad': 2,
        'weight grad': 2,
        'fused forward': 2,
        'fused backward': 3
    }
    if pass_name not in maps:
        raise ValueError(f'unknown pass {pass_name!r}')
    return maps[pass_name] * act + params


def bandwidth_share(nbytes, seconds, peak):
    """``(bytes per second, share of peak)`` of moving ``nbytes`` in
    ``seconds`` on a GPU with ``peak`` bytes per second."""
    rate = nbytes / seconds
    return rate, rate / peak


def time_cuda(fn, warmup=3, repeats=20):
    """Median seconds of ``fn()`` on the current CUDA stream (CUDA
    events)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def copy_bandwidth(nbytes=2**30, repeats=10):
    """The device-to-device copy rate in bytes per second (each copy reads
    and writes ``nbytes``)."""
    src = torch.empty(nbytes, dtype=torch.uint8, device='cuda')
    dst = torch.empty_like(src)
    seconds = time_cuda(lambda: dst.copy_(src), warmup=2, repeats=repeats)
    return 2 * nbytes / seconds


def _pass_functions(case, batch, dtype, impl):
    """``{pass name: fn}`` timing each pass of ``case`` with ``impl``
    (``'triton'``: mmvan's kernels, ``'torch'``: PyTorch's ops)."""
    c, size = case['channels'], case['size']
    kh, kw = case['kernel']
    d = case['dilation']
    padding = [d * (kh - 1) // 2, d * (kw - 1) // 2]
    dilation = [d, d]
    g = torch.Generator(device='cuda').manual_seed(0)
    x = torch.randn(batch, c, size, size, device='cuda', generator=g).to(dtype)
    dy = torch.randn_like(x)
    # Weights as autocast hands them over: the activations' dtype (the
    # fused op keeps fp32 weights).
    wdtype = torch.float32 if case['fused'] else dtype
    weight = torch.randn(c, 1, kh, kw, device='cuda').to(wdtype)
    bias = torch.randn(c, device='cuda').to(wdtype)
    if case['fused']:
        if impl == 'triton':
            fused_fwd = torch.ops.mmvan.dwconv3x3_gelu
            fused_bwd = torch.ops.mmvan.dwconv3x3_gelu_backward
            return {
                'fused forward': lambda: fused_fwd(x, weight, bias),
                'fused backward': lambda: fused_bwd(dy, x, weight, bias, True)
            }
        w16, b16 = weight.to(dtype), bias.to(dtype)
        z = F.conv2d(x, w16, b16, padding=1, groups=c)

        def torch_backward():
            dz = torch.ops.aten.gelu_backward(dy, z)
            return torch.ops.aten.convolution_backward(dz, x, w16, [c], [1, 1],
                                                       [1, 1], [1, 1], False,
                                                       [0, 0], c,
                                                       [True, True, True])

        return {
            'fused forward': lambda: dwconv_gelu(x, w16, b16, impl='torch'),
            'fused backward': torch_backward
        }
    if impl == 'triton':
        hw = [size, size]
        input_grad = torch.ops.mmvan.depthwise_conv2d_input_grad
        weight_grad = torch.ops.mmvan.depthwise_conv2d_weight_grad
        return {
            'forward':
            lambda: depthwise_conv2d(
                x, weight, bias, 1, padding, dilation, impl='triton'),
            'input grad':
            lambda: input_grad(dy, weight, hw, padding, dilation),
            'weight grad':
            lambda: weight_grad(dy, x, weight, padding, dilation, True)
        }

    def aten_backward(mask):
        return lambda: torch.ops.aten.convolution_backward(
            dy, x, weight, [c] if mask[2] else None, [1, 1], padding, dilation,
            False, [0, 0], c, mask)

    return {
        'forward': lambda: F.conv2d(x, weight, bias, 1, padding, dilation, c),
        'input grad': aten_backward([True, False, False]),
        'weight grad': aten_backward([False, True, True])
    }


def kernel_rows(peak, batch=32, dtypes=('fp32', 'bf16'), repeats=20):
    """Time every pass of every case (Triton and PyTorch): a list of dicts
    with the case, ``pass``, ``dtype``, ``impl``, ``ms``, ``gb``,
    ``gbs`` and ``share`` (of ``peak`` bytes per second)."""
    rows = []
    with torch.no_grad():
        for case in depthwise_cases():
            for dname in dtypes:
                dtype = DTYPES[dname]
                for impl in ('triton', 'torch'):
                    fns = _pass_functions(case, batch, dtype, impl)
                    for pass_name, fn in fns.items():
                        seconds = time_cuda(fn, repeats=repeats)
                        fell_back = impl == 'triton' and _fell_back(
                            case, pass_name, dtype)
                        nbytes = compulsory_bytes(
                            pass_name, batch, case['channels'], case['size'],
                            case['kernel'],
                            torch.empty(0, dtype=dtype).element_size())
                        rate, share = bandwidth_share(nbytes, seconds, peak)
                        rows.append(
                            dict(
                                case,
                                dtype=dname,
                                impl=impl,
                                ms=seconds * 1e3,
                                gb=nbytes / 1e9,
                                gbs=rate / 1e9,
                                share=share,
                                fell_back=fell_back,
                                **{'pass': pass_name}))
    return rows


def _fell_back(case, pass_name, dtype):
    """Whether mmvan's kernel for this pass failed and PyTorch's op ran in
    its place (the ops fall back with a warning once, then silently)."""
    if case['fused']:
        return fused_op.failure() is not None
    return any(kind == pass_name and device == 'cuda' and failed_dtype == dtype
               and tuple(kernel) == tuple(case['kernel'])
               for kind, device, failed_dtype, kernel, _ in failed_variants())


def format_rows(rows):
    """The rows as a markdown table, Triton and PyTorch side by side."""
    lines = [
        '| stage | convolution | kernel | pass | dtype | MB moved | '
        'triton ms | triton % of peak | torch ms | torch % of peak | '
        'speed-up |', '| --- ' * 11 + '|'
    ]
    pairs = {}
    for row in rows:
        key = (row['stage'], row['name'], row['pass'], row['dtype'])
        pairs.setdefault(key, {})[row['impl']] = row
    for (stage, name, pass_name, dtype), pair in pairs.items():
        t, p = pair.get('triton'), pair.get('torch')
        ref = t or p
        kh, kw = ref['kernel']
        d = ref['dilation']
        kernel = f'{kh}x{kw}' + (f' d{d}' if d > 1 else '')
        cells = [
            f's{stage}', name, kernel, pass_name, dtype,
            f'{ref["gb"] * 1e3:.1f}'
        ]
        if t is not None and t.get('fell_back'):
            # PyTorch's op ran: not the kernel's time.
            cells += ['failed: PyTorch ran', '-']
            t = None
        else:
            cells += _time_cells(t)
        cells += _time_cells(p)
        cells.append(f'{p["ms"] / t["ms"]:.2f}x' if t and p else '-')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def _time_cells(row):
    """A row's milliseconds and share of peak as table cells."""
    if row is None:
        return ['-', '-']
    return [f'{row["ms"]:.3f}', f'{row["share"]:.0%}']


def require_cuda(what):
    """A :class:`~mmvan.utils.errors.UserError` when no CUDA GPU is
    visible."""
    if not torch.cuda.is_available():
        raise UserError(f'{what} needs a CUDA GPU, and this machine has none '
                        f'(torch.cuda.is_available() is False).')


def report(batch_size: int = 32,
           dtypes: Sequence[str] = ('fp32', 'bf16'),
           repeats: int = 20,
           peak_gbs: Optional[float] = None) -> dict:
    """Time every depth-wise kernel at VAN-b2's stage-1 and stage-3 shapes
    (batch ``batch_size``, each of ``dtypes``, the median of ``repeats``
    runs) and print the table of :func:`format_rows`, the GPU's name
    first. ``peak_gbs``: the GPU's peak memory bandwidth in GB/s (default:
    from :data:`PEAK_BANDWIDTH_GBS` by the GPU's name, else measured by
    :func:`copy_bandwidth`).

    Returns:
        dict: ``gpu`` (its name), ``peak`` (bytes per second) and
        ``rows`` (see :func:`kernel_rows`).
    """
    require_cuda('the kernel bandwidth check')
    name = torch.cuda.get_device_name()
    print(f'GPU: {name}; torch {torch.__version__}')
    peak = None if peak_gbs is None else peak_gbs * 1e9
    source = 'given'
    if peak is None:
        peak = peak_bandwidth(name)
        source = 'table'
    if peak is None:
        peak = copy_bandwidth()
        source = 'measured: 1 GiB device-to-device copy'
    print(f'peak memory bandwidth: {peak / 1e9:.0f} GB/s ({source}); '
          f'batch {batch_size}, VAN-b2 stage 1 (56x56) and stage 3 '
          f'(14x14); bytes = compulsory traffic of each pass')
    rows = kernel_rows(peak, batch_size, dtypes, repeats)
    print(format_rows(rows))
    return dict(gpu=name, peak=peak, rows=rows)
