# Copyright (c) mmvan contributors. All rights reserved.
"""Convolutions with their following element-wise operation fused in, for
the folded (deploy) model on CPU.

oneDNN applies GELU, or an element-wise add/multiply with another tensor, to
a convolution's output while it is written (a "post-op"), which saves a pass
over memory per operation. The results equal the unfused operations up to
float32 rounding. Elsewhere (other devices, autograd, tracing, export) the
plain operations run.
"""
import torch
import torch.nn.functional as F

from mmvan.models.utils.layout import memory_format_of

_POINTWISE = getattr(
    getattr(torch.ops, 'mkldnn', None), '_convolution_pointwise', None)


def _fusable(x):
    if _POINTWISE is None or x.device.type != 'cpu':
        return False
    if x.dtype != torch.float32 or torch.is_grad_enabled():
        return False
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False
    return torch.backends.mkldnn.is_available()


def _args(conv):
    return (list(conv.padding), list(conv.stride), list(conv.dilation),
            conv.groups)


def conv_gelu(x, conv):
    """``gelu(conv(x))`` (exact, erf-based GELU)."""
    if _fusable(x) and isinstance(conv.padding, tuple):
        return _POINTWISE(x, conv.weight, conv.bias, *_args(conv), 'gelu', [],
                          'none')
    return F.gelu(conv(x))


def conv_binary(x, other, conv, op):
    """``conv(x) * other`` (``op='mul'``) or ``conv(x) + other``
    (``op='add'``)."""
    if (_fusable(x) and isinstance(conv.padding, tuple)
            and other.shape[0] == x.shape[0] and other.dtype == x.dtype):
        other = other.contiguous(memory_format=memory_format_of(x))
        return _POINTWISE.binary(x, other, conv.weight, conv.bias,
                                 *_args(conv), op, None, None, [], None)
    y = conv(x)
    return y * other if op == 'mul' else y + other


@torch.no_grad()
def undilate_(conv, max_taps=400):
    """Turn a dilated depth-wise convolution into the same convolution with
    a zero-stuffed kernel and no dilation, in place.

    oneDNN has no fast path for dilated depth-wise kernels on CPU; the
    equivalent dense kernel (zeros between the taps) runs faster while
    computing exactly the same sums. Kept dilated when the stuffed kernel
    would exceed ``max_taps`` taps, and on other devices (on CUDA the
    backbone's ``conv_impl`` chooses the kernels). The state dict still holds
    the dilated kernel, and a dilated kernel loads into it.

    Returns:
        bool: whether the convolution was changed.
    """
    dh, dw = conv.dilation
    if (dh, dw) == (1, 1) or conv.groups != conv.in_channels:
        return False
    if conv.weight.device.type != 'cpu':
        return False
    kh, kw = conv.kernel_size
    sh, sw = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if sh * sw > max_taps:
        return False
    conv.weight = torch.nn.Parameter(
        _stuffed(conv.weight, (sh, sw), (dh, dw)), requires_grad=False)
    conv.kernel_size = (sh, sw)
    conv.dilation = (1, 1)
    # The state dict keeps the dilated kernel, so a folded checkpoint is the
    # same on every device and loads into ``VAN(deploy=True)``.
    conv.undilated_from = (dh, dw)
    conv.register_state_dict_post_hook(_save_dilated)
    conv.register_load_state_dict_pre_hook(_load_dilated)
    return True


def _stuffed(weight, size, dilation):
    """The dense kernel of ``size`` with ``weight``'s taps ``dilation``
    apart and zeros between them."""
    dh, dw = dilation
    dense = weight.new_zeros(*weight.shape[:2], *size)
    dense[:, :, ::dh, ::dw] = weight
    return dense


def _save_dilated(conv, state_dict, prefix, local_metadata):
    key = prefix + 'weight'
    if key in state_dict:
        dh, dw = conv.undilated_from
        state_dict[key] = state_dict[key][:, :, ::dh, ::dw].clone()


def _load_dilated(conv, state_dict, prefix, *args):
    key = prefix + 'weight'
    weight = state_dict.get(key)
    (kh, kw), (dh, dw) = conv.kernel_size, conv.undilated_from
    if weight is not None and tuple(weight.shape[-2:]) == ((kh - 1) // dh + 1,
                                                           (kw - 1) // dw + 1):
        state_dict[key] = _stuffed(weight, conv.kernel_size, (dh, dw))
