# Copyright (c) mmvan contributors. All rights reserved.
"""How a large depth-wise kernel is split into a small one and a dilated one.

A ``k x k`` depth-wise convolution is approximated by an ``a x a``
depth-wise convolution followed by a ``b x b`` depth-wise convolution with
dilation ``d``. The pair covers ``a + d * (b - 1)`` pixels: VAN's "21x21"
LKA, ``(5, 7, 3)``, covers 23x23, which the LSKA paper calls ``k = 23``.
"""
import math

from mmvan.utils.errors import ConfigError

# kernel size -> (first kernel a, dilated kernel b, dilation d), as released
# with the LSKA paper.
LSKA_KERNELS = {
    7: (3, 3, 2),
    11: (3, 5, 2),
    23: (5, 7, 3),
    35: (5, 11, 3),
    41: (5, 13, 3),
    53: (5, 17, 3),
}

# VAN names its released kernel by the decomposed size (21 = 7 x 3), while
# LSKA names the same decomposition by its receptive field (23).
LKA_KERNELS = dict(LSKA_KERNELS)
LKA_KERNELS[21] = (5, 7, 3)


def decompose_kernel(kernel_size, table=None):
    """Return ``(a, b, d)`` for a large kernel.

    Args:
        kernel_size (int): The large kernel size ``k``.
        table (dict, optional): The allowed sizes. When given, any other
            size is an error naming the allowed ones. When None, sizes in
            :data:`LKA_KERNELS` use the released decomposition and any other
            odd ``k >= 7`` uses the general rule of the VAN paper: dilation
            ``d = 2`` below 21 and 3 from there on, ``a = 2d - 1`` and
            ``b = ceil(k / d)`` rounded up to an odd number.

    Returns:
        tuple[int, int, int]: ``(a, b, d)``.
    """
    if table is not None:
        if kernel_size not in table:
            raise ConfigError(
                f'Unsupported kernel_size {kernel_size!r}; supported sizes '
                f'are {sorted(table)}.')
        return table[kernel_size]
    if kernel_size in LKA_KERNELS:
        return LKA_KERNELS[kernel_size]
    if (not isinstance(kernel_size, int) or kernel_size < 7
            or kernel_size % 2 == 0):
        raise ConfigError(
            f'Unsupported kernel_size {kernel_size!r}; use an odd integer '
            f'>= 7 (released sizes: {sorted(LKA_KERNELS)}).')
    d = 2 if kernel_size < 21 else 3
    b = math.ceil(kernel_size / d)
    b += 1 - b % 2
    return 2 * d - 1, b, d
