# Copyright (c) mmvan contributors. All rights reserved.
"""What ``tools/model_converters/van2mmvan.py`` runs: a VAN / LSKA
checkpoint of any known format written in mmvan's, checked key by key, under
a name that carries its sha256 (:func:`convert_checkpoint`)."""
import os
import os.path as osp
import tempfile
from typing import Callable, List, Optional

import torch
import torch.nn as nn

from mmvan.converters import (ConversionResult, convert_state_dict,
                              extract_state_dict)
from mmvan.engine.hooks.ema_hook import checkpoint_weights
from mmvan.models import VAN
from mmvan.utils.atomic import SaveError, explain_os_error
from mmvan.utils.errors import UserError
from mmvan.zoo import file_sha256, read_checkpoint, resolve, save_checkpoint

__all__ = ['SHORT_NAMES', 'build_model', 'convert_checkpoint', 'output_name']

# Arch aliases of VAN.arch_zoo -> the b0-b6 names used everywhere.
SHORT_NAMES = {
    't': 'b0',
    'tiny': 'b0',
    's': 'b1',
    'small': 'b1',
    'b': 'b2',
    'base': 'b2',
    'l': 'b3',
    'large': 'b3'
}


def output_name(arch_info: dict, task: str) -> str:
    """The zoo's vocabulary: ``van-b0_3rdparty_in1k``,
    ``van-lska-b1_3rdparty_in1k`` (k=23), ``van-lska-b0-k7_...``."""
    arch = arch_info['arch']
    name = arch if isinstance(arch, str) else 'custom'
    name = SHORT_NAMES.get(name, name)
    if arch_info['attention'] == 'lska':
        name = f'lska-{name}'
        if arch_info['kernel_size'] != 23:
            name += f'-k{arch_info["kernel_size"]}'
    suffix = 'in1k' if task == 'cls' else 'backbone'
    return f'van-{name}_3rdparty_{suffix}'


def build_model(arch_info: dict, task: str) -> nn.Module:
    """The mmvan model that the converted weights must fit."""
    backbone = VAN(
        arch=arch_info['arch'],
        attention=arch_info['attention'],
        kernel_size=arch_info['kernel_size'],
        out_norm_cfg=dict(type='LN', eps=arch_info['out_norm_eps']))
    model = nn.Module()
    model.backbone = backbone
    if task == 'cls':
        model.head = nn.Module()
        model.head.fc = nn.Linear(backbone.embed_dims[-1],
                                  arch_info['num_classes'])
    return model.eval()


def verify(result: ConversionResult, state_dict: dict, task: str) -> List[str]:
    """Load strictly, run, and compare with mmpretrain where possible."""
    model = build_model(result.arch, task)
    model.load_state_dict(result.state_dict, strict=True)
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        feats = model.backbone(x)[-1]
        if task == 'cls':
            logits = model.head.fc(feats.mean((2, 3)))
            if not torch.isfinite(logits).all():
                raise UserError('verify: the converted model outputs '
                                'non-finite logits.')
    report = [
        f'verify: loaded strictly ({len(result.state_dict)} tensors), '
        f'forward OK, output {tuple(feats.shape)}'
    ]
    if result.source_format == 'mmpretrain':
        from mmpretrain.models.backbones import \
            VAN as MMPretrainVAN  # optional: the comparison with mmpretrain
        arch = result.arch['arch']
        if isinstance(arch, str):
            arch_cfg = dict(
                zip(('embed_dims', 'depths', 'ffn_ratios'),
                    (model.backbone.embed_dims, model.backbone.depths,
                     model.backbone.mlp_ratios)))
        else:
            arch_cfg = dict(
                embed_dims=arch['embed_dims'],
                depths=arch['depths'],
                ffn_ratios=arch['mlp_ratios'])
        theirs = MMPretrainVAN(
            arch=arch_cfg,
            norm_cfg=dict(type='LN', eps=result.arch['out_norm_eps']))
        source_backbone = {
            k[len('backbone.'):] if k.startswith('backbone.') else k: v
            for k, v in state_dict.items() if not k.startswith('head.')
        }
        theirs.load_state_dict(source_backbone, strict=True)
        theirs.eval()
        with torch.no_grad():
            diff = (theirs(x)[-1] - feats).abs().max().item()
        report.append(f'verify: max |mmvan - mmpretrain| on the last stage '
                      f'= {diff:.3g}')
        if diff > 1e-4:
            raise UserError('verify: outputs differ from mmpretrain\'s '
                            f'VAN by {diff:.3g}.')
    return report


def convert_checkpoint(src: str,
                       dst: str,
                       fmt: str = 'auto',
                       task: str = 'cls',
                       arch: Optional[str] = None,
                       weights: str = 'ema',
                       allow_nonfinite: bool = False,
                       check: bool = False,
                       echo: Callable[[str], None] = print) -> str:
    """Convert ``src`` (a path, an URL or ``mmvan://<name>``) into mmvan's
    format and write it under ``dst`` (a ``.pth`` name or a folder), the
    name ending in the first 8 hex digits of its sha256.

    Args:
        fmt (str): The source format, or ``'auto'``.
        task (str): ``'cls'`` (backbone and ``head.fc``) or ``'backbone'``.
        arch (str, optional): Overrides the inferred architecture name.
        weights (str): Of a checkpoint with an EMA: ``'ema'`` or ``'raw'``.
        allow_nonfinite (bool): Convert tensors holding NaN or inf.
        check (bool): Load the result strictly into an mmvan model and run
            it (and compare with mmpretrain's VAN for mmpretrain sources).
        echo (callable): Where the report lines go.

    Returns:
        str: The written file. Nothing is written on any failure.
    """
    if '://' not in src and not osp.isfile(src):
        raise UserError(f'Source checkpoint {src} does not exist.')
    # A path, an URL or mmvan://<name> (downloaded once, checked).
    path = osp.abspath(resolve(src)[0])
    checkpoint = read_checkpoint(path)
    state_dict, which = checkpoint_weights(checkpoint, weights)
    if state_dict is None:
        state_dict = extract_state_dict(checkpoint)
    else:
        echo(f'{src} holds EMA weights and the weights as trained: '
             f'converting {which} (--weights).')
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    arch_override = None
    if arch:
        if arch not in VAN.arch_zoo:
            raise UserError(f'--arch {arch!r} is not one of '
                            f'{sorted(VAN.arch_zoo)}.')
        arch_override = dict(arch=arch)
    result = convert_state_dict(
        state_dict,
        fmt,
        task=task,
        arch=arch_override,
        meta=meta,
        allow_nonfinite=allow_nonfinite)
    report = verify(result, state_dict, task) if check else []
    out = {
        'state_dict': result.state_dict,
        'meta': {
            'mmvan_format': task,
            'source_format': result.source_format,
            'source_file': osp.basename(path),
            'source_sha256': file_sha256(path),
            'arch': result.arch,
            'dropped_keys': result.dropped,
        }
    }
    if dst.endswith(os.sep) or osp.isdir(dst) or not dst.endswith('.pth'):
        folder = dst
        stem = output_name(result.arch, task)
    else:
        folder = osp.dirname(dst) or '.'
        stem = osp.basename(dst)[:-len('.pth')]
    # Save once under a temporary name to learn the file's hash, then
    # rename: a failure at any point leaves no output.
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            suffix='.pth', dir=folder, prefix='.convert-')
    except OSError as e:
        raise SaveError(
            explain_os_error(e, osp.join(folder, stem + '.pth'),
                             None)) from None
    os.close(fd)
    try:
        save_checkpoint(out, tmp, src=path)
        final = osp.join(folder, f'{stem}-{file_sha256(tmp)[:8]}.pth')
        if osp.exists(final) and osp.samefile(final, path):
            raise UserError('Refusing to overwrite the source.')
        os.replace(tmp, final)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    a = result.arch
    arch_text = a['arch'] if isinstance(a['arch'], str) else 'custom'
    echo(f'format: {result.source_format}; arch: {arch_text}, '
         f'{a["attention"].upper()} k={a["kernel_size"]}, '
         f'classes: {a["num_classes"]}; task: {task}')
    if result.dropped:
        echo(f'dropped {len(result.dropped)} keys that are not part of the '
             f'{"classifier" if task == "cls" else "backbone"} '
             f'(e.g. {result.dropped[0]})')
    for line in report:
        echo(line)
    echo(f'saved {final}')
    return final
