# Copyright (c) mmvan contributors. All rights reserved.
"""The paper's other experiments (issue #15): 3x detectors, Mask2Former
panoptic, SimpleBaseline pose, CUB-200 fine-tuning.

Every config builds (on the meta device) with its recipe and size (the
paper's params and FLOPs are checked through get_flops.py in
test_get_flops.py). Shrunken versions train a step, validate with the real
metric (COCO box AP, COCO PQ, COCO keypoint AP, top-1) and run inference on
a CPU.
"""
import glob
import os.path as osp
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope
from PIL import Image

import mmvan  # noqa: F401
from mmvan.apis import register_all_modules
from mmvan.cli import sync_bn_to_bn
from mmvan.datasets import make_detection_demo
from mmvan.datasets.demo_data_paper import (make_cub_demo, make_keypoint_demo,
                                            make_panoptic_demo)
from mmvan.models import VAN


@pytest.fixture(scope='session')
def cfg_path(root):
    """``cfg_path(*parts)``: the path of ``configs/<parts>``."""
    return lambda *parts: osp.join(root, 'configs', *parts)


# The paper's sizes (Tables 11 and 15: params and FLOPs of the 3x
# detectors and SimpleBaseline) are checked through get_flops.py in
# test_get_flops.py.
POSE_CONFIGS = ('td-hm_van-b2_8xb64-210e_coco-256x192.py',
                'td-hm_van-b2_8xb64-210e_coco-384x288.py')
# The configs the paper gives no size for: these configs' own counts (M).
OWN_PARAMS = {
    'cascade-mask-rcnn_van-b0': 61.72,
    'cascade-mask-rcnn_van-b1': 71.35,
    'cascade-mask-rcnn_van-b2': 84.07,
    'cascade-mask-rcnn_van-b3': 102.26,
    'cascade-mask-rcnn_van-lska-b0': 61.64,
    'cascade-mask-rcnn_van-lska-b1': 71.22,
    'cascade-mask-rcnn_van-lska-b2': 83.78,
    'atss_van-b0': 11.84,
    'atss_van-b1': 21.46,
    'atss_van-b2': 34.18,
    'atss_van-b3': 52.37,
    'atss_van-lska-b0': 11.76,
    'atss_van-lska-b1': 21.34,
    'atss_van-lska-b2': 33.90,
    'gfl_van-b0': 11.99,
    'gfl_van-b1': 21.61,
    'gfl_van-b2': 34.33,
    'gfl_van-b3': 52.51,
    'gfl_van-lska-b0': 11.91,
    'gfl_van-lska-b1': 21.48,
    'gfl_van-lska-b2': 34.04,
    'mask2former_van-b2': 45.87,
    'mask2former_van-b6-in22k-pre': 219.03,
}


def build(cfg, scope, device='meta'):
    from mmengine.registry import MODELS
    init_default_scope(scope)
    with DefaultScope.overwrite_default_scope(scope), torch.device(device):
        return MODELS.build(cfg.model)


def n_params(model):
    return sum(p.numel() for p in model.parameters()) / 1e6


def prepared(path):
    cfg = Config.fromfile(path)
    sync_bn_to_bn(cfg.model)
    cfg.model.backbone.init_cfg = None
    return cfg


# Configs and sizes -------------------------------------------------------


@pytest.mark.configs('cascade_rcnn/*.py', 'atss/*.py', 'gfl/*.py',
                     'mask2former/mask2former_van-b*.py')
def test_config_params_and_recipe(path):
    cfg = Config.fromfile(path)
    assert cfg.model.backbone.type == 'mmvan.VAN'
    init = cfg.model.backbone.init_cfg
    assert init.type == 'Pretrained' and init.prefix == 'backbone.'
    assert init.checkpoint.startswith('mmvan://')
    assert cfg.model.backbone.norm_cfg.type == 'SyncBN'
    model = build(cfg, 'mmdet')
    name = osp.basename(path).split('_fpn')[0].split('_8xb2')[0]
    assert n_params(model) == pytest.approx(OWN_PARAMS[name], abs=0.01)
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.weight_decay) == ('AdamW', 1e-4, 0.05)
    assert cfg.train_dataloader.batch_size * 8 == \
        cfg.auto_scale_lr.base_batch_size == 16
    if 'mask2former' in path:
        # 50 epochs of COCO panoptic train2017 (118,287 images) at batch 16.
        assert cfg.train_cfg.max_iters == 368750
        assert cfg.model.panoptic_head.num_queries == (200 if 'b6' in path else
                                                       100)
        assert ('in22k' if 'b6' in path else 'in1k') in init.checkpoint
        assert cfg.val_evaluator[0].type == 'CocoPanopticMetric'
        return
    if 'ms-3x' in path:
        assert cfg.train_cfg.max_epochs == 36
        assert cfg.param_scheduler[1].milestones == [27, 33]
        resize = cfg.train_dataloader.dataset.pipeline[2]
        assert resize.type == 'RandomResize'
        assert resize.scale == [(1333, 480), (1333, 800)]
    else:
        assert cfg.train_cfg.max_epochs == 12
        assert cfg.param_scheduler[1].milestones == [8, 11]
    if 'lska' in path:
        assert cfg.model.backbone.attention == 'lska'
        assert cfg.model.backbone.kernel_size == 23


@pytest.mark.parametrize('name', POSE_CONFIGS)
def test_simplebaseline_recipe(name, cfg_path):
    import mmpose
    assert mmpose.__version__ == '1.3.2'
    cfg = prepared(cfg_path('simplebaseline', name))
    assert cfg.default_scope == 'mmpose'
    assert cfg.model.backbone.type == 'mmvan.VAN'
    model = build(cfg, 'mmpose').eval()
    assert type(model.backbone) is VAN  # mmvan's, from mmpose's scope
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr) == ('Adam', 5e-4)
    assert cfg.train_cfg.max_epochs == 210
    assert cfg.train_dataloader.batch_size == 64
    assert cfg.auto_scale_lr.base_batch_size == 512
    assert cfg.model.test_cfg.flip_test


def test_cub_recipe(cfg_path):
    cfg = Config.fromfile(
        cfg_path('van', 'van-b4_in22k-pre_8xb8_cub-384px.py'))
    assert cfg.train_dataloader.dataset.type == 'CUB'
    assert cfg.model.head.num_classes == 200
    assert cfg.model.backbone.arch == 'b4'
    assert cfg.model.backbone.init_cfg.checkpoint == \
        'mmvan://van-b4_3rdparty_in22k'
    assert cfg.train_cfg.max_epochs == 100
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.data_preprocessor.mean == [127.5] * 3
    assert not cfg.model.train_cfg


def test_task_libraries_importable():
    import mmpose
    import panopticapi.evaluation  # noqa: F401
    import xtcocotools.coco  # noqa: F401
    from mmdet.evaluation import CocoPanopticMetric
    assert mmpose.__version__ == '1.3.2'
    CocoPanopticMetric(ann_file=None, seg_prefix=None, nproc=1)


# Backbone initialisation ---------------------------------------------------


@pytest.fixture(scope='module')
def b2_checkpoint(tmp_path_factory):
    """A VAN-b2 classifier in the official release's format."""
    torch.manual_seed(0)
    source = VAN(arch='b2')
    source.init_weights()
    sd = OrderedDict(source.state_dict())
    sd['head.weight'] = torch.randn(1000, 512)
    sd['head.bias'] = torch.randn(1000)
    path = tmp_path_factory.mktemp('ckpt') / 'van_b2_official.pth'
    torch.save({'state_dict': sd}, path)
    return str(path), source.state_dict()


@pytest.mark.parametrize('rel,scope', [
    ('mask2former/mask2former_van-b2_8xb2-lsj-50e_coco-panoptic.py', 'mmdet'),
    ('simplebaseline/td-hm_van-b2_8xb64-210e_coco-256x192.py', 'mmpose'),
])
def test_backbone_init_loads_every_key(b2_checkpoint, rel, scope, cfg_path):
    path, expected = b2_checkpoint
    cfg = Config.fromfile(cfg_path(rel))
    sync_bn_to_bn(cfg.model)
    cfg.model.backbone.init_cfg.checkpoint = path
    model = build(cfg, scope, device='cpu')
    model.init_weights()
    loaded = model.backbone.state_dict()
    assert set(loaded) == set(expected)
    for key, value in expected.items():
        assert torch.equal(loaded[key], value), key


# Shrunken runs -----------------------------------------------------------


def run(cfg, work_dir, iters_or_epochs=1):
    """Train briefly, then validate; returns the metrics."""
    from mmvan.engine.runner import Runner
    cfg.work_dir = str(work_dir)
    cfg.launcher = 'none'
    cfg.log_level = 'WARNING'
    cfg.visualizer = dict(
        type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook',
        interval=1,
        by_epoch=cfg.train_cfg.get('type', 'EpochBasedTrainLoop')
        != 'IterBasedTrainLoop')
    cfg.default_hooks.pop('visualization', None)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].num_workers = 0
        cfg[name].persistent_workers = False
    cfg.custom_hooks = []
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner.val()


def set_data_root(cfg, root):
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].dataset.data_root = str(root) + '/'
        cfg[name].batch_size = 4


def shrink_detector(model, arch):
    """The tiny VAN ``arch``, 32-channel pyramid and heads, 3 classes."""
    model.backbone.arch = arch
    model.backbone.drop_path_rate = 0.0
    model.backbone.init_cfg = None
    model.neck.in_channels = arch['embed_dims']
    model.neck.out_channels = 32
    sync_bn_to_bn(model)
    if 'bbox_head' in model:
        model.bbox_head.update(
            in_channels=32, feat_channels=32, stacked_convs=1, num_classes=3)
        model.test_cfg.score_thr = 0.0
        return model
    model.rpn_head.update(in_channels=32, feat_channels=32)
    roi = model.roi_head
    roi.bbox_roi_extractor.out_channels = 32
    roi.mask_roi_extractor.out_channels = 32
    for head in roi.bbox_head:
        head.update(
            in_channels=32,
            conv_out_channels=32,
            fc_out_channels=64,
            num_classes=3)
    roi.mask_head.update(in_channels=32, conv_out_channels=32, num_classes=3)
    model.train_cfg.rpn_proposal.max_per_img = 100
    for stage in model.train_cfg.rcnn:
        stage.sampler.num = 32
    model.test_cfg.rpn.max_per_img = 50
    model.test_cfg.rcnn.score_thr = 0.0
    return model


@pytest.fixture(scope='module')
def det_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('det') / 'demo_det'
    return make_detection_demo(str(root), num_train=4, num_val=2, seed=5)


@pytest.mark.slow
@pytest.mark.parametrize('name', [
    'cascade_rcnn/cascade-mask-rcnn_van-b0_fpn_1x_coco.py',
    'atss/atss_van-b0_fpn_1x_coco.py', 'gfl/gfl_van-b0_fpn_1x_coco.py'
])
def test_detector_train_val_inference(tmp_path, det_root, name, cfg_path,
                                      tiny_arch):
    # The demo's data, pipelines and schedule with this detector.
    template = 'mask-rcnn' if 'mask' in name else 'retinanet'
    cfg = Config.fromfile(
        glob.glob(cfg_path('*', f'{template}_van-b0_fpn_demo.py'))[0])
    cfg.model = shrink_detector(
        Config.fromfile(cfg_path(name)).model, tiny_arch)
    set_data_root(cfg, det_root)
    for ev in ('val_evaluator', 'test_evaluator'):
        cfg[ev].ann_file = f'{det_root}/annotations/instances_val.json'
    cfg.train_cfg = dict(
        type='EpochBasedTrainLoop', max_epochs=1, val_interval=10)
    metrics = run(cfg, tmp_path)
    assert 0.0 <= metrics['coco/bbox_mAP'] <= 1.0

    from mmdet.apis import inference_detector, init_detector

    # The training checkpoint holds mmengine's objects: torch's safe loader
    # accepts them once mmvan's extension points are on.
    register_all_modules()
    model = init_detector(cfg, str(tmp_path / 'epoch_1.pth'), device='cpu')
    img = sorted(glob.glob(osp.join(det_root, 'val', '*.png')))[0]
    sample = inference_detector(model, img)
    assert sample.pred_instances.bboxes.shape[1] == 4
    if 'mask' in name:
        assert 'masks' in sample.pred_instances


def test_panoptic_demo_data_is_consistent(tmp_path):
    root = make_panoptic_demo(str(tmp_path / 'pano'), num_train=3, num_val=2)
    import json
    with open(osp.join(root, 'annotations', 'panoptic_val.json')) as f:
        ann = json.load(f)
    things = {c['id'] for c in ann['categories'] if c['isthing']}
    assert len(things) == 3 and len(ann['categories']) == 5
    for a in ann['annotations']:
        png = np.array(
            Image.open(
                osp.join(root, 'annotations', 'panoptic_val', a['file_name'])),
            dtype=np.uint32)
        ids = png[..., 0] + 256 * png[..., 1] + 65536 * png[..., 2]
        assert set(np.unique(ids)) == {s['id'] for s in a['segments_info']}
        for s in a['segments_info']:
            assert s['area'] == int((ids == s['id']).sum())
    # Deterministic.
    again = make_panoptic_demo(str(tmp_path / 'again'), num_train=3, num_val=2)
    for f in ('panoptic_val.json', 'panoptic_train.json'):
        with open(osp.join(root, 'annotations', f)) as a, \
                open(osp.join(again, 'annotations', f)) as b:
            assert a.read() == b.read()


@pytest.mark.slow
def test_mask2former_train_val_panoptic_quality_inference(
        tmp_path, cfg_path, tool):
    root = make_panoptic_demo(str(tmp_path / 'pano'), num_train=4, num_val=2)
    cfg = Config.fromfile(
        cfg_path('mask2former', 'mask2former_van-tiny_demo.py'))
    set_data_root(cfg, root)
    for ev in ('val_evaluator', 'test_evaluator'):
        cfg[ev].ann_file = f'{root}/annotations/panoptic_val.json'
        cfg[ev].seg_prefix = f'{root}/annotations/panoptic_val/'
    cfg.train_cfg.update(max_iters=1, val_interval=10)
    cfg.param_scheduler.update(end=1, milestones=[1])
    metrics = run(cfg, tmp_path / 'work')
    assert 0.0 <= metrics['coco_panoptic/PQ'] <= 100.0
    assert 'coco_panoptic/PQ_st' in metrics

    from mmdet.apis import inference_detector, init_detector
    register_all_modules()  # the training checkpoint: see above
    model = init_detector(
        cfg, str(tmp_path / 'work' / 'iter_1.pth'), device='cpu')
    img = sorted(glob.glob(osp.join(root, 'val', '*.jpg')))[0]
    sample = inference_detector(model, img)
    pan = sample.pred_panoptic_seg.sem_seg
    assert pan.shape[-2:] == (96, 96)

    # The panoptic overlay, at the input's size.
    cfg.dump(str(tmp_path / 'pano.py'))
    out = tmp_path / 'pano.png'
    image_demo = tool('image_demo', '', base='demo')
    image_demo.main([
        img,
        str(tmp_path / 'pano.py'),
        str(tmp_path / 'work' / 'iter_1.pth'), '--out-file',
        str(out), '--no-deploy'
    ])
    assert Image.open(out).size == (96, 96)


@pytest.mark.slow
def test_pose_train_val_keypoint_ap_inference(tmp_path, cfg_path, tool):
    root = make_keypoint_demo(str(tmp_path / 'pose'), num_train=4, num_val=2)
    cfg = Config.fromfile(cfg_path('simplebaseline', 'td-hm_van-tiny_demo.py'))
    set_data_root(cfg, root)
    for ev in ('val_evaluator', 'test_evaluator'):
        cfg[ev].ann_file = f'{root}/annotations/person_keypoints_val.json'
    cfg.train_cfg.update(max_epochs=1, val_interval=10)
    metrics = run(cfg, tmp_path / 'work')
    assert 0.0 <= metrics['coco/AP'] <= 1.0

    from mmpose.apis import inference_topdown, init_model
    register_all_modules()  # the training checkpoint: see above
    model = init_model(
        cfg, str(tmp_path / 'work' / 'epoch_1.pth'), device='cpu')
    img = sorted(glob.glob(osp.join(root, 'val', '*.jpg')))[0]
    samples = inference_topdown(model, img, bboxes=np.array([[0, 0, 60, 100]]))
    assert samples[0].pred_instances.keypoints.shape == (1, 17, 2)

    # Skeletons of two people drawn on the picture.
    cfg.dump(str(tmp_path / 'pose.py'))
    out = tmp_path / 'pose.png'
    image_demo = tool('image_demo', '', base='demo')
    sample = image_demo.main([
        img,
        str(tmp_path / 'pose.py'),
        str(tmp_path / 'work' / 'epoch_1.pth'), '--out-file',
        str(out), '--bboxes', '0', '0', '64', '160', '64', '0', '128', '160',
        '--score-thr', '0'
    ])
    assert sample.pred_instances.keypoints.shape == (2, 17, 2)
    drawn = np.asarray(Image.open(out).convert('RGB'))
    assert drawn.shape == (160, 128, 3)
    assert not np.array_equal(drawn, np.asarray(Image.open(img)))


@pytest.mark.slow
def test_cub_train_val_inference(tmp_path, cfg_path, tiny_arch):
    root = make_cub_demo(str(tmp_path / 'cub'), num_train=4, num_test=2)
    cfg = Config.fromfile(cfg_path('van', 'van-b0_demo-cub.py'))
    cfg.model.backbone.arch = tiny_arch
    cfg.model.head.in_channels = tiny_arch['embed_dims'][-1]
    set_data_root(cfg, root)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].dataset.data_root = root
    cfg.train_cfg.update(max_epochs=1, val_interval=10)
    metrics = run(cfg, tmp_path / 'work')
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0

    from mmvan.apis import inference_model, init_model
    model = init_model(cfg, str(tmp_path / 'work' / 'epoch_1.pth'))
    img = sorted(glob.glob(osp.join(root, 'images', '*', '*.jpg')))[0]
    sample = inference_model(model, img)
    assert sample.pred_score.shape == (4, )
