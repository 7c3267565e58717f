# Copyright (c) mmvan contributors. All rights reserved.
"""Conversion of state dicts between the formats of :mod:`.formats` and
mmvan's scheme: detection, renaming, architecture inference and a check of
every key against a model built on the meta device.

Reading and writing checkpoint files is :mod:`mmvan.zoo.checkpoint`'s.
"""
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Tuple, Union

import torch

from mmvan.models.backbones.van import VAN
from mmvan.models.layers import LKA_KERNELS, LSKA_KERNELS
from mmvan.utils.checkpoint import key_mismatches
from mmvan.utils.errors import ConversionError
from .formats import FORMATS, FORMATS_BY_NAME, CheckpointFormat

StateDict = Dict[str, torch.Tensor]

STATE_DICT_KEYS = ('state_dict', 'model', 'state_dict_ema', 'module')


@dataclass
class ConversionResult:
    state_dict: 'OrderedDict[str, torch.Tensor]'
    source_format: str
    arch: dict
    dropped: list = field(default_factory=list)

    @property
    def backbone_state_dict(self) -> StateDict:
        """The backbone weights without the ``backbone.`` prefix."""
        return OrderedDict((k[len('backbone.'):], v)
                           for k, v in self.state_dict.items()
                           if k.startswith('backbone.'))


def extract_state_dict(checkpoint: object) -> StateDict:
    """The tensor dict inside a loaded checkpoint."""
    if not isinstance(checkpoint, dict):
        raise ConversionError(
            f'Expected a dict of tensors, got {type(checkpoint).__name__}.')
    for key in STATE_DICT_KEYS:
        inner = checkpoint.get(key)
        if isinstance(inner, dict) and inner and all(
                isinstance(v, torch.Tensor) for v in inner.values()):
            return inner
    if checkpoint and all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return checkpoint
    raise ConversionError(
        f'Found no state dict in the checkpoint (looked at the top level and '
        f'under {list(STATE_DICT_KEYS)}; top-level keys: '
        f'{sorted(checkpoint)[:10]}).')


def detect_format(keys: Iterable[str], meta: Optional[dict] = None) -> str:
    """Name of the format of a state dict with these keys."""
    if isinstance(meta, dict) and meta.get('mmvan_format'):
        return 'mmvan'
    keys = list(keys)
    for fmt in FORMATS:
        if all(
                any(re.search(pattern, k) for k in keys)
                for pattern in fmt.detect):
            return fmt.name
    raise ConversionError(
        'Unknown checkpoint format: no key looks like any known VAN layout '
        f'({", ".join(f.name for f in FORMATS)}). First keys: '
        f'{keys[:5]}. Pass --format to force one.')


def strip_prefix(key: str, prefixes: Iterable[str]) -> str:
    """``key`` without the first of ``prefixes`` it starts with."""
    for prefix in prefixes:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def rename_keys(state_dict: Mapping[str, torch.Tensor],
                fmt: Union[str, CheckpointFormat],
                task: str = 'cls') -> Tuple[StateDict, List[str]]:
    """Apply a format's table. Returns ``(renamed, dropped)``; renamed keys
    are in mmvan's scheme (``backbone.*``, ``head.fc.*``)."""
    if isinstance(fmt, str):
        fmt = FORMATS_BY_NAME[fmt]
    renamed, dropped = OrderedDict(), []
    for src_key, value in state_dict.items():
        key = strip_prefix(src_key, fmt.prefixes)
        if any(re.search(p, key) for p in fmt.drop):
            dropped.append(src_key)
            continue
        for pattern, repl in fmt.rules:
            key = re.sub(pattern, repl, key)
        if key.startswith('head.'):
            if task == 'backbone':
                dropped.append(src_key)
                continue
        else:
            key = 'backbone.' + key
        if key in renamed:
            raise ConversionError(
                f'Two source keys map to {key!r} (format {fmt.name}).')
        renamed[key] = value
    return renamed, dropped


def infer_arch(state_dict: Mapping[str, torch.Tensor]) -> dict:
    """Infer the VAN architecture from mmvan-scheme tensors.

    Returns a dict with ``arch`` (a name from the arch table when the
    settings match one, else a custom dict), ``attention``, ``kernel_size``
    and ``num_classes`` (None without a head).
    """
    sd = state_dict
    embed_dims, depths, mlp_ratios = [], [], []
    for i in range(1, 5):
        w = sd.get(f'backbone.patch_embed{i}.proj.weight')
        if w is None:
            raise ConversionError(
                f'Missing backbone.patch_embed{i}.proj.weight: cannot infer '
                f'the architecture (is this a VAN checkpoint?).')
        embed_dims.append(w.shape[0])
        blocks = {
            int(m.group(1))
            for m in (re.match(rf'backbone\.block{i}\.(\d+)\.', k) for k in sd)
            if m
        }
        depths.append(len(blocks))
        fc1 = sd.get(f'backbone.block{i}.0.mlp.fc1.weight')
        if fc1 is None:
            raise ConversionError(f'Missing backbone.block{i}.0.mlp.fc1.')
        mlp_ratios.append(fc1.shape[0] // embed_dims[-1])
    sgu = 'backbone.block1.0.attn.spatial_gating_unit.'
    if sgu + 'conv0h.weight' in sd:
        attention, table = 'lska', LSKA_KERNELS
        a = sd[sgu + 'conv0h.weight'].shape[-1]
        b = sd[sgu + 'conv_spatial_h.weight'].shape[-1]
    else:
        attention, table = 'lka', LKA_KERNELS
        a = sd[sgu + 'conv0.weight'].shape[-1]
        b = sd[sgu + 'conv_spatial.weight'].shape[-1]
    sizes = sorted(k for k, (ka, kb, _) in table.items() if (ka, kb) == (a, b))
    if not sizes:
        raise ConversionError(
            f'Unknown {attention.upper()} kernels {a}x{a} + {b}x{b} dilated.')
    # LKA's released (5, 7, 3) is named 21; LSKA's the same is 23.
    kernel_size = sizes[0]
    settings = dict(
        embed_dims=embed_dims, depths=depths, mlp_ratios=mlp_ratios)
    arch = settings
    for name in ('b0', 'b1', 'b2', 'b3', 'b4', 'b5', 'b6'):
        if VAN.arch_zoo[name] == settings:
            arch = name
            break
    head = sd.get('head.fc.weight')
    return dict(
        arch=arch,
        attention=attention,
        kernel_size=kernel_size,
        num_classes=None if head is None else head.shape[0])


def build_reference(arch_info: dict,
                    out_norm_eps: float = 1e-6,
                    task: str = 'cls') -> Dict[str, tuple]:
    """An mmvan backbone (and head) whose keys and shapes a converted
    checkpoint must reproduce. Built on the meta device: no memory used."""
    with torch.device('meta'):
        backbone = VAN(
            arch=arch_info['arch'],
            attention=arch_info['attention'],
            kernel_size=arch_info['kernel_size'],
            out_norm_cfg=dict(type='LN', eps=out_norm_eps))
        shapes = OrderedDict(('backbone.' + k, tuple(v.shape))
                             for k, v in backbone.state_dict().items())
        if task == 'cls' and arch_info.get('num_classes'):
            c = backbone.embed_dims[-1]
            shapes['head.fc.weight'] = (arch_info['num_classes'], c)
            shapes['head.fc.bias'] = (arch_info['num_classes'], )
    return shapes


def check_keys(state_dict: Mapping[str, torch.Tensor],
               expected_shapes: Mapping[str, tuple]) -> None:
    """Every converted key is a model key of the right shape, and every
    model key is produced."""
    missing, unexpected, wrong = key_mismatches(state_dict, expected_shapes)
    problems = []
    if unexpected:
        problems.append(f'{len(unexpected)} source keys map to nothing in '
                        f'the model: {unexpected[:20]}')
    if missing:
        problems.append(f'{len(missing)} model keys are not produced: '
                        f'{missing[:20]}')
    if wrong:
        problems.append(f'{len(wrong)} shapes differ: {wrong[:20]}')
    if problems:
        raise ConversionError('; '.join(problems))


def convert_state_dict(state_dict: Mapping[str, torch.Tensor],
                       fmt: str = 'auto',
                       task: str = 'cls',
                       arch: Optional[dict] = None,
                       meta: Optional[dict] = None,
                       allow_nonfinite: bool = False) -> 'ConversionResult':
    """Convert a source state dict into mmvan's scheme, checking every key.

    Args:
        state_dict (dict): Source tensors.
        fmt (str): A format name or ``'auto'``.
        task (str): ``'cls'`` (backbone + ``head.fc``) or ``'backbone'``.
        arch (dict, optional): Overrides the inferred architecture; keys as
            returned by :func:`infer_arch`.
        meta (dict, optional): The source checkpoint's meta, for detection.
        allow_nonfinite (bool): Convert tensors holding NaN or inf instead
            of refusing them.

    Returns:
        ConversionResult
    """
    if task not in ('cls', 'backbone'):
        raise ConversionError(f"task must be 'cls' or 'backbone', got "
                              f'{task!r}.')
    if fmt == 'auto':
        fmt = detect_format(state_dict.keys(), meta)
    if fmt not in FORMATS_BY_NAME:
        raise ConversionError(f'Unknown format {fmt!r}; known formats: '
                              f'{sorted(FORMATS_BY_NAME)}.')
    spec = FORMATS_BY_NAME[fmt]
    renamed, dropped = rename_keys(state_dict, spec, task)
    arch_info = infer_arch(renamed)
    if arch:
        arch_info.update(arch)
    if task == 'cls' and not arch_info.get('num_classes'):
        raise ConversionError(
            'The source has no classification head (head / classifier '
            'weights); convert it with --task backbone.')
    check_keys(renamed, build_reference(arch_info, task=task))
    if not allow_nonfinite:
        bad = nonfinite_keys(renamed)
        if bad:
            raise ConversionError(
                f'{len(bad)} tensors hold NaN or inf values (e.g. '
                f'{", ".join(bad[:3])}): the source is broken (a diverged '
                f'run?). Pass --allow-nonfinite to convert it anyway.')
    eps = spec.out_norm_eps
    if eps is None:
        arch_meta = (meta or {}).get('arch')
        eps = (arch_meta or {}).get('out_norm_eps') if isinstance(
            arch_meta, dict) else None
    arch_info['out_norm_eps'] = eps or 1e-6
    return ConversionResult(renamed, fmt, arch_info, dropped)


def nonfinite_keys(state_dict: Mapping[str, object]) -> List[str]:
    """Keys of floating-point tensors that hold NaN or inf."""
    return [
        k for k, v in state_dict.items() if isinstance(v, torch.Tensor)
        and v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]


__all__ = [
    'ConversionError', 'ConversionResult', 'StateDict', 'extract_state_dict',
    'detect_format', 'rename_keys', 'strip_prefix', 'infer_arch',
    'build_reference', 'check_keys', 'convert_state_dict', 'nonfinite_keys'
]
