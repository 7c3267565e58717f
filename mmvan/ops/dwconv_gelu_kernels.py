# Copyright (c) mmvan contributors. All rights reserved.
"""The Triton kernels of :mod:`mmvan.ops.dwconv_gelu`, as plain functions:
that module hands them to ``triton.jit`` at first use, so that
``TRITON_INTERPRET`` is read then rather than at import.

Two families, float32 accumulation, any strides: for NCHW maps a program
computes one tile of one (image, channel) plane (contiguous rows); for
channels-last maps a tile of consecutive pixels of one image by a block of
channels (contiguous channels), so that both read memory in runs.
"""
import triton.language as tl

# Builtins only (``tl.full``, ``tl.reduce``; not the standard library's
# ``tl.zeros``, ``tl.sum``, ``tl.cdiv``, which are jit functions): Triton's
# interpreter replaces builtins only, so the kernels run there whether or
# not ``TRITON_INTERPRET`` was set when Triton was imported. The sums reduce
# with the standard library's combine function, which the interpreter
# recognises (and sums with numpy).
SUM = tl.standard._sum_combine


def forward_kernel(x_ptr, w_ptr, b_ptr, y_ptr, C, H, W, sxn, sxc, sxh, sxw,
                   syn, syc, syh, syw, HAS_BIAS: tl.constexpr,
                   BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """``y = gelu(b + sum_taps w * x)`` (exact GELU), zero padding."""
    plane = tl.program_id(0)
    tile = tl.program_id(1)
    n = plane // C
    c = plane % C
    tiles_w = (W + BLOCK_W - 1) // BLOCK_W
    rows = (tile // tiles_w) * BLOCK_H + tl.arange(0, BLOCK_H)[:, None]
    cols = (tile % tiles_w) * BLOCK_W + tl.arange(0, BLOCK_W)[None, :]
    x_base = x_ptr + n.to(tl.int64) * sxn + c.to(tl.int64) * sxc
    z = tl.full((BLOCK_H, BLOCK_W), 0., tl.float32)
    if HAS_BIAS:
        z += tl.load(b_ptr + c).to(tl.float32)
    for i in tl.static_range(3):
        for j in tl.static_range(3):
            r = rows + (i - 1)
            q = cols + (j - 1)
            m = (r >= 0) & (r < H) & (q >= 0) & (q < W)
            v = tl.load(x_base + r * sxh + q * sxw, mask=m, other=0.)
            z += v.to(tl.float32) * tl.load(w_ptr + c * 9 + i * 3 + j).to(
                tl.float32)
    y = 0.5 * z * (1.0 + tl.math.erf(z * 0.7071067811865476))
    inside = (rows < H) & (cols < W)
    y_base = y_ptr + n.to(tl.int64) * syn + c.to(tl.int64) * syc
    tl.store(
        y_base + rows * syh + cols * syw,
        y.to(y_ptr.dtype.element_ty),
        mask=inside)


def grad_kernel(x_ptr, w_ptr, b_ptr, g_ptr, gz_ptr, part_ptr, C, H, W, sxn,
                sxc, sxh, sxw, sgn, sgc, sgh, sgw, szn, szc, szh, szw, n_tiles,
                HAS_BIAS: tl.constexpr, BLOCK_H: tl.constexpr,
                BLOCK_W: tl.constexpr):
    """The gradient of the pre-activation (recomputed from ``x``), and this
    tile's share of the weight and bias gradients."""
    plane = tl.program_id(0)
    tile = tl.program_id(1)
    n = plane // C
    c = plane % C
    tiles_w = (W + BLOCK_W - 1) // BLOCK_W
    rows = (tile // tiles_w) * BLOCK_H + tl.arange(0, BLOCK_H)[:, None]
    cols = (tile % tiles_w) * BLOCK_W + tl.arange(0, BLOCK_W)[None, :]
    inside = (rows < H) & (cols < W)
    x_base = x_ptr + n.to(tl.int64) * sxn + c.to(tl.int64) * sxc
    z = tl.full((BLOCK_H, BLOCK_W), 0., tl.float32)
    if HAS_BIAS:
        z += tl.load(b_ptr + c).to(tl.float32)
    for i in tl.static_range(3):
        for j in tl.static_range(3):
            r = rows + (i - 1)
            q = cols + (j - 1)
            m = (r >= 0) & (r < H) & (q >= 0) & (q < W)
            v = tl.load(x_base + r * sxh + q * sxw, mask=m, other=0.)
            z += v.to(tl.float32) * tl.load(w_ptr + c * 9 + i * 3 + j).to(
                tl.float32)
    g_base = g_ptr + n.to(tl.int64) * sgn + c.to(tl.int64) * sgc
    g = tl.load(
        g_base + rows * sgh + cols * sgw, mask=inside, other=0.).to(tl.float32)
    # d gelu / dz = Phi(z) + z * phi(z)
    cdf = 0.5 * (1.0 + tl.math.erf(z * 0.7071067811865476))
    pdf = tl.exp(-0.5 * z * z) * 0.3989422804014327
    gz = tl.where(inside, g * (cdf + z * pdf), 0.)
    gz_base = gz_ptr + n.to(tl.int64) * szn + c.to(tl.int64) * szc
    tl.store(
        gz_base + rows * szh + cols * szw,
        gz.to(gz_ptr.dtype.element_ty),
        mask=inside)
    part = part_ptr + (plane.to(tl.int64) * n_tiles + tile) * 10
    # The taps of x are in cache from the recomputation above.
    for i in tl.static_range(3):
        for j in tl.static_range(3):
            r = rows + (i - 1)
            q = cols + (j - 1)
            m = (r >= 0) & (r < H) & (q >= 0) & (q < W)
            v = tl.load(x_base + r * sxh + q * sxw, mask=m, other=0.)
            tl.store(part + i * 3 + j,
                     tl.reduce(gz * v.to(tl.float32), None, SUM))
    tl.store(part + 9, tl.reduce(gz, None, SUM))


def input_grad_kernel(gz_ptr, w_ptr, gx_ptr, C, H, W, szn, szc, szh, szw, sxn,
                      sxc, sxh, sxw, BLOCK_H: tl.constexpr,
                      BLOCK_W: tl.constexpr):
    """The input gradient: the pre-activation's gradient correlated with
    the flipped kernel."""
    plane = tl.program_id(0)
    tile = tl.program_id(1)
    n = plane // C
    c = plane % C
    tiles_w = (W + BLOCK_W - 1) // BLOCK_W
    rows = (tile // tiles_w) * BLOCK_H + tl.arange(0, BLOCK_H)[:, None]
    cols = (tile % tiles_w) * BLOCK_W + tl.arange(0, BLOCK_W)[None, :]
    gz_base = gz_ptr + n.to(tl.int64) * szn + c.to(tl.int64) * szc
    acc = tl.full((BLOCK_H, BLOCK_W), 0., tl.float32)
    for i in tl.static_range(3):
        for j in tl.static_range(3):
            r = rows - (i - 1)
            q = cols - (j - 1)
            m = (r >= 0) & (r < H) & (q >= 0) & (q < W)
            v = tl.load(gz_base + r * szh + q * szw, mask=m, other=0.)
            acc += v.to(tl.float32) * tl.load(w_ptr + c * 9 + i * 3 + j).to(
                tl.float32)
    inside = (rows < H) & (cols < W)
    gx_base = gx_ptr + n.to(tl.int64) * sxn + c.to(tl.int64) * sxc
    tl.store(
        gx_base + rows * sxh + cols * sxw,
        acc.to(gx_ptr.dtype.element_ty),
        mask=inside)


# ------------------------------------------------------------ channels-last
# A channels-last map keeps the channels of a pixel side by side: a program
# takes BLOCK_P consecutive pixels (in row-major order) of one image and a
# block of BLOCK_C channels, so that each load is BLOCK_P runs of BLOCK_C
# contiguous values.


def forward_cl_kernel(x_ptr, w_ptr, b_ptr, y_ptr, C, H, W, sxn, sxc, sxh, sxw,
                      syn, syc, syh, syw, HAS_BIAS: tl.constexpr,
                      BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """``y = gelu(b + sum_taps w * x)``; grid ``(N * pixel tiles, channel
    blocks)``, pixel tiles image-major."""
    pid = tl.program_id(0)
    p_tiles = (H * W + BLOCK_P - 1) // BLOCK_P
    n = pid // p_tiles
    p = (pid % p_tiles) * BLOCK_P + tl.arange(0, BLOCK_P)[:, None]
    h = p // W
    w = p % W
    inside = p < H * W
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)[None, :]
    mask_c = c < C
    x_base = x_ptr + n.to(tl.int64) * sxn + c * sxc
    z = tl.full((BLOCK_P, BLOCK_C), 0., tl.float32)
    if HAS_BIAS:
        z += tl.load(b_ptr + c, mask=mask_c, other=0.).to(tl.float32)
    for i in tl.static_range(3):
        for j in tl.static_range(3):
            r = h + (i - 1)
            q = w + (j - 1)
            m = inside & mask_c & (r >= 0) & (r < H) & (q >= 0) & (q < W)
            v = tl.load(x_base + r * sxh + q * sxw, mask=m, other=0.)
            wv = tl.load(w_ptr + c * 9 + (i * 3 + j), mask=mask_c, other=0.)
            z += v.to(tl.float32) * wv.to(tl.float32)
    y = 0.5 * z * (1.0 + tl.math.erf(z * 0.7071067811865476))
    y_off = n.to(tl.int64) * syn + c * syc + h * syh + w * syw
    tl.store(y_ptr + y_off, y.to(y_ptr.dtype.element_ty), mask=inside & mask_c)


def grad_cl_kernel(x_ptr, w_ptr, b_ptr, g_ptr, gz_ptr, part_ptr, C, H, W, sxn,
                   sxc, sxh, sxw, sgn, sgc, sgh, sgw, szn, szc, szh, szw,
                   tiles_per_program, HAS_BIAS: tl.constexpr,
                   BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """The gradient of the pre-activation (recomputed from ``x``) over
    ``tiles_per_program`` pixel tiles of one image, and their share of the
    weight and bias gradients: ``part[program row, k, c]`` for the taps
    ``k < 9`` and the bias ``k = 9`` (fp32). Grid ``(N * chunks, channel
    blocks)``."""
    pid = tl.program_id(0)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)[None, :]
    mask_c = c < C
    p_tiles = (H * W + BLOCK_P - 1) // BLOCK_P
    chunks = (p_tiles + tiles_per_program - 1) // tiles_per_program
    n = pid // chunks
    first = (pid % chunks) * tiles_per_program
    last = tl.minimum(first + tiles_per_program, p_tiles)
    x_base = x_ptr + n.to(tl.int64) * sxn + c * sxc
    taps = tl.arange(0, 16)[:, None]
    acc = tl.full((16, BLOCK_C), 0., tl.float32)
    bias = tl.full((1, BLOCK_C), 0., tl.float32)
    if HAS_BIAS:
        bias = tl.load(b_ptr + c, mask=mask_c, other=0.).to(tl.float32)
    for tile in range(first, last):
        p = tile * BLOCK_P + tl.arange(0, BLOCK_P)[:, None]
        h = p // W
        w = p % W
        inside = p < H * W
        z = tl.full((BLOCK_P, BLOCK_C), 0., tl.float32) + bias
        for i in tl.static_range(3):
            for j in tl.static_range(3):
                r = h + (i - 1)
                q = w + (j - 1)
                m = inside & mask_c & (r >= 0) & (r < H) & (q >= 0) & (q < W)
                v = tl.load(x_base + r * sxh + q * sxw, mask=m, other=0.)
                wv = tl.load(
                    w_ptr + c * 9 + (i * 3 + j), mask=mask_c, other=0.)
                z += v.to(tl.float32) * wv.to(tl.float32)
        m_out = inside & mask_c
        g = tl.load(
            g_ptr + n.to(tl.int64) * sgn + c * sgc + h * sgh + w * sgw,
            mask=m_out,
            other=0.).to(tl.float32)
        # d gelu / dz = Phi(z) + z * phi(z)
        cdf = 0.5 * (1.0 + tl.math.erf(z * 0.7071067811865476))
        pdf = tl.exp(-0.5 * z * z) * 0.3989422804014327
        gz = tl.where(m_out, g * (cdf + z * pdf), 0.)
        tl.store(
            gz_ptr + n.to(tl.int64) * szn + c * szc + h * szh + w * szw,
            gz.to(gz_ptr.dtype.element_ty),
            mask=m_out)
        # The taps of x are in cache from the recomputation above.
        for i in tl.static_range(3):
            for j in tl.static_range(3):
                r = h + (i - 1)
                q = w + (j - 1)
                m = inside & mask_c & (r >= 0) & (r < H) & (q >= 0) & (q < W)
                v = tl.load(x_base + r * sxh + q * sxw, mask=m, other=0.)
                s = tl.reduce(gz * v.to(tl.float32), 0, SUM)
                acc = tl.where(taps == i * 3 + j, acc + s[None, :], acc)
        acc = tl.where(taps == 9, acc + tl.reduce(gz, 0, SUM)[None, :], acc)
    k_ok = taps < 10
    tl.store(
        part_ptr + (pid.to(tl.int64) * 10 + taps) * C + c,
        acc,
        mask=k_ok & mask_c)


def input_grad_cl_kernel(gz_ptr, w_ptr, gx_ptr, C, H, W, szn, szc, szh, szw,
                         sxn, sxc, sxh, sxw, BLOCK_P: tl.constexpr,
                         BLOCK_C: tl.constexpr):
    """The input gradient: the pre-activation's gradient correlated with
    the flipped kernel; grid as :func:`forward_cl_kernel`'s."""
    pid = tl.program_id(0)
    p_tiles = (H * W + BLOCK_P - 1) // BLOCK_P
    n = pid // p_tiles
    p = (pid % p_tiles) * BLOCK_P + tl.arange(0, BLOCK_P)[:, None]
    h = p // W
    w = p % W
    inside = p < H * W
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)[None, :]
    mask_c = c < C
    gz_base = gz_ptr + n.to(tl.int64) * szn + c * szc
    acc = tl.full((BLOCK_P, BLOCK_C), 0., tl.float32)
    for i in tl.static_range(3):
        for j in tl.static_range(3):
            r = h - (i - 1)
            q = w - (j - 1)
            m = inside & mask_c & (r >= 0) & (r < H) & (q >= 0) & (q < W)
            v = tl.load(gz_base + r * szh + q * szw, mask=m, other=0.)
            wv = tl.load(w_ptr + c * 9 + (i * 3 + j), mask=mask_c, other=0.)
            acc += v.to(tl.float32) * wv.to(tl.float32)
    gx_off = n.to(tl.int64) * sxn + c * sxc + h * sxh + w * sxw
    tl.store(
        gx_ptr + gx_off, acc.to(gx_ptr.dtype.element_ty), mask=inside & mask_c)
