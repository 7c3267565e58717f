# Copyright (c) mmvan contributors. All rights reserved.
"""The config tools/train.py saves in its work dir serves inference, and
every part of mmvan finds the image loader of a pipeline by one rule."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from mmvan.apis import inference_model, init_model, load_image
from mmvan.cli import set_image_policy
from mmvan.datasets import make_classification_demo
from mmvan.datasets.loading import LoadImageFromFile, is_image_loader


@pytest.mark.parametrize('kind, loader',
                         [('LoadImageFromFile', True),
                          ('mmvan.LoadImageFromFile', True),
                          ('mmpretrain.LoadImageFromFile', True),
                          ('mmdet.LoadImageFromFile', True),
                          (LoadImageFromFile, True),
                          ('LoadImageFromNDArray', False),
                          ('mmvan.LoadImageFromFileX', False),
                          ('ResizeEdge', False), (None, False)])
def test_one_rule_for_the_image_loader(kind, loader):
    assert is_image_loader(dict(type=kind)) is loader


def test_the_policy_rewrites_every_scope_of_loader():
    pipeline = [
        dict(type='mmseg.LoadImageFromFile'),
        dict(type='LoadAnnotations')
    ]
    cfg = Config(
        dict(
            test_dataloader=dict(
                dataset=dict(
                    type='RepeatDataset', dataset=dict(pipeline=pipeline)))))
    set_image_policy(cfg, train=False)
    steps = cfg.test_dataloader.dataset.dataset.pipeline
    assert steps[0] == dict(type='mmvan.LoadImageFromFile', on_error='raise')
    assert steps[1] == dict(type='LoadAnnotations')


@pytest.fixture(scope='module')
def trained(tiny, root, tmp_path_factory):
    """A tiny classifier trained for one epoch by tools/train.py: its
    config, its work dir's saved config and its checkpoint."""
    folder = tmp_path_factory.mktemp('saved')
    data = make_classification_demo(
        str(folder / 'data'), num_train=2, num_val=1, size=32, seed=3)
    config = tiny(base='van-b0_demo.py')
    work_dir = folder / 'work'
    options = ['train_cfg.max_epochs=1']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options += [
            f'{loader}.dataset.data_root={data}', f'{loader}.num_workers=0',
            f'{loader}.batch_size=5'
        ]
    options += ['default_hooks.visualization.enable=False']
    out = subprocess.run([
        sys.executable, 'tools/train.py', config, '--work-dir',
        str(work_dir), '--no-validate', '--cfg-options', *options
    ],
                         cwd=root,
                         env=dict(os.environ, OMP_NUM_THREADS='1'),
                         capture_output=True,
                         text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    saved = work_dir / osp.basename(config)
    return config, str(saved), str(work_dir / 'epoch_1.pth')


@pytest.mark.slow
def test_saved_config_serves_inference(trained, root):
    config, saved, ckpt = trained
    steps = Config.fromfile(saved).test_dataloader.dataset.pipeline
    assert steps[0]['type'] == 'mmvan.LoadImageFromFile'  # as train.py saves
    cat = osp.join(root, 'demo', 'cat.jpg')
    want = inference_model(init_model(config, ckpt, backend='pytorch'), cat)
    got = inference_model(init_model(saved, ckpt, backend='pytorch'), cat)
    assert torch.equal(got.pred_score, want.pred_score)
    assert (load_image(cat, Config.fromfile(saved)) == load_image(cat)).all()


@pytest.mark.slow
def test_image_demo_with_saved_config(trained, root, tool, tmp_path,
                                      monkeypatch):
    _, saved, ckpt = trained
    image_demo = tool('image_demo', '', base='demo')
    out = tmp_path / 'cat.png'
    # The folded PyTorch model (a runtime's export takes seconds; the
    # runtimes read the pipeline through the same function).
    monkeypatch.setenv('MMVAN_BACKEND', 'pytorch')
    sample = image_demo.main([
        osp.join(root, 'demo', 'cat.jpg'), saved, ckpt, '--out-file',
        str(out)
    ])
    assert sample.pred_score.shape == (5, )
    assert out.stat().st_size > 0
