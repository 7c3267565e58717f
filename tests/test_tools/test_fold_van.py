# Copyright (c) mmvan contributors. All rights reserved.
"""tools/model_converters/fold_van.py: a folded checkpoint that reloads."""
import re

import pytest
import torch

from mmvan.testing import randomized


def _trained_checkpoint(config, path):
    """A checkpoint of ``config`` with random weights and BatchNorm
    statistics (so folding has something to fold)."""
    from mmvan.apis import init_model
    model = init_model(config, deploy=False)
    randomized(model.backbone, seed=1)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return model


def test_fold_writes_a_checkpoint_for_deploy_true(tmp_path, tiny, tool):
    from mmvan.apis import init_model
    from mmvan.zoo import WeightsMismatchError
    fold_van = tool('fold_van', 'model_converters')
    config = tiny('lka')
    src, out = str(tmp_path / 'trained.pth'), str(tmp_path / 'folded.pth')
    trained = _trained_checkpoint(config, src).eval()
    fold_van.main([config, src, out])
    folded = torch.load(out, weights_only=True)
    assert folded['meta']['mmvan_deploy'] is True
    keys = folded['state_dict'].keys()
    # No block norms, layer scales or patch-embedding norms are left.
    assert not any(
        re.search(r'(\d\.norm[12]\.|layer_scale|patch_embed\d\.norm)', k)
        for k in keys)
    assert any(k.endswith('shortcut_scale') for k in keys)
    model = init_model(
        config,
        out,
        cfg_options={'model.backbone.deploy': True},
        backend='pytorch')
    assert model.backbone.deploy
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        ref = trained(x, mode='tensor')
        got = model(x, mode='tensor')
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)
    # Loading it into the unfolded model says what to do.
    with pytest.raises(WeightsMismatchError, match='deploy=True'):
        init_model(config, out, deploy=False)


def test_fold_refuses_without_writing(tmp_path, tiny, tool):
    from mmvan.utils.errors import CheckpointError
    fold_van = tool('fold_van', 'model_converters')
    config = tiny('lka')
    src, out = str(tmp_path / 'trained.pth'), str(tmp_path / 'folded.pth')
    model = _trained_checkpoint(config, src)
    # A NaN running variance cannot be folded into finite weights.
    sd = model.state_dict()
    sd['backbone.block1.0.norm1.running_var'][0] = float('nan')
    torch.save({'state_dict': sd}, src)
    with pytest.raises(CheckpointError, match='nothing was written'):
        fold_van.main([config, src, out])
    assert not (tmp_path / 'folded.pth').exists()
