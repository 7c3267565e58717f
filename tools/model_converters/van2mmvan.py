# Copyright (c) mmvan contributors. All rights reserved.
"""Convert a VAN / LSKA checkpoint from any known format into mmvan's.

    python tools/model_converters/van2mmvan.py SRC DST [--verify]

Formats (detected from the keys; ``--format`` forces one): official VAN and
LSKA classification (timm ``.pth.tar``), official VAN segmentation backbones
(mmseg 0.x), the LSKA repository's mmdet/mmseg backbones, mmpretrain / mmcls
VAN and HF transformers ``VanModel`` / ``VanForImageClassification``.

DST is a ``.pth`` file name or a folder. The written name carries the first 8
hex digits of the file's sha256 (``van-b0_3rdparty_in1k-1a2b3c4d.pth``, in the
zoo's vocabulary), as OpenMMLab's published models do. Every source key must
be mapped or explicitly dropped and every model key produced; otherwise
nothing is written.
"""
import argparse
import os
import os.path as osp
import sys
import tempfile
import warnings

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmvan.engine.hooks.ema_hook import checkpoint_weights  # noqa: E402
from mmvan import cli  # noqa: E402

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


def parse_args(argv=None):
    from mmvan.converters import FORMATS_BY_NAME
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        'src',
        help='source checkpoint: a file (.pth, .pth.tar, .bin, '
        '.safetensors), an http(s):// URL or mmvan://<zoo name>')
    parser.add_argument('dst', help='output .pth file or folder')
    parser.add_argument(
        '--format',
        default='auto',
        choices=['auto', *sorted(FORMATS_BY_NAME)],
        help='source format (default: detected)')
    parser.add_argument(
        '--arch',
        help='architecture name (b0-b6), when the inferred one is to be '
        'overridden')
    parser.add_argument(
        '--task',
        default='cls',
        choices=['cls', 'backbone'],
        help='cls: classifier (backbone.* and head.fc.*); backbone: '
        'backbone.* only, for detection / segmentation init')
    parser.add_argument(
        '--allow-nonfinite',
        action='store_true',
        help='convert tensors holding NaN or inf instead of refusing them')
    parser.add_argument(
        '--weights',
        choices=['ema', 'raw'],
        default='ema',
        help='of a checkpoint with an EMA beside its weights (mmvan/mmengine '
        '--ema, timm --model-ema): the EMA (default) or the weights as '
        'trained')
    parser.add_argument(
        '--verify',
        action='store_true',
        help='load the result into an mmvan model strictly and run it; for '
        'mmpretrain sources also compare with mmpretrain\'s VAN')
    return parser.parse_args(argv)


def output_name(arch_info, task):
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


def build_model(arch_info, task):
    """The mmvan model that the converted weights must fit."""
    import torch.nn as nn

    from mmvan.models import VAN
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


def verify(result, state_dict, task):
    """Load strictly, run, and compare with mmpretrain where possible."""
    import torch
    model = build_model(result.arch, task)
    model.load_state_dict(result.state_dict, strict=True)
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        feats = model.backbone(x)[-1]
        if task == 'cls':
            logits = model.head.fc(feats.mean((2, 3)))
            if not torch.isfinite(logits).all():
                raise cli.UserError('verify: the converted model outputs '
                                    'non-finite logits.')
    report = [
        f'verify: loaded strictly ({len(result.state_dict)} tensors), '
        f'forward OK, output {tuple(feats.shape)}'
    ]
    if result.source_format == 'mmpretrain':
        from mmpretrain.models.backbones import VAN as MMPretrainVAN
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
            raise cli.UserError('verify: outputs differ from mmpretrain\'s '
                                f'VAN by {diff:.3g}.')
    return report


def main(argv=None):
    args = parse_args(argv)
    from mmvan.converters import (convert_state_dict, extract_state_dict,
                                  save_atomic, sha256_of)
    from mmvan.models import VAN
    from mmvan.zoo.loader import read_checkpoint, resolve
    if '://' not in args.src and not osp.isfile(args.src):
        raise cli.UserError(f'Source checkpoint {args.src} does not exist.')
    # A path, an URL or mmvan://<name> (downloaded once, checked).
    src = osp.abspath(resolve(args.src)[0])
    checkpoint = read_checkpoint(src)
    state_dict, which = checkpoint_weights(checkpoint, args.weights)
    if state_dict is None:
        state_dict = extract_state_dict(checkpoint)
    else:
        print(f'{args.src} holds EMA weights and the weights as trained: '
              f'converting {which} (--weights).')
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    arch = None
    if args.arch:
        if args.arch not in VAN.arch_zoo:
            raise cli.UserError(f'--arch {args.arch!r} is not one of '
                                f'{sorted(VAN.arch_zoo)}.')
        arch = dict(arch=args.arch)
    result = convert_state_dict(
        state_dict,
        args.format,
        task=args.task,
        arch=arch,
        meta=meta,
        allow_nonfinite=args.allow_nonfinite)
    report = []
    if args.verify:
        report = verify(result, state_dict, args.task)

    source_sha = sha256_of(src)
    out = {
        'state_dict': result.state_dict,
        'meta': {
            'mmvan_format': args.task,
            'source_format': result.source_format,
            'source_file': osp.basename(src),
            'source_sha256': source_sha,
            'arch': result.arch,
            'dropped_keys': result.dropped,
        }
    }
    dst = args.dst
    if dst.endswith(os.sep) or osp.isdir(dst) or not dst.endswith('.pth'):
        folder = dst
        stem = output_name(result.arch, args.task)
    else:
        folder = osp.dirname(dst) or '.'
        stem = osp.basename(dst)[:-len('.pth')]
    # Save once under a temporary name to learn the file's hash, then
    # rename: a failure at any point leaves no output.
    from mmvan.utils.atomic import SaveError, explain_os_error
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
        save_atomic(out, tmp, src=src)
        final = osp.join(folder, f'{stem}-{sha256_of(tmp)[:8]}.pth')
        if osp.exists(final) and osp.samefile(final, src):
            raise cli.UserError('Refusing to overwrite the source.')
        os.replace(tmp, final)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    a = result.arch
    arch_text = a['arch'] if isinstance(a['arch'], str) else 'custom'
    print(f'format: {result.source_format}; arch: {arch_text}, '
          f'{a["attention"].upper()} k={a["kernel_size"]}, '
          f'classes: {a["num_classes"]}; task: {args.task}')
    if result.dropped:
        print(f'dropped {len(result.dropped)} keys that are not part of the '
              f'{"classifier" if args.task == "cls" else "backbone"} '
              f'(e.g. {result.dropped[0]})')
    for line in report:
        print(line)
    print(f'saved {final}')
    return final


if __name__ == '__main__':
    cli.run_cli(main)
