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
from mmengine.model import BaseModule, initialize
from mmengine.model.weight_init import trunc_normal_
from torch.nn.modules.batchnorm import _BatchNorm

from mmvan.registry import MODELS
from mmvan.utils.errors import ConfigError
from ..layers import LKA, LSKA, conv_binary, conv_gelu, undilate_
from ..layers.conv_impl import (check_conv_impl, runs_triton,
                                triton_depthwise_gelu)
from ..layers.fusion import (bn_affine, fold_bn_into_next_conv,
                             fold_bn_into_prev_conv, frozen_bn_statistics,
                             scale_conv_output)
from ..layers.residual import scaled_residual
from ..utils.layout import memory_format_of
from ..utils.slicing import MemoryBudget, run_in_bands, run_in_slices

ATTENTIONS = {'lka': LKA, 'lska': LSKA}
# The weight initializer of ``init_cfg=dict(type='Pretrained', ...)``:
# strict, converting loads of any checkpoint reference (registered by
# mmvan.zoo, which mmengine imports for the ``mmvan.`` prefix).
PRETRAINED_INITIALIZER = 'mmvan.PretrainedVAN'


class OverlapPatchEmbed(BaseModule):
    """Strided convolution with overlapping windows, then a norm layer.

    Args:
        in_channels (int): Input channels.
        embed_dims (int): Output channels.
        patch_size (int): Kernel size of the convolution (padded by half).
        stride (int): Its stride.
        norm_cfg (dict): Config of the norm layer. Defaults to BN.
        deploy (bool): Build the folded form, the norm already inside the
            convolution. Defaults to False.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 in_channels,
                 embed_dims,
                 patch_size,
                 stride,
                 norm_cfg=dict(type='BN'),
                 deploy=False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.proj = nn.Conv2d(
            in_channels,
            embed_dims,
            patch_size,
            stride=stride,
            padding=patch_size // 2)
        self.norm = (
            nn.Identity() if deploy else build_norm_layer(
                norm_cfg, embed_dims)[1])

    def forward(self, x):
        return self.norm(self.proj(x))

    def switch_to_deploy(self):
        """Fold the norm into the convolution, in place."""
        if isinstance(self.norm, nn.Identity):
            return
        fold_bn_into_prev_conv(self.proj, self.norm)
        self.norm = nn.Identity()


class DWConv(BaseModule):
    """3x3 depth-wise convolution (kept as a module for the official key
    name ``mlp.dwconv.dwconv``).

    Args:
        embed_dims (int): Number of channels.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self, embed_dims, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.dwconv = nn.Conv2d(
            embed_dims, embed_dims, 3, padding=1, groups=embed_dims)

    def forward(self, x):
        return self.dwconv(x)


class Mlp(BaseModule):
    """``fc2(drop(act(dwconv(fc1(x)))))`` with point-wise convolutions.

    Args:
        embed_dims (int): Input and output channels.
        hidden_dims (int): Channels of the hidden map.
        drop_rate (float): Dropout after the activation and after ``fc2``.
            Defaults to 0.
        init_cfg (dict, optional): Initialization config. Defaults to None.
        conv_impl (str): ``'auto'``, ``'triton'`` or ``'torch'``, see
            :mod:`~mmvan.models.layers.conv_impl`. Defaults to ``'auto'``.
        fused_act (bool): Where the Triton kernels run, compute the
            depth-wise convolution, its bias and GELU in one kernel
            (:mod:`mmvan.ops.dwconv_gelu`); False runs the depth-wise
            kernel and GELU apart. Defaults to True.
    """

    def __init__(self,
                 embed_dims,
                 hidden_dims,
                 drop_rate=0.,
                 init_cfg=None,
                 conv_impl='auto',
                 fused_act=True):
        super().__init__(init_cfg=init_cfg)
        self.conv_impl = check_conv_impl(conv_impl)
        self.fused_act = fused_act
        self.fc1 = nn.Conv2d(embed_dims, hidden_dims, 1)
        self.dwconv = DWConv(hidden_dims)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden_dims, embed_dims, 1)
        self.drop = nn.Dropout(drop_rate)

    def _triton_hidden(self, h):
        """``act(dwconv(h))`` on the Triton kernels, or None where they do
        not run (or the activation is not the exact GELU they compute)."""
        if not runs_triton(self.conv_impl, h):
            return None
        if not (isinstance(self.act, nn.GELU)
                and self.act.approximate == 'none'):
            return None
        return triton_depthwise_gelu(self.dwconv.dwconv, h, self.fused_act)

    def hidden(self, h, folded=False):
        """``act(dwconv(h))``, the hidden map after ``fc1``; ``folded``:
        on CPU with the folded model's fused post-op."""
        out = self._triton_hidden(h)
        if out is not None:
            return out
        if folded:
            return conv_gelu(h, self.dwconv.dwconv)
        return self.act(self.dwconv(h))

    def forward(self, x):
        x = self.drop(self.hidden(self.fc1(x)))
        return self.drop(self.fc2(x))


class SpatialAttention(BaseModule):
    """``proj_2(attention(gelu(proj_1(x)))) + x``.

    Args:
        embed_dims (int): Number of channels.
        attention (str): ``'lka'`` or ``'lska'``. Defaults to ``'lka'``.
        kernel_size (int): Large kernel size of the attention. Defaults to
            21.
        init_cfg (dict, optional): Initialization config. Defaults to None.
        conv_impl (str): ``'auto'``, ``'triton'`` or ``'torch'``, see
            :mod:`~mmvan.models.layers.conv_impl`. Defaults to ``'auto'``.
    """

    def __init__(self,
                 embed_dims,
                 attention='lka',
                 kernel_size=21,
                 init_cfg=None,
                 conv_impl='auto'):
        super().__init__(init_cfg=init_cfg)
        self.proj_1 = nn.Conv2d(embed_dims, embed_dims, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = ATTENTIONS[attention](
            embed_dims, kernel_size=kernel_size, conv_impl=conv_impl)
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
        deploy (bool): Build the folded form (see :meth:`switch_to_deploy`):
            no norms, layer scales or stochastic depth, and a per-channel
            ``shortcut_scale``. Defaults to False.
        init_cfg (dict, optional): Initialization config. Defaults to None.
        conv_impl (str): ``'auto'``, ``'triton'`` or ``'torch'``, see
            :mod:`~mmvan.models.layers.conv_impl`. Defaults to ``'auto'``.
        fused_mlp_act (bool): See :class:`Mlp`'s ``fused_act``. Defaults to
            True.
        fused_residual (bool): Where the Triton kernels run, each residual
            add with its layer scale and stochastic depth is one
            element-wise operation
            (:func:`~mmvan.models.layers.residual.scaled_residual`); False
            runs them apart. Defaults to True.
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
                 deploy=False,
                 init_cfg=None,
                 conv_impl='auto',
                 fused_mlp_act=True,
                 fused_residual=True):
        super().__init__(init_cfg=init_cfg)
        self.with_cp = with_cp
        self.deploy = False
        self.conv_impl = check_conv_impl(conv_impl)
        self.fused_residual = fused_residual
        self.norm1 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.attn = SpatialAttention(
            embed_dims, attention, kernel_size, conv_impl=conv_impl)
        self.drop_path = (
            DropPath(drop_path_rate) if drop_path_rate > 0. else nn.Identity())
        self.norm2 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.mlp = Mlp(
            embed_dims,
            int(embed_dims * mlp_ratio),
            drop_rate,
            conv_impl=conv_impl,
            fused_act=fused_mlp_act)
        if layer_scale_init_value > 0:
            self.layer_scale_1 = nn.Parameter(layer_scale_init_value *
                                              torch.ones(embed_dims))
            self.layer_scale_2 = nn.Parameter(layer_scale_init_value *
                                              torch.ones(embed_dims))
        else:
            self.layer_scale_1 = self.layer_scale_2 = None
        if deploy:
            self._become_folded(torch.ones(embed_dims, 1, 1))

    def _scale(self, x, layer_scale):
        if layer_scale is None:
            return x
        # In x's dtype: under autocast an fp32 parameter would otherwise
        # turn the residual stream back to fp32.
        return x * layer_scale.to(x.dtype).view(-1, 1, 1)

    def _fuses_residual(self, x):
        return self.fused_residual and runs_triton(self.conv_impl, x)

    def _forward(self, x, band_rows=None):
        if self.deploy:
            return self._forward_deploy(x, band_rows)
        if self._fuses_residual(x):
            drop = getattr(self.drop_path, 'drop_prob', 0.)
            training = self.drop_path.training
            x = scaled_residual(x, self.attn(self.norm1(x)),
                                self.layer_scale_1, drop, training)
            return scaled_residual(x, self.mlp(self.norm2(x)),
                                   self.layer_scale_2, drop, training)
        x = x + self.drop_path(
            self._scale(self.attn(self.norm1(x)), self.layer_scale_1))
        x = x + self.drop_path(
            self._scale(self.mlp(self.norm2(x)), self.layer_scale_2))
        return x

    def _forward_deploy(self, x, band_rows=None):
        # norm1, norm2 and both layer scales live in the convolutions; the
        # attention shortcut became a per-channel scale of x. Each
        # element-wise step rides on the convolution before it.
        attn, mlp = self.attn, self.mlp
        a = conv_gelu(x, attn.proj_1)
        a = attn.spatial_gating_unit.fused_forward(a)
        if self._fuses_residual(x):
            x = scaled_residual(attn.proj_2(a), x, self.shortcut_scale)
        else:
            x = conv_binary(a, x * self.shortcut_scale.to(x.dtype),
                            attn.proj_2, 'add')

        def mlp_with_shortcut(band, own):
            h = mlp.hidden(mlp.fc1(band), folded=True)
            return conv_binary(
                mlp.drop(h[:, :, own]), band[:, :, own], mlp.fc2, 'add')

        # The MLP's hidden map is mlp_ratio times wider than x; over bands
        # of rows it stays within the memory budget (see
        # mmvan.models.utils.slicing). One row of context on each side
        # serves the 3x3 depth-wise convolution.
        return run_in_bands(mlp_with_shortcut, x, band_rows or x.shape[2])

    def forward(self, x, band_rows=None):
        """Args:
            x (Tensor): ``(N, C, H, W)``.
            band_rows (int, optional): In the folded form, run the MLP over
                bands of this many rows. Defaults to all rows.
        """
        if self.with_cp and self.training and x.requires_grad:
            return cp.checkpoint(
                self._forward,
                x,
                use_reentrant=False,
                context_fn=lambda:
                (contextlib.nullcontext(), frozen_bn_statistics(self)))
        return self._forward(x, band_rows)

    def _become_folded(self, shortcut_scale):
        self.register_buffer('shortcut_scale', shortcut_scale)
        self.norm1 = nn.Identity()
        self.norm2 = nn.Identity()
        self.layer_scale_1 = self.layer_scale_2 = None
        self.drop_path = nn.Identity()
        self.deploy = True

    @torch.no_grad()
    def switch_to_deploy(self):
        """Fold norm1, norm2 and the layer scales into the convolutions, in
        place, and on CPU give the dilated depth-wise kernels their dense
        form (see :func:`mmvan.models.layers.undilate_`)."""
        if not self.deploy:
            self._fold()
        for conv in self.attn.spatial_gating_unit.children():
            if isinstance(conv, nn.Conv2d):
                undilate_(conv)

    def _fold(self):
        c = self.norm1.num_features
        ls1 = (
            self.layer_scale_1.detach() if self.layer_scale_1 is not None else
            self.norm1.weight.new_ones(c))
        ls2 = (
            self.layer_scale_2.detach() if self.layer_scale_2 is not None else
            self.norm2.weight.new_ones(c))
        scale1, shift1 = bn_affine(self.norm1)
        attn = self.attn
        # x + ls1 * (proj_2(z) + bn1(x))
        #   = x * (1 + ls1 * s1) + [ls1 * proj_2(z) + ls1 * t1]
        fold_bn_into_next_conv(self.norm1, attn.proj_1)
        scale_conv_output(attn.proj_2, ls1)
        attn.proj_2.bias.add_(ls1 * shift1)
        fold_bn_into_next_conv(self.norm2, self.mlp.fc1)
        scale_conv_output(self.mlp.fc2, ls2)
        self._become_folded((1 + ls1 * scale1).view(-1, 1, 1).clone())


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
        out_norm_cfg (dict, optional): Config of the LayerNorm closing each
            stage. Defaults to ``dict(type='LN', eps=1e-6)`` as in the
            released classifiers; the segmentation release and mmpretrain
            used eps 1e-5. Left at the default, the eps of a pretrained
            checkpoint's format is adopted when it is loaded.
        layer_scale_init_value (float): Defaults to 1e-2.
        with_cp (bool): Activation checkpointing in every block. Defaults to
            False.
        deploy (bool): Build the folded inference form directly (the
            structure :meth:`switch_to_deploy` leaves), so that a folded
            checkpoint (``tools/model_converters/fold_van.py``) loads
            strictly. Defaults to False.
        pretrained (str, optional): A checkpoint reference; the same as
            ``init_cfg=dict(type='Pretrained', checkpoint=pretrained)``
            (mmseg's segmentors pass it). Defaults to None.
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained',
            checkpoint='mmvan://van-b0_3rdparty_in1k')``: a path, an URL
            or a zoo name, in any format mmvan converts, checked key by key
            (add ``strict=False`` to load only what fits).
        conv_impl (str): What runs the depth-wise convolutions: ``'auto'``
            (the Triton kernels of :mod:`mmvan.ops` on CUDA, the existing
            paths on CPU), ``'triton'`` or ``'torch'`` (PyTorch's ops
            everywhere); see :mod:`mmvan.models.layers.conv_impl`. Defaults
            to ``'auto'``.
        fused_mlp_act (bool): Where the Triton kernels run, the MLP's
            depth-wise convolution, bias and GELU are one kernel
            (:mod:`mmvan.ops.dwconv_gelu`); False runs them apart. Defaults
            to True.
        fused_residual (bool): Where the Triton kernels run, each block's
            residual adds, with their layer scales and stochastic depth, are
            one element-wise operation each
            (:mod:`mmvan.models.layers.residual`); False runs them apart.
            Defaults to True.

    Attributes:
        out_channels (list[int]): Channels of each returned feature map.
        feature_info (list[dict]): For every stage, its channels
            (``num_chs``), stride (``reduction``) and output module name
            (``module``), as in timm.

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
                 out_norm_cfg=None,
                 layer_scale_init_value=1e-2,
                 with_cp=False,
                 deploy=False,
                 pretrained=None,
                 init_cfg=None,
                 conv_impl='auto',
                 fused_mlp_act=True,
                 fused_residual=True):
        if pretrained is not None:
            # mmseg's segmentors hand ``pretrained=`` to their backbone.
            if init_cfg is not None:
                raise ConfigError('VAN: give pretrained or init_cfg, not '
                                  'both.')
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = self._parse_arch(arch)
        # Whether the config chose the stage norms' eps (see the loader).
        self.out_norm_cfg_given = out_norm_cfg is not None
        if out_norm_cfg is None:
            out_norm_cfg = dict(type='LN', eps=1e-6)
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
        self.deploy = deploy
        self.conv_impl = check_conv_impl(conv_impl)
        self.fused_mlp_act = fused_mlp_act
        self.fused_residual = fused_residual
        self.memory_budget = MemoryBudget(0)
        self.hidden_dims = [
            int(c * r) for c, r in zip(self.embed_dims, self.mlp_ratios)
        ]
        self.feature_info = [
            dict(
                num_chs=self.embed_dims[i],
                reduction=2**(i + 2),
                module=f'norm{i + 1}') for i in range(self.num_stages)
        ]
        self.out_channels = [self.embed_dims[i] for i in self.out_indices]

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
                norm_cfg=norm_cfg,
                deploy=deploy)
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
                    with_cp=with_cp,
                    deploy=deploy,
                    conv_impl=conv_impl,
                    fused_mlp_act=fused_mlp_act,
                    fused_residual=fused_residual)
                for j in range(self.depths[i])
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
        shape unless ``strict=False`` is added. The load is the registered
        weight initializer ``mmvan.PretrainedVAN``
        (:class:`mmvan.zoo.PretrainedVAN`), built by mmengine's
        ``initialize``; the official random initialisation is not applied
        then, and a second call loads nothing.
        """
        pretrained = (
            isinstance(self.init_cfg, dict) and self.init_cfg.get('type')
            in ('Pretrained', PRETRAINED_INITIALIZER))
        if pretrained:
            if getattr(self, '_is_init', False):
                return
            initialize(self, dict(self.init_cfg, type=PRETRAINED_INITIALIZER))
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
        memory_format = memory_format_of(x)
        outs = []
        for i in range(self.num_stages):
            patch_embed, blocks, norm = self.stage_modules(i)
            x = patch_embed(x)
            x = self._run_blocks(i, blocks, x)
            # LayerNorm over channels.
            x = norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            x = x.contiguous(memory_format=memory_format)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _run_blocks(self, i, blocks, x):
        if not self.deploy:
            for block in blocks:
                x = block(x)
            return x
        # The folded model computes every image alone: within the memory
        # budget, over slices of the batch and bands of rows (see
        # mmvan.models.utils.slicing).
        budget, hidden = self.memory_budget, self.hidden_dims[i]

        def run(part):
            rows = budget.rows_per_band(part, hidden)
            for block in blocks:
                part = block(part, band_rows=rows)
            return part

        return run_in_slices(run, x, budget.images_per_slice(x, hidden))

    def set_conv_impl(self,
                      conv_impl,
                      fused_mlp_act=None,
                      fused_residual=None):
        """Switch what runs the depth-wise convolutions and which fusions
        run with the Triton kernels (see ``conv_impl``, ``fused_mlp_act``
        and ``fused_residual``; None keeps the current choice), in place;
        returns self."""
        conv_impl = check_conv_impl(conv_impl)
        self.conv_impl = conv_impl
        if fused_mlp_act is not None:
            self.fused_mlp_act = fused_mlp_act
        if fused_residual is not None:
            self.fused_residual = fused_residual
        for m in self.modules():
            if m is not self and hasattr(m, 'conv_impl'):
                m.conv_impl = conv_impl
            if isinstance(m, Mlp):
                m.fused_act = self.fused_mlp_act
            if isinstance(m, VANBlock):
                m.fused_residual = self.fused_residual
        return self

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

        On a model that is folded already (or built with ``deploy=True``)
        it sets the budget and, on CPU, gives the dilated depth-wise kernels
        their dense form; its state dict keeps the dilated ones.
        """
        budget = MemoryBudget(chunk_mib)
        if not self.deploy and self.training:
            raise RuntimeError(
                'VAN.switch_to_deploy() folds BatchNorm running statistics '
                'and is only valid for inference: call model.eval() first.')
        for i in range(self.num_stages):
            patch_embed, blocks, _ = self.stage_modules(i)
            patch_embed.switch_to_deploy()
            for block in blocks:
                block.switch_to_deploy()
        self.memory_budget = budget
        self.deploy = True
        return self
