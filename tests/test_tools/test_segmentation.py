# Copyright (c) mmvan contributors. All rights reserved.
"""Segmentation configs and real runs on a shrunken ADE20K-format set."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmvan  # noqa: F401
from mmvan.datasets import make_segmentation_demo

FPN_DEMO = 'configs/sem_fpn/fpn_van-b0_demo.py'

# Published whole-model sizes (M): Semantic FPN rounded to the million.
FPN_PARAMS = {'b0': 8, 'b1': 18, 'b2': 30, 'b3': 49}
UPERNET_PARAMS = {'b0': 32.1, 'b1': 43.8, 'b2': 56.6, 'b3': 74.7}
DROP_PATH = {
    'b0': 0.1,
    'b1': 0.1,
    'b2': 0.1,
    'b3': 0.3,
    'b4': 0.4,
    'b5': 0.4,
    'b6': 0.5
}


def build(cfg):
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(cfg.model)


@pytest.mark.configs('sem_fpn/*.py', 'upernet/*.py')
def test_segmentation_config_params(path):
    cfg = Config.fromfile(path)
    assert cfg.model.backbone.type == 'mmvan.VAN'
    assert cfg.model.pretrained is None
    assert cfg.model.backbone.out_norm_cfg.eps == 1e-5
    with torch.device('meta'):
        model = build(cfg)
    n = sum(p.numel() for p in model.parameters()) / 1e6
    if 'demo' in path:
        return
    arch = cfg.model.backbone.arch
    lska = cfg.model.backbone.get('attention') == 'lska'
    assert cfg.model.backbone.norm_cfg.type == 'SyncBN'
    if osp.basename(path).startswith('fpn'):
        assert cfg.model.neck.out_channels == 256
        assert cfg.model.decode_head.channels == 128
        assert cfg.optim_wrapper.optimizer.weight_decay == 1e-4
        assert cfg.param_scheduler[-1].power == 0.9
        if lska:
            assert cfg.optim_wrapper.optimizer.lr == 1e-4
            assert cfg.train_cfg.max_iters == 80000
        else:
            assert cfg.optim_wrapper.optimizer.lr == 2e-4
            assert cfg.train_cfg.max_iters == 40000
            assert cfg.model.backbone.drop_path_rate == {
                'b3': 0.3,
                'b4': 0.4
            }.get(arch, 0.2)
        if arch in FPN_PARAMS and not lska:
            assert round(n) == FPN_PARAMS[arch]
    else:
        assert cfg.model.decode_head.channels == 512
        assert cfg.model.decode_head.pool_scales == (1, 2, 3, 6)
        assert cfg.model.auxiliary_head.in_index == 2
        assert cfg.model.auxiliary_head.channels == 256
        assert cfg.model.auxiliary_head.loss_decode.loss_weight == 0.4
        assert cfg.optim_wrapper.optimizer.lr == 6e-5
        assert cfg.optim_wrapper.optimizer.weight_decay == 0.01
        assert cfg.param_scheduler[0].end == 1500
        assert cfg.param_scheduler[1].power == 1.0
        assert cfg.train_cfg.max_iters == 160000
        assert 'tta_model' in cfg and 'tta_pipeline' in cfg
        if not lska:
            assert cfg.model.backbone.drop_path_rate == DROP_PATH[arch]
        if arch in UPERNET_PARAMS and not lska:
            assert n == pytest.approx(UPERNET_PARAMS[arch], rel=0.02)


@pytest.fixture(scope='module')
def seg_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('seg') / 'demo_seg'
    return make_segmentation_demo(str(root), num_train=8, num_val=3, seed=2)


def options(root, iters=4):
    opts = [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [
            f'{loader}.dataset.data_root={root}', f'{loader}.num_workers=0'
        ]
    opts += [
        'train_dataloader.batch_size=4',
        f'default_hooks.checkpoint.interval={iters}', 'param_scheduler.0.end=4'
    ]
    return opts


@pytest.mark.slow
def test_train_val_test_tta(tmp_path, seg_root, run_tool):
    work = tmp_path / 'work'
    out = run_tool([
        'tools/train.py', FPN_DEMO, '--work-dir',
        str(work), '--cfg-options', *options(seg_root)
    ])
    assert 'mIoU' in out.stdout + out.stderr
    ckpt = work / 'iter_4.pth'
    assert ckpt.is_file()
    for extra in ([], ['--tta']):
        metrics = tmp_path / f'metrics{len(extra)}.json'
        run_tool([
            'tools/test.py', FPN_DEMO,
            str(ckpt), *extra, '--work-dir',
            str(tmp_path / 'test'), '--out',
            str(metrics), '--out-item', 'metrics', '--cfg-options',
            *options(seg_root)
        ])
        result = json.loads(metrics.read_text())
        assert 0.0 <= result['mIoU'] <= 100.0


@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_inference_odd_non_square_image(tmp_path, mode, root):
    from mmseg.apis import inference_model, init_model
    cfg = Config.fromfile(osp.join(root, FPN_DEMO))
    if mode == 'slide':
        cfg.model.test_cfg = dict(
            mode='slide', crop_size=(64, 64), stride=(48, 48))
    model = init_model(cfg, None, device='cpu')
    img = np.random.default_rng(0).integers(
        0, 255, (97, 151, 3), dtype=np.uint8)
    result = inference_model(model, img)
    assert tuple(result.pred_sem_seg.data.shape[-2:]) == (97, 151)
    assert int(result.pred_sem_seg.data.max()) < 4


@pytest.mark.slow
def test_dist_train_two_cpu_processes(tmp_path, seg_root, dist_train):
    work = tmp_path / 'dist'
    dist_train(FPN_DEMO,
               '--no-validate', '--work-dir', str(work), '--cfg-options',
               *options(seg_root), 'model.backbone.norm_cfg.type=SyncBN')
    assert (work / 'iter_4.pth').is_file()


@pytest.mark.slow
def test_missing_ade20k(tmp_path, run_tool):
    out = run_tool([
        'tools/train.py',
        'configs/upernet/upernet_van-b0_8xb2-160k_ade20k-512x512.py',
        '--work-dir',
        str(tmp_path / 'w'), '--cfg-options',
        f'train_dataloader.dataset.data_root={tmp_path}/ade',
        f'val_dataloader.dataset.data_root={tmp_path}/ade'
    ],
                   timeout=300,
                   check=False)
    assert out.returncode == 2
    assert 'dataset not found' in out.stderr and 'ADE20K' in out.stderr
    assert 'Traceback' not in out.stderr
    assert not (tmp_path / 'w').exists()


def test_init_from_converted_backbone(tmp_path, tool, root):
    from collections import OrderedDict

    from mmvan.models import VAN
    van2mmvan = tool('van2mmvan', 'model_converters')
    torch.manual_seed(0)
    source = VAN(arch='b0')
    source.init_weights()
    sd = OrderedDict(
        ('backbone.' + k, v) for k, v in source.state_dict().items())
    sd['decode_head.conv_seg.weight'] = torch.randn(150, 512, 1, 1)
    src = tmp_path / 'official_seg.pth'
    torch.save({'state_dict': sd}, src)
    path = van2mmvan.main([str(src), str(tmp_path), '--task', 'backbone'])
    cfg = Config.fromfile(
        osp.join(root, 'configs', 'upernet',
                 'upernet_van-b0_8xb2-160k_ade20k-512x512.py'))
    cfg.model.backbone.init_cfg.checkpoint = path
    segmentor = build(cfg)
    segmentor.init_weights()
    loaded = segmentor.backbone.state_dict()
    assert set(loaded) == set(source.state_dict())
    for key, value in source.state_dict().items():
        assert torch.equal(loaded[key], value), key
