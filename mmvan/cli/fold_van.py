# Copyright (c) mmvan contributors. All rights reserved.
"""What ``tools/model_converters/fold_van.py`` runs: the folded inference
checkpoint of a model with VAN backbones, checked against the trained model
before anything is written (:func:`fold_checkpoint`)."""
import math
import os.path as osp
import tempfile
from typing import Callable, List, Optional, Tuple

import torch
import torch.nn as nn

from mmvan.apis import init_model
from mmvan.engine.hooks.ema_hook import checkpoint_weights
from mmvan.models.utils.deploy import fuse_model
from mmvan.utils.errors import CheckpointError, UserError
from mmvan.zoo import read_checkpoint, resolve, save_checkpoint

__all__ = ['DEPLOY_OPTION', 'chosen_weights', 'fold', 'fold_checkpoint']

DEPLOY_OPTION = {'model.backbone.deploy': True}


def _outputs(model: nn.Module, x: torch.Tensor) -> List[torch.Tensor]:
    with torch.no_grad():
        feats = model.extract_feat(x) if hasattr(model,
                                                 'extract_feat') else model(x)
    if isinstance(feats, torch.Tensor):
        feats = (feats, )
    return [f for f in feats if isinstance(f, torch.Tensor)]


def chosen_weights(checkpoint: str, weights: str,
                   folder: str) -> Tuple[str, Optional[str]]:
    """The checkpoint to fold: ``checkpoint`` itself, or, when it holds an
    EMA beside its weights, a copy in ``folder`` with the ones ``weights``
    names. Returns ``(path, which)``, ``which`` None without an EMA."""
    loaded = read_checkpoint(resolve(checkpoint)[0])
    state_dict, which = checkpoint_weights(loaded, weights)
    if state_dict is None:
        return checkpoint, None
    path = osp.join(folder, 'weights.pth')
    torch.save(dict(state_dict=state_dict, meta=loaded.get('meta', {})), path)
    return path, which


def fold(config: str,
         checkpoint: str,
         out: str,
         cfg_options: Optional[dict] = None,
         tolerance: float = 1e-4,
         source: Optional[str] = None) -> dict:
    """Fold, check and write; returns a dict of what was measured.
    ``source``: the checkpoint's name to record (default ``checkpoint``)."""
    options = dict(cfg_options or {})
    model = init_model(
        config,
        checkpoint,
        cfg_options=options,
        deploy=False,
        backend='pytorch')
    count = fuse_model(model, channels_last=False, chunk_mib=0)
    if not count:
        raise UserError(f'{config} has no mmvan VAN backbone to fold.')
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
    save_checkpoint({'state_dict': state_dict, 'meta': meta}, out)
    return dict(
        backbones=count,
        tensors=len(state_dict),
        before=len(reference.state_dict()),
        max_rel_diff=worst,
        out=out)


def fold_checkpoint(config: str,
                    checkpoint: str,
                    out: str,
                    cfg_options: Optional[dict] = None,
                    weights: str = 'ema',
                    tolerance: float = 1e-4,
                    echo: Callable[[str], None] = print) -> dict:
    """Fold ``checkpoint`` (a path, an URL or ``mmvan://<name>``; of a
    checkpoint with an EMA, the weights ``weights`` names: ``'ema'`` or
    ``'raw'``) of ``config`` into ``out``, which loads strictly into the
    config built with ``model.backbone.deploy=True``.

    Returns:
        dict: see :func:`fold`.
    """
    if '://' not in checkpoint and not osp.isfile(checkpoint):
        raise UserError(f'Checkpoint {checkpoint} does not exist.')
    with tempfile.TemporaryDirectory() as folder:
        path, which = chosen_weights(checkpoint, weights, folder)
        if which:
            echo(f'{checkpoint} holds EMA weights and the weights as '
                 f'trained: folding {which} (--weights).')
        result = fold(config, path, out, cfg_options, tolerance, checkpoint)
    echo(f'folded {result["backbones"]} VAN backbone(s): '
         f'{result["before"]} -> {result["tensors"]} tensors, outputs '
         f'within {result["max_rel_diff"]:.2g} (relative)\n'
         f'wrote {result["out"]}\n'
         f'use it with: --cfg-options model.backbone.deploy=True')
    return result
