# Copyright (c) mmvan contributors. All rights reserved.
"""The training fast path: the layout and precision a training run uses.

``tools/train.py`` sets ``train_fast_path=dict(layout='auto')`` unless the
config says otherwise; :class:`mmvan.engine.runner.Runner` applies it to the
model before wrapping it (DDP sees the final parameter layout):

- ``layout='auto'``: channels-last on CPU, where oneDNN's convolutions run
  VAN's training step faster than in NCHW (figures in docs/benchmark.md),
  NCHW on GPUs, where the large depth-wise kernels' best layout depends on
  the device and is not assumed; ``'channels_last'`` / ``'contiguous'``
  force one (an explicit ``'channels_last'`` also turns a backbone of
  another type channels-last when the model has no VAN). The VAN backbones
  hold their weights channels-last and turn
  their input channels-last, so every feature map stays so; the step
  computes the same loss and gradients (float rounding).
- precision follows the optimizer wrapper (``--amp``: bf16 autocast
  without a loss scaler on a GPU with bf16, fp16 with a loss scaler on
  older GPUs or with ``optim_wrapper.dtype='float16'``, bf16 autocast on
  CPU; see :func:`mmvan.engine.device.apply_device_fallbacks`);
- the depth-wise convolutions follow the backbone's ``conv_impl``
  (``'auto'``: the Triton kernels of :mod:`mmvan.ops` on CUDA, with the
  MLP's convolution and GELU fused and each residual add one element-wise
  operation with its layer scale and stochastic depth, and the existing
  paths on CPU);
- ``fused_optimizer='auto'``: on CPU, Adam, AdamW and SGD run their fused
  kernels (``fused=True``: one pass over all parameters instead of a loop
  of small operations per tensor; the same updates to float rounding)
  unless the config sets ``fused`` or ``foreach`` itself; ``False`` keeps
  torch's default;
- ``torch.compile`` is opt-in (``--compile``).

Turn the layout off with ``--cfg-options train_fast_path.layout=contiguous``
and the optimizer with ``train_fast_path.fused_optimizer=False``;
``train_fast_path=None`` turns the whole fast path off.
"""
import torch

from mmvan.models.backbones.van import VAN
from mmvan.models.utils import takes_channels_last, to_channels_last
from mmvan.ops import dwconv_gelu
from mmvan.ops.depthwise_conv import failed_variants
from mmvan.utils.errors import ConfigError

LAYOUTS = ('auto', 'channels_last', 'contiguous')
# Optimizers with a fused CPU kernel.
FUSED_OPTIMIZERS = ('Adam', 'AdamW', 'SGD')


def choose_layout(device, requested='auto'):
    """The layout to train in on ``device``."""
    if requested not in LAYOUTS:
        raise ConfigError(f'train_fast_path.layout must be one of {LAYOUTS}, '
                          f'got {requested!r}.')
    if requested != 'auto':
        return requested
    return 'channels_last' if torch.device(device).type == 'cpu' else \
        'contiguous'


def describe_precision(optim_wrapper_cfg):
    kind = str((optim_wrapper_cfg or {}).get('type', 'OptimWrapper'))
    if 'BF16Autocast' in kind:
        return 'bf16-autocast'
    if 'CPUAmp' in kind:
        dtype = optim_wrapper_cfg.get('dtype', 'bfloat16')
        return f'{"bf16" if "bfloat" in str(dtype) else dtype}-autocast'
    if 'Amp' in kind:
        dtype = optim_wrapper_cfg.get('dtype') or 'float16'
        name = 'bf16' if 'bfloat' in str(dtype) else 'fp16'
        return f'{name}-autocast with loss scaling'
    return 'fp32'


def describe_convolutions(model, device):
    """What runs the depth-wise convolutions of ``model``'s VAN backbones
    on ``device``, for the log line: ``'triton (fused MLP conv+GELU,
    fused residual adds)'`` (the fusions that are on), ``'triton'`` or
    ``'torch'``."""
    vans = [m for m in model.modules() if isinstance(m, VAN)]
    if not vans:
        return 'torch'
    names = []
    for van in vans:
        triton = van.conv_impl == 'triton' or (
            van.conv_impl == 'auto' and torch.device(device).type == 'cuda')
        if triton and dwconv_gelu.triton is None:
            name = 'torch (Triton is not installed)'
        elif triton:
            fusions = [
                label
                for label, on in (('fused MLP conv+GELU', van.fused_mlp_act),
                                  ('fused residual adds', van.fused_residual))
                if on
            ]
            name = (f'triton ({", ".join(fusions)})' if fusions else 'triton')
            name += _failures(device)
        else:
            name = 'torch'
        if name not in names:
            names.append(name)
    return ', '.join(names)


def _failures(device):
    """What of the Triton kernels failed in this process on ``device``'s
    type and ran PyTorch's ops instead, for the log line ('' if
    nothing)."""
    kind = torch.device(device).type
    failed = [
        f'{p} {kh}x{kw} {str(dtype).replace("torch.", "")}'
        for p, dev, dtype, (kh, kw), _ in failed_variants() if dev == kind
    ]
    if dwconv_gelu.failure() is not None:
        failed.append('fused MLP conv+GELU')
    if not failed:
        return ''
    return f' [failed, PyTorch\'s ops ran: {", ".join(failed)}]'


def apply_layout(model, layout, any_backbone=False):
    """Put every VAN backbone of ``model`` in ``layout``.

    Args:
        model (nn.Module): Changed in place.
        layout (str): ``'channels_last'`` or ``'contiguous'``.
        any_backbone (bool): When ``model`` holds no VAN, put its
            ``backbone`` (any type) channels-last instead; what
            ``layout='channels_last'`` asked for explicitly does.

    Returns:
        int: the number of backbones changed.
    """
    if layout != 'channels_last':
        return 0
    vans = [m for m in model.modules() if isinstance(m, VAN)]
    if not vans and any_backbone and isinstance(
            getattr(model, 'backbone', None), torch.nn.Module):
        vans = [model.backbone]
    return sum(to_channels_last(m) for m in vans)


def uses_channels_last(model):
    """Whether ``model``'s VAN backbones train channels-last."""
    return any(
        takes_channels_last(m) for m in model.modules() if isinstance(m, VAN))


def fuse_optimizer(optim_wrapper_cfg, device, requested='auto'):
    """Ask for the fused kernel of ``optim_wrapper_cfg``'s optimizer where
    it is known to be faster (CPU), in place.

    Returns:
        str: what the optimizer runs, for the log line.
    """
    optimizer = (optim_wrapper_cfg or {}).get('optimizer')
    if not isinstance(optimizer, dict):
        return 'as configured'
    name = str(optimizer.get('type', '')).split('.')[-1]
    if 'fused' in optimizer or 'foreach' in optimizer:
        return f'{name} as configured'
    if requested not in ('auto', True, False):
        raise ConfigError(f"train_fast_path.fused_optimizer must be 'auto', "
                          f'True or False, got {requested!r}.')
    if requested is False or name not in FUSED_OPTIMIZERS or (
            requested == 'auto' and torch.device(device).type != 'cpu'):
        return name
    optimizer['fused'] = True
    return f'fused {name}'
