# Copyright (c) mmvan contributors. All rights reserved.
"""Detection configs and real runs on a shrunken COCO-format demo set."""
import glob
import json
import os.path as osp
from collections import OrderedDict

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmvan  # noqa: F401
from mmvan.apis import register_all_modules
from mmvan.datasets import make_detection_demo
from mmvan.models import VAN

RETINA_DEMO = 'configs/retinanet/retinanet_van-b0_fpn_demo.py'
MASK_DEMO = 'configs/mask_rcnn/mask-rcnn_van-b0_fpn_demo.py'

PAPER_PARAMS = {
    'retinanet_van-b0': 13.4,
    'retinanet_van-b1': 23.6,
    'retinanet_van-b2': 36.3,
    'retinanet_van-b3': 54.5,
    'mask-rcnn_van-b0': 23.9,
    'mask-rcnn_van-b1': 33.5,
    'mask-rcnn_van-b2': 46.2,
    'mask-rcnn_van-b3': 64.4,
}
# LSKA variants: LKA size less 48 x channels per block (see the backbone).
LSKA_PARAMS = {
    'retinanet_van-lska-b0': 13.31,
    'retinanet_van-lska-b1': 23.47,
    'retinanet_van-lska-b2': 36.03,
    'mask-rcnn_van-lska-b0': 23.81,
    'mask-rcnn_van-lska-b1': 33.39,
    'mask-rcnn_van-lska-b2': 45.95,
}


def build(cfg):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(cfg.model)


@pytest.mark.configs('mask_rcnn/*.py', 'retinanet/*.py')
def test_detection_config_params(path):
    cfg = Config.fromfile(path)
    assert cfg.model.backbone.type == 'mmvan.VAN'
    with torch.device('meta'):
        model = build(cfg)
    n = sum(p.numel() for p in model.parameters()) / 1e6
    name = osp.basename(path).split('_fpn')[0]
    if 'demo' in path:
        return
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.optim_wrapper.optimizer.lr == 1e-4
    assert cfg.optim_wrapper.optimizer.weight_decay == 0.05
    assert cfg.auto_scale_lr.base_batch_size == 16
    assert cfg.model.backbone.norm_cfg.type == 'SyncBN'
    assert cfg.model.backbone.init_cfg.prefix == 'backbone.'
    if name in PAPER_PARAMS:
        assert n == pytest.approx(PAPER_PARAMS[name], rel=0.02)
    else:
        assert n == pytest.approx(LSKA_PARAMS[name], abs=0.01)
    if 'ms-3x' in path:
        assert cfg.train_cfg.max_epochs == 36
    else:
        assert cfg.train_cfg.max_epochs == 12
        assert cfg.param_scheduler[1].milestones == [8, 11]
    if 'retinanet' in path:
        assert cfg.model.neck.start_level == 1
        assert cfg.model.neck.add_extra_convs == 'on_input'
        assert cfg.model.neck.num_outs == 5


@pytest.fixture(scope='module')
def det_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('det') / 'demo_det'
    return make_detection_demo(str(root), num_train=8, num_val=4, seed=3)


def options(root, epochs=1):
    opts = [f'train_cfg.max_epochs={epochs}', 'train_cfg.val_interval=1']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [
            f'{loader}.dataset.data_root={root}/', f'{loader}.num_workers=0',
            f'{loader}.batch_size=4'
        ]
    for ev in ('val_evaluator', 'test_evaluator'):
        opts.append(f'{ev}.ann_file={root}/annotations/instances_val.json')
    opts.append('default_hooks.checkpoint.interval=1')
    return opts


@pytest.mark.slow
@pytest.mark.parametrize('config,metric', [(RETINA_DEMO, 'coco/bbox_mAP'),
                                           (MASK_DEMO, 'coco/segm_mAP')])
def test_train_val_test_and_inference(tmp_path, det_root, config, metric,
                                      run_tool, root):
    work = tmp_path / 'work'
    # After a few iterations no score passes the usual threshold; keep every
    # detection so that the COCO metric has something to score.
    thr = ('model.test_cfg.score_thr=0.0'
           if 'retinanet' in config else 'model.test_cfg.rcnn.score_thr=0.0')
    out = run_tool([
        'tools/train.py', config, '--work-dir',
        str(work), '--cfg-options', *options(det_root), thr
    ])
    assert metric in out.stdout + out.stderr  # validation ran COCO metrics
    ckpt = work / 'epoch_1.pth'
    metrics = tmp_path / 'metrics.json'
    run_tool([
        'tools/test.py', config,
        str(ckpt), '--work-dir',
        str(tmp_path / 'test'), '--out',
        str(metrics), '--out-item', 'metrics', '--cfg-options',
        *options(det_root), thr
    ])
    result = json.loads(metrics.read_text())
    assert metric in result and 0.0 <= result[metric] <= 1.0

    from mmdet.apis import inference_detector, init_detector

    # mmdet loads the training checkpoint with torch's safe loader, which
    # mmvan's extension points teach mmengine's objects.
    register_all_modules()
    cfg = Config.fromfile(osp.join(root, config))
    model = init_detector(cfg, str(ckpt), device='cpu')
    img = glob.glob(osp.join(det_root, 'val', '*.png'))[0]
    sample = inference_detector(model, img)
    assert sample.pred_instances.bboxes.shape[1] == 4
    if 'mask' in config:
        assert 'masks' in sample.pred_instances


@pytest.mark.slow
def test_dist_train_two_cpu_processes_with_syncbn(tmp_path, det_root,
                                                  dist_train):
    work = tmp_path / 'dist'
    dist_train(RETINA_DEMO,
               '--no-validate', '--work-dir', str(work), '--cfg-options',
               *options(det_root), 'model.backbone.norm_cfg.type=SyncBN')
    assert (work / 'epoch_1.pth').is_file()


@pytest.mark.slow
def test_missing_coco(tmp_path, run_tool):
    out = run_tool([
        'tools/train.py', 'configs/retinanet/retinanet_van-b0_fpn_1x_coco.py',
        '--work-dir',
        str(tmp_path / 'w'), '--cfg-options',
        f'train_dataloader.dataset.data_root={tmp_path}/coco/',
        f'val_dataloader.dataset.data_root={tmp_path}/coco/'
    ],
                   timeout=300,
                   check=False)
    assert out.returncode == 2
    assert 'dataset not found' in out.stderr and 'COCO' in out.stderr
    assert 'Traceback' not in out.stderr
    assert not (tmp_path / 'w').exists()


@pytest.mark.slow
def test_missing_pretrained_backbone(tmp_path, det_root, run_tool):
    out = run_tool([
        'tools/train.py', 'configs/retinanet/retinanet_van-b0_fpn_1x_coco.py',
        '--work-dir',
        str(tmp_path / 'w'), '--no-validate', '--cfg-options',
        f'train_dataloader.dataset.data_root={det_root}/',
        'train_dataloader.dataset.ann_file=annotations/instances_train.json',
        'train_dataloader.dataset.data_prefix.img=train/',
        f'model.backbone.init_cfg.checkpoint={tmp_path}/none.pth'
    ],
                   timeout=300,
                   check=False)
    assert out.returncode == 2, out.stderr[-2000:]
    assert 'pretrained checkpoint' in out.stderr and 'none.pth' in out.stderr
    assert 'Traceback' not in out.stderr


def test_init_from_converted_backbone(tmp_path, tool, root):
    van2mmvan = tool('van2mmvan', 'model_converters')
    torch.manual_seed(0)
    source = VAN(arch='b0')
    source.init_weights()
    sd = OrderedDict(source.state_dict())
    sd['head.weight'] = torch.randn(1000, 256)
    sd['head.bias'] = torch.randn(1000)
    src = tmp_path / 'official.pth'
    torch.save({'state_dict': sd}, src)
    path = van2mmvan.main([str(src), str(tmp_path), '--task', 'backbone'])
    cfg = Config.fromfile(
        osp.join(root, 'configs', 'retinanet',
                 'retinanet_van-b0_fpn_1x_coco.py'))
    cfg.model.backbone.init_cfg.checkpoint = path
    detector = build(cfg)
    detector.init_weights()
    loaded = detector.backbone.state_dict()
    assert set(loaded) == set(source.state_dict())
    for key, value in source.state_dict().items():
        assert torch.equal(loaded[key], value), key
