# Copyright (c) mmvan contributors. All rights reserved.
"""Write the folded inference checkpoint of a model with VAN backbones.

    python tools/model_converters/fold_van.py CONFIG CHECKPOINT OUT

Every BatchNorm and layer scale of the VAN backbones goes into the
convolutions (as ``VAN.switch_to_deploy`` does at every start otherwise).
The result loads strictly into the same config built with
``model.backbone.deploy=True`` and gives the same outputs, which this tool
checks before it writes anything:

    python tools/test.py CONFIG OUT --cfg-options model.backbone.deploy=True

CHECKPOINT is a path, an URL or ``mmvan://<zoo name>``, in any format mmvan
converts.
"""
import argparse
import math
import os.path as osp
import sys
import tempfile
import warnings

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmvan.engine.hooks.ema_hook import checkpoint_weights  # noqa: E402
from mmvan import cli  # noqa: E402

DEPLOY_OPTION = {'model.backbone.deploy': True}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('config', help='the model\'s config file')
    parser.add_argument('checkpoint', help='its trained weights')
    parser.add_argument('out', help='the folded checkpoint (.pth) to write')
    from mmengine.config import DictAction
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='override config settings, as in tools/test.py')
    parser.add_argument(
        '--weights',
        choices=['ema', 'raw'],
        default='ema',
        help='of a checkpoint saved with an EMA (train.py --ema): fold its '
        'EMA weights (default) or its weights as trained')
    parser.add_argument(
        '--tolerance',
        type=float,
        default=1e-4,
        help='largest relative output difference accepted (default 1e-4)')
    return parser.parse_args(argv)


def _outputs(model, x):
    import torch
    with torch.no_grad():
        feats = model.extract_feat(x) if hasattr(model,
                                                 'extract_feat') else model(x)
    if isinstance(feats, torch.Tensor):
        feats = (feats, )
    return [f for f in feats if isinstance(f, torch.Tensor)]


def chosen_weights(checkpoint, weights, folder):
    """The checkpoint to fold: ``checkpoint`` itself, or, when it holds an
    EMA beside its weights, a copy in ``folder`` with the ones ``weights``
    names. Returns ``(path, which)``, ``which`` None without an EMA."""
    import torch

    from mmvan.zoo.loader import read_checkpoint, resolve
    loaded = read_checkpoint(resolve(checkpoint)[0])
    state_dict, which = checkpoint_weights(loaded, weights)
    if state_dict is None:
        return checkpoint, None
    path = osp.join(folder, 'weights.pth')
    torch.save(dict(state_dict=state_dict, meta=loaded.get('meta', {})), path)
    return path, which


def fold(config,
         checkpoint,
         out,
         cfg_options=None,
         tolerance=1e-4,
         source=None):
    """Fold, check and write; returns a dict of what was measured.
    ``source``: the checkpoint's name to record (default ``checkpoint``)."""
    import torch

    from mmvan.apis import init_model
    from mmvan.apis.deploy import fuse_model
    from mmvan.converters import save_atomic
    from mmvan.utils.errors import CheckpointError
    options = dict(cfg_options or {})
    model = init_model(
        config,
        checkpoint,
        cfg_options=options,
        deploy=False,
        backend='pytorch')
    count = fuse_model(model, channels_last=False, chunk_mib=0)
    if not count:
        raise cli.UserError(f'{config} has no mmvan VAN backbone to fold.')
    state_dict = model.state_dict()
    # The folded structure, built directly: the state dict must load into it
    # strictly and give the same outputs.
    rebuilt = init_model(
        config,
        None,
        cfg_options={
            **options,
            **DEPLOY_OPTION
        },
        deploy=False,
        backend='pytorch')
    rebuilt.load_state_dict(state_dict, strict=True)
    reference = init_model(
        config,
        checkpoint,
        cfg_options=options,
        deploy=False,
        backend='pytorch')
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    diffs = [((a - b).abs().max() / a.abs().max().clamp_min(1e-12)).item()
             for a, b in zip(_outputs(reference, x), _outputs(rebuilt, x))]
    # NaN compares false with everything: take it as the worst.
    worst = max(diffs, key=lambda d: d if math.isfinite(d) else math.inf)
    if not worst <= tolerance:
        raise CheckpointError(
            f'The folded model differs from the trained one by {worst:.3g} '
            f'(relative), more than --tolerance {tolerance:g}: nothing was '
            f'written. Are the BatchNorm statistics finite and trained?')
    meta = dict(
        mmvan_deploy=True,
        config=osp.basename(str(config)),
        source=str(source or checkpoint),
        dataset_meta=getattr(model, 'dataset_meta', None) or {})
    save_atomic({'state_dict': state_dict, 'meta': meta}, out)
    return dict(
        backbones=count,
        tensors=len(state_dict),
        before=len(reference.state_dict()),
        max_rel_diff=worst,
        out=out)


def main(argv=None):
    args = parse_args(argv)
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        raise cli.UserError(f'Checkpoint {args.checkpoint} does not exist.')
    with tempfile.TemporaryDirectory() as folder:
        weights, which = chosen_weights(args.checkpoint, args.weights, folder)
        if which:
            print(f'{args.checkpoint} holds EMA weights and the weights as '
                  f'trained: folding {which} (--weights).')
        result = fold(args.config, weights, args.out, args.cfg_options,
                      args.tolerance, args.checkpoint)
    print(f'folded {result["backbones"]} VAN backbone(s): '
          f'{result["before"]} -> {result["tensors"]} tensors, outputs '
          f'within {result["max_rel_diff"]:.2g} (relative)\n'
          f'wrote {result["out"]}\n'
          f'use it with: --cfg-options model.backbone.deploy=True')


if __name__ == '__main__':
    cli.run_cli(main)
