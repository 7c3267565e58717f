# Copyright (c) mmvan contributors. All rights reserved.
"""Running a module channels-last (oneDNN's fast layout on CPU)."""
import torch


def _inputs_channels_last(module, args):
    x = args[0]
    if isinstance(x, torch.Tensor) and x.dim() == 4:
        return (x.contiguous(memory_format=torch.channels_last), ) + tuple(
            args[1:])
    return None


def memory_format_of(x):
    """``torch.channels_last`` for a 4-D tensor laid out channels-last (and
    not also plain contiguous, as a 1x1 map is), else
    ``torch.contiguous_format``."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(
            memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def to_channels_last(module):
    """Hold ``module``'s weights channels-last and turn its 4-D input
    channels-last on the way in, once; VAN then keeps every feature map so.

    Args:
        module (nn.Module): Changed in place.

    Returns:
        bool: Whether ``module`` was changed (False when it already was).
    """
    module.to(memory_format=torch.channels_last)
    if getattr(module, '_channels_last_inputs', False):
        return False
    module.register_forward_pre_hook(_inputs_channels_last)
    module._channels_last_inputs = True
    return True


def takes_channels_last(module):
    """Whether :func:`to_channels_last` was applied to ``module``."""
    return getattr(module, '_channels_last_inputs', False)
