# Copyright (c) mmvan contributors. All rights reserved.
"""Visual Attention Network (VAN) with LKA or LSKA attention.

Module and parameter names follow the official release, so its checkpoints
load with at most a prefix change: ``patch_embed{i}.proj``,
``block{i}.{j}.attn.spatial_gating_unit.conv0``, ``mlp.dwconv.dwconv``,
``norm{i}`` ...
"""
import contextlib
import copy

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch.nn.modules.batchnorm import _BatchNorm

from mmvan.registry import MODELS
from mmvan.utils.errors import ConfigError
from ..layers import LKA, LSKA, conv_binary, conv_gelu, undilate_

ATTENTIONS = {'lka': LKA, 'lska': LSKA}


def _bn_affine(bn):
    """Return ``(scale, shift)`` with ``bn(x) == x * scale + shift``."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    return scale, shift


@torch.no_grad()
def _fold_bn_into_next_conv(bn, conv):
    """Make ``conv`` compute ``conv(bn(x))``; ``conv`` must be 1x1."""
    scale, shift = _bn_affine(bn)
    w = conv.weight
    conv.bias.add_(w[:, :, 0, 0] @ shift)
    w.mul_(scale.view(1, -1, 1, 1))


@torch.no_grad()
def _fold_bn_into_prev_conv(conv, bn):
    """Make ``conv`` compute ``bn(conv(x))``."""
    scale, shift = _bn_affine(bn)
    conv.weight.mul_(scale.view(-1, 1, 1, 1))
    conv.bias.mul_(scale).add_(shift)


@torch.no_grad()
def _scale_conv_output(conv, scale):
    """Make ``conv`` compute ``conv(x) * scale`` (per output channel)."""
    conv.weight.mul_(scale.view(-1, 1, 1, 1))
    conv.bias.mul_(scale)


@contextlib.contextmanager
def _frozen_bn_statistics(module):
    """Let train-mode BatchNorms in ``module`` normalise with the batch
    statistics without changing their running statistics.

    Activation checkpointing runs a block's forward twice; without this the
    recomputation would update every running mean, variance and batch count
    a second time. A momentum of 0 keeps the running values; the batch count
    is put back on exit.
    """
    bns = [
        m for m in module.modules()
        if isinstance(m, _BatchNorm) and m.track_running_stats
    ]
    saved = [(m.momentum, None if m.num_batches_tracked is None else
              m.num_batches_tracked.clone()) for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, count) in zip(bns, saved):
            m.momentum = momentum
            if count is not None:
                m.num_batches_tracked.copy_(count)


# Fewest rows per band of the folded MLP: each band computes two rows more.
_MIN_BAND_ROWS = 8


def _may_slice(x):
    """Whether the folded model may split ``x`` into slices or bands: only
    for plain inference on CPU, where nothing records the shapes. (GPU
    allocators cache their blocks, and slicing would only cut parallelism.)
    """
    return x.dim() == 4 and x.device.type == 'cpu' and not (
        torch.is_grad_enabled() or torch.jit.is_tracing()
        or torch.jit.is_scripting() or torch.compiler.is_compiling())


class OverlapPatchEmbed(BaseModule):
    """Strided convolution with overlapping windows, then a norm layer."""

    def __init__(self,
                 in_channels,
                 embed_dims,
                 patch_size,
                 stride,
                 norm_cfg=dict(type='BN'),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.proj = nn.Conv2d(
            in_channels,
            embed_dims,
            patch_size,
            stride=stride,
            padding=patch_size // 2)
        self.norm = build_norm_layer(norm_cfg, embed_dims)[1]

    def forward(self, x):
        return self.norm(self.proj(x))

    def switch_to_deploy(self):
        _fold_bn_into_prev_conv(self.proj, self.norm)
        self.norm = nn.Identity()


class DWConv(BaseModule):
    """3x3 depth-wise convolution (kept as a module for the official key
    name ``mlp.dwconv.dwconv``)."""

    def __init__(self, embed_dims, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.dwconv = nn.Conv2d(
            embed_dims, embed_dims, 3, padding=1, groups=embed_dims)

    def forward(self, x):
        return self.dwconv(x)


class Mlp(BaseModule):
    """``fc2(drop(act(dwconv(fc1(x)))))`` with point-wise convolutions."""

    def __init__(self, embed_dims, hidden_dims, drop_rate=0., init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.fc1 = nn.Conv2d(embed_dims, hidden_dims, 1)
        self.dwconv = DWConv(hidden_dims)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden_dims, embed_dims, 1)
        self.drop = nn.Dropout(drop_rate)

    def forward(self, x):
        x = self.drop(self.act(self.dwconv(self.fc1(x))))
        return self.drop(self.fc2(x))


class SpatialAttention(BaseModule):
    """``proj_2(attention(gelu(proj_1(x)))) + x``."""

    def __init__(self,
                 embed_dims,
                 attention='lka',
                 kernel_size=21,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.proj_1 = nn.Conv2d(embed_dims, embed_dims, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = ATTENTIONS[attention](
            embed_dims, kernel_size=kernel_size)
        self.proj_2 = nn.Conv2d(embed_dims, embed_dims, 1)

    def branch(self, x):
        """The residual branch, without the shortcut."""
        x = self.spatial_gating_unit(self.activation(self.proj_1(x)))
        return self.proj_2(x)

    def forward(self, x):
        return self.branch(x) + x


class VANBlock(BaseModule):
    """One VAN block: attention and MLP sub-blocks, each behind a
    BatchNorm, scaled by a layer scale and added to the input.

    Args:
        embed_dims (int): Number of channels.
        mlp_ratio (float): Hidden width of the MLP over ``embed_dims``.
        attention (str): ``'lka'`` or ``'lska'``.
        kernel_size (int): Large kernel size of the attention.
        drop_rate (float): Dropout in the MLP.
        drop_path_rate (float): Stochastic depth of this block.
        layer_scale_init_value (float): Initial layer scale; 0 disables it.
        norm_cfg (dict): Config of the two BatchNorms.
        with_cp (bool): Recompute this block in the backward pass instead of
            storing its activations.
    """

    def __init__(self,
                 embed_dims,
                 mlp_ratio=4.,
                 attention='lka',
                 kernel_size=21,
                 drop_rate=0.,
                 drop_path_rate=0.,
                 layer_scale_init_value=1e-2,
                 norm_cfg=dict(type='BN'),
                 with_cp=False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.with_cp = with_cp
        self.deploy = False
        self.chunk_bytes = 0
        self.norm1 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.attn = SpatialAttention(embed_dims, attention, kernel_size)
        self.drop_path = (
            DropPath(drop_path_rate) if drop_path_rate > 0. else nn.Identity())
        self.norm2 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), drop_rate)
        if layer_scale_init_value > 0:
            self.layer_scale_1 = nn.Parameter(layer_scale_init_value *
                                              torch.ones(embed_dims))
            self.layer_scale_2 = nn.Parameter(layer_scale_init_value *
                                              torch.ones(embed_dims))
        else:
            self.layer_scale_1 = self.layer_scale_2 = None

    def _scale(self, x, layer_scale):
        if layer_scale is None:
            return x
        return x * layer_scale.view(-1, 1, 1)

    def _forward(self, x):
        if self.deploy:
            return self._forward_deploy(x)
        x = x + self.drop_path(
            self._scale(self.attn(self.norm1(x)), self.layer_scale_1))
        x = x + self.drop_path(
            self._scale(self.mlp(self.norm2(x)), self.layer_scale_2))
        return x

    def _forward_deploy(self, x):
        # norm1, norm2 and both layer scales live in the convolutions; the
        # attention shortcut became a per-channel scale of x. Each
        # element-wise step rides on the convolution before it.
        attn, mlp = self.attn, self.mlp
        a = conv_gelu(x, attn.proj_1)
        a = attn.spatial_gating_unit.fused_forward(a)
        x = conv_binary(a, x * self.shortcut_scale, attn.proj_2, 'add')
        rows = self._band_rows(x)
        if rows >= x.shape[2]:
            h = conv_gelu(mlp.fc1(x), mlp.dwconv.dwconv)
            return conv_binary(mlp.drop(h), x, mlp.fc2, 'add')
        # The MLP's hidden map is mlp_ratio times wider than x. Where it
        # would exceed chunk_bytes (a large image), run the MLP over bands
        # of rows, each with one extra row above and below for the 3x3
        # depth-wise convolution; the rows computed without their
        # neighbours are dropped, so every output row is the same sum.
        height = x.shape[2]
        bands = []
        for top in range(0, height, rows):
            bottom = min(top + rows, height)
            lo, hi = max(top - 1, 0), min(bottom + 1, height)
            h = conv_gelu(mlp.fc1(x[:, :, lo:hi]), mlp.dwconv.dwconv)
            h = mlp.drop(h[:, :, top - lo:bottom - lo])
            bands.append(conv_binary(h, x[:, :, top:bottom], mlp.fc2, 'add'))
        return torch.cat(bands, dim=2)

    def _band_rows(self, x):
        """Rows of ``x`` per band of the folded MLP (all rows: no
        bands)."""
        return self.units_in_budget(x[:, :, :1], x.shape[2], _MIN_BAND_ROWS)

    def units_in_budget(self, unit, total, least):
        """How many of ``total`` slices like ``unit`` (one image, or one row)
        the folded block may take at once so that its MLP's hidden map fits
        in ``chunk_bytes``; at least ``least``, and ``total`` when nothing
        may be sliced."""
        if not self.chunk_bytes or not _may_slice(unit):
            return total
        hidden = (
            self.mlp.fc1.out_channels * (unit.numel() // unit.shape[1]) *
            unit.element_size())
        return max(least, self.chunk_bytes // max(hidden, 1))

    def forward(self, x):
        if self.with_cp and self.training and x.requires_grad:
            return cp.checkpoint(
                self._forward,
                x,
                use_reentrant=False,
                context_fn=lambda:
                (contextlib.nullcontext(), _frozen_bn_statistics(self)))
        return self._forward(x)

    @torch.no_grad()
    def switch_to_deploy(self):
        """Fold norm1, norm2 and the layer scales into the convolutions."""
        if self.deploy:
            return
        c = self.norm1.num_features
        ls1 = (
            self.layer_scale_1.detach() if self.layer_scale_1 is not None else
            self.norm1.weight.new_ones(c))
        ls2 = (
            self.layer_scale_2.detach() if self.layer_scale_2 is not None else
            self.norm2.weight.new_ones(c))
        scale1, shift1 = _bn_affine(self.norm1)
        attn = self.attn
        # x + ls1 * (proj_2(z) + bn1(x))
        #   = x * (1 + ls1 * s1) + [ls1 * proj_2(z) + ls1 * t1]
        _fold_bn_into_next_conv(self.norm1, attn.proj_1)
        _scale_conv_output(attn.proj_2, ls1)
        attn.proj_2.bias.add_(ls1 * shift1)
        self.register_buffer('shortcut_scale',
                             (1 + ls1 * scale1).view(-1, 1, 1).clone())
        _fold_bn_into_next_conv(self.norm2, self.mlp.fc1)
        _scale_conv_output(self.mlp.fc2, ls2)
        for conv in self.attn.spatial_gating_unit.children():
            if isinstance(conv, nn.Conv2d):
                undilate_(conv)
        self.norm1 = nn.Identity()
        self.norm2 = nn.Identity()
        self.layer_scale_1 = self.layer_scale_2 = None
        self.drop_path = nn.Identity()
        self.deploy = True


@MODELS.register_module()
class VAN(BaseModule):
    """Visual Attention Network.

    A PyTorch implementation of `Visual Attention Network
    <https://arxiv.org/abs/2202.09741>`_, with the Large Separable Kernel
    Attention of `LSKA <https://arxiv.org/abs/2309.01439>`_ as an
    alternative attention.

    Args:
        arch (str | dict): One of ``b0``-``b6`` (aliases ``t``/``tiny``,
            ``s``/``small``, ``b``/``base``, ``l``/``large``), or a dict with
            keys ``embed_dims``, ``depths`` and ``mlp_ratios`` (four values
            each). Defaults to ``'tiny'``.
        attention (str): ``'lka'`` (VAN) or ``'lska'``. Defaults to ``'lka'``.
        kernel_size (int, optional): Large kernel size. Defaults to 21 for
            LKA and 23 for LSKA (the same decomposition); LSKA supports 7,
            11, 23, 35, 41 and 53.
        in_channels (int): Input channels. Defaults to 3.
        drop_rate (float): Dropout in the MLPs. Defaults to 0.
        drop_path_rate (float): Stochastic depth of the last block; it rises
            linearly from 0 over all blocks. Defaults to 0.
        out_indices (Sequence[int] | int): Stages whose outputs (after their
            LayerNorm) are returned. Defaults to ``(3, )``.
        frozen_stages (int): Stages ``0..frozen_stages`` are frozen
            (no gradients, eval mode), as in mmpretrain; -1 freezes nothing.
        norm_eval (bool): Keep every BatchNorm in eval mode while training.
            Defaults to False.
        norm_cfg (dict): Config of the BatchNorms in patch embeddings and
            blocks, e.g. ``dict(type='SyncBN')``. Defaults to BN.
        out_norm_cfg (dict): Config of the LayerNorm closing each stage.
            Defaults to ``dict(type='LN', eps=1e-6)`` as in the released
            classifiers; the segmentation release used eps 1e-5.
        layer_scale_init_value (float): Defaults to 1e-2.
        with_cp (bool): Activation checkpointing in every block. Defaults to
            False.
        pretrained (str, optional): A checkpoint reference; the same as
            ``init_cfg=dict(type='Pretrained', checkpoint=pretrained)``
            (mmseg's segmentors pass it). Defaults to None.
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained',
            checkpoint='mmvan://van-b0_3rdparty_in1k')``: a path, an URL
            or a zoo name, in any format mmvan converts, checked key by key
            (add ``strict=False`` to load only what fits).

    Examples:
        >>> import torch
        >>> from mmvan.models import VAN
        >>> model = VAN(arch='b0', out_indices=(0, 1, 2, 3)).eval()
        >>> outs = model(torch.rand(1, 3, 65, 97))
        >>> [tuple(o.shape) for o in outs]
        [(1, 32, 17, 25), (1, 64, 9, 13), (1, 160, 5, 7), (1, 256, 3, 4)]
    """
    arch_zoo = {
        **dict.fromkeys(
            ['b0', 't', 'tiny'], {
                'embed_dims': [32, 64, 160, 256],
                'depths': [3, 3, 5, 2],
                'mlp_ratios': [8, 8, 4, 4]
            }),
        **dict.fromkeys(
            ['b1', 's', 'small'], {
                'embed_dims': [64, 128, 320, 512],
                'depths': [2, 2, 4, 2],
                'mlp_ratios': [8, 8, 4, 4]
            }),
        **dict.fromkeys(
            ['b2', 'b', 'base'], {
                'embed_dims': [64, 128, 320, 512],
                'depths': [3, 3, 12, 3],
                'mlp_ratios': [8, 8, 4, 4]
            }),
        **dict.fromkeys(
            ['b3', 'l', 'large'], {
                'embed_dims': [64, 128, 320, 512],
                'depths': [3, 5, 27, 3],
                'mlp_ratios': [8, 8, 4, 4]
            }),
        'b4': {
            'embed_dims': [64, 128, 320, 512],
            'depths': [3, 6, 40, 3],
            'mlp_ratios': [8, 8, 4, 4]
        },
        'b5': {
            'embed_dims': [96, 192, 480, 768],
            'depths': [3, 3, 24, 3],
            'mlp_ratios': [8, 8, 4, 4]
        },
        'b6': {
            'embed_dims': [96, 192, 384, 768],
            'depths': [6, 6, 90, 6],
            'mlp_ratios': [8, 8, 4, 4]
        },
    }
    num_stages = 4

    def __init__(self,
                 arch='tiny',
                 attention='lka',
                 kernel_size=None,
                 in_channels=3,
                 drop_rate=0.,
                 drop_path_rate=0.,
                 out_indices=(3, ),
                 frozen_stages=-1,
                 norm_eval=False,
                 norm_cfg=dict(type='BN'),
                 out_norm_cfg=dict(type='LN', eps=1e-6),
                 layer_scale_init_value=1e-2,
                 with_cp=False,
                 pretrained=None,
                 init_cfg=None):
        if pretrained is not None:
            # mmseg's segmentors hand ``pretrained=`` to their backbone.
            if init_cfg is not None:
                raise ConfigError('VAN: give pretrained or init_cfg, not '
                                  'both.')
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = self._parse_arch(arch)
        attention = str(attention).lower()
        if attention not in ATTENTIONS:
            raise ConfigError(f'Unknown attention {attention!r}; choose one '
                              f'of {sorted(ATTENTIONS)}.')
        if kernel_size is None:
            kernel_size = 21 if attention == 'lka' else 23
        self.attention = attention
        self.kernel_size = kernel_size
        self.embed_dims = self.arch_settings['embed_dims']
        self.depths = self.arch_settings['depths']
        self.mlp_ratios = self.arch_settings['mlp_ratios']
        self.out_indices = self._parse_out_indices(out_indices)
        if not -1 <= frozen_stages < self.num_stages:
            raise ConfigError(f'frozen_stages must be in [-1, '
                              f'{self.num_stages - 1}], got {frozen_stages}.')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.deploy = False

        total = sum(self.depths)
        # Stochastic depth rises linearly from 0 to drop_path_rate.
        dpr = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        cur = 0
        for i in range(self.num_stages):
            patch_embed = OverlapPatchEmbed(
                in_channels if i == 0 else self.embed_dims[i - 1],
                self.embed_dims[i],
                patch_size=7 if i == 0 else 3,
                stride=4 if i == 0 else 2,
                norm_cfg=norm_cfg)
            blocks = nn.ModuleList([
                VANBlock(
                    self.embed_dims[i],
                    mlp_ratio=self.mlp_ratios[i],
                    attention=attention,
                    kernel_size=kernel_size,
                    drop_rate=drop_rate,
                    drop_path_rate=dpr[cur + j],
                    layer_scale_init_value=layer_scale_init_value,
                    norm_cfg=norm_cfg,
                    with_cp=with_cp) for j in range(self.depths[i])
            ])
            norm = build_norm_layer(out_norm_cfg, self.embed_dims[i])[1]
            cur += self.depths[i]
            self.add_module(f'patch_embed{i + 1}', patch_embed)
            self.add_module(f'block{i + 1}', blocks)
            self.add_module(f'norm{i + 1}', norm)
        self._freeze_stages()

    def _parse_arch(self, arch):
        if isinstance(arch, str):
            key = arch.lower()
            if key not in self.arch_zoo:
                raise ConfigError(
                    f'Unknown VAN arch {arch!r}; valid names are '
                    f'{sorted(self.arch_zoo)} or a dict with embed_dims, '
                    f'depths and mlp_ratios.')
            return copy.deepcopy(self.arch_zoo[key])
        if not isinstance(arch, dict):
            raise ConfigError(f'arch must be a str or a dict, got {arch!r}.')
        required = {'embed_dims', 'depths', 'mlp_ratios'}
        if set(arch) != required:
            raise ConfigError(f'A custom VAN arch needs exactly the keys '
                              f'{sorted(required)}, got {sorted(arch)}.')
        for key in required:
            if len(arch[key]) != self.num_stages:
                raise ConfigError(f'arch[{key!r}] needs {self.num_stages} '
                                  f'values, got {arch[key]!r}.')
        return copy.deepcopy(arch)

    def _parse_out_indices(self, out_indices):
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        parsed = []
        for index in out_indices:
            if not -self.num_stages <= index < self.num_stages:
                raise ConfigError(f'out_indices must be in '
                                  f'[0, {self.num_stages - 1}], got {index}.')
            parsed.append(index % self.num_stages)
        return tuple(sorted(set(parsed)))

    def init_weights(self):
        """Initialise as the official code does, or load ``init_cfg``'s
        pretrained checkpoint.

        ``dict(type='Pretrained', checkpoint=REF)`` takes a path, an URL or
        a zoo name (``mmvan://van-b0_3rdparty_in1k``) in any checkpoint
        format mmvan converts; every backbone tensor must arrive with its
        shape unless ``strict=False`` is added (see
        :func:`mmvan.zoo.load_pretrained`).
        """
        pretrained = (
            isinstance(self.init_cfg, dict)
            and self.init_cfg.get('type') == 'Pretrained')
        if pretrained:
            if getattr(self, '_is_init', False):
                return
            from mmvan.zoo.loader import load_pretrained
            load_pretrained(self, self.init_cfg)
            self._is_init = True
            return
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv2d):
                fan_out = (
                    m.kernel_size[0] * m.kernel_size[1] * m.out_channels //
                    m.groups)
                nn.init.normal_(m.weight, 0, (2.0 / fan_out)**0.5)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        super().init_weights()

    def stage_modules(self, i):
        """The patch embedding, blocks and norm of stage ``i``."""
        return (getattr(self, f'patch_embed{i + 1}'),
                getattr(self, f'block{i + 1}'), getattr(self, f'norm{i + 1}'))

    def _freeze_stages(self):
        for i in range(self.frozen_stages + 1):
            for m in self.stage_modules(i):
                m.eval()
                for param in m.parameters():
                    param.requires_grad = False

    def train(self, mode=True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def forward(self, x):
        # Stay in the caller's memory format: a channels-last input keeps
        # every feature map channels-last (faster on CPU), any other gets
        # contiguous NCHW maps.
        memory_format = (
            torch.channels_last if x.dim() == 4 and not x.is_contiguous()
            and x.is_contiguous(memory_format=torch.channels_last) else
            torch.contiguous_format)
        outs = []
        for i in range(self.num_stages):
            patch_embed, blocks, norm = self.stage_modules(i)
            x = patch_embed(x)
            x = self._run_blocks(blocks, x)
            # LayerNorm over channels.
            x = norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            x = x.contiguous(memory_format=memory_format)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _chunk_size(self, blocks, x):
        """How many images of ``x`` one pass through ``blocks`` takes."""
        if not (self.deploy and len(blocks)):
            return x.shape[0]
        return blocks[0].units_in_budget(x[:1], x.shape[0], 1)

    def _run_blocks(self, blocks, x):
        # The folded model has no batch statistics, so every image is
        # independent. Running a stage's blocks over slices of the batch
        # keeps its widest activation (the MLP's hidden map) within the
        # blocks' ``chunk_bytes``: smaller buffers are reused by the memory
        # allocator instead of being mapped, page-faulted and returned to the
        # system at every convolution. The results are the same images
        # computed alone.
        step = self._chunk_size(blocks, x)
        if step >= x.shape[0]:
            for block in blocks:
                x = block(x)
            return x
        parts = []
        for part in x.split(step):
            for block in blocks:
                part = block(part)
            parts.append(part)
        return torch.cat(parts)

    def switch_to_deploy(self, chunk_mib=8):
        """Fold every BatchNorm and layer scale into a convolution, in place.

        The folded model computes the same function in eval mode with fewer
        operations. It cannot be trained any more, so the model must be in
        eval mode (``model.eval()``) and stays so.

        Args:
            chunk_mib (float): On CPU without autograd, the folded model
                runs each stage's blocks over slices of the batch whose MLP
                hidden map fits in this many MiB (at least one image per
                slice), and the MLP of an image larger than that over bands
                of rows. This avoids re-allocating large buffers on every
                convolution; the outputs do not change. 0 runs whole
                batches and images. Defaults to 8.
        """
        if chunk_mib < 0:
            raise ConfigError(f'chunk_mib must be >= 0, got {chunk_mib}.')
        if not self.deploy and self.training:
            raise RuntimeError(
                'VAN.switch_to_deploy() folds BatchNorm running statistics '
                'and is only valid for inference: call model.eval() first.')
        for i in range(self.num_stages):
            patch_embed, blocks, _ = self.stage_modules(i)
            if not self.deploy:
                patch_embed.switch_to_deploy()
            for block in blocks:
                block.switch_to_deploy()
                block.chunk_bytes = int(chunk_mib * 2**20)
        self.deploy = True
        return self
