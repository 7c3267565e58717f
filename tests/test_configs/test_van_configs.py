# Copyright (c) mmvan contributors. All rights reserved.
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmvan  # noqa: F401

LKA = {
    'b0': 4_105_800,
    'b1': 13_861_800,
    'b2': 26_578_472,
    'b3': 44_765_608,
    'b4': 60_283_176,
    'b5': 89_967_688,
    'b6': 199_829_416,
}
LSKA = {'b0': 4_029_000, 'b1': 13_732_776, 'b2': 26_292_776}
WIDTH = {'b0': 256, 'b5': 768, 'b6': 768}


def expected_params(backbone, num_classes):
    arch = backbone.arch
    table = LSKA if backbone.get('attention', 'lka') == 'lska' else LKA
    c = WIDTH.get(arch, 512)
    return table[arch] - 1000 * (c + 1) + num_classes * (c + 1)


def test_all_configs_found(root):
    names = {
        osp.basename(c)
        for c in glob.glob(osp.join(root, 'configs', 'van', '*.py'))
    }
    for name in ('van-b0_8xb128_in1k.py', 'van-b1_8xb128_in1k.py',
                 'van-b2_8xb128_in1k.py', 'van-b3_8xb128_in1k.py',
                 'van-b4_8xb128_in1k.py', 'van-lska-b0_8xb128_in1k.py',
                 'van-lska-b1_8xb128_in1k.py', 'van-lska-b2_8xb128_in1k.py',
                 'van-b6_in22k-pre_8xb64_in1k-384px.py', 'van-b0_demo.py'):
        assert name in names


@pytest.mark.configs('van/*.py')
def test_config_builds_with_expected_params(path):
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(path)
    assert cfg.model.backbone.type == 'mmvan.VAN'
    assert cfg.default_scope == 'mmpretrain'
    with DefaultScope.overwrite_default_scope('mmpretrain'), \
            torch.device('meta'):
        model = MODELS.build(cfg.model)
    n = sum(p.numel() for p in model.parameters())
    assert n == expected_params(cfg.model.backbone, cfg.model.head.num_classes)
    keys = set(model.state_dict())
    assert 'backbone.patch_embed1.proj.weight' in keys
    assert 'head.fc.weight' in keys


@pytest.mark.parametrize('name',
                         ['van-b0_8xb128_in1k.py', 'van-b3_8xb128_in1k.py'])
def test_official_recipe(root, name):
    cfg = Config.fromfile(osp.join(root, 'configs', 'van', name))
    assert cfg.data_preprocessor.mean == [127.5] * 3
    assert cfg.data_preprocessor.std == [127.5] * 3
    train = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    assert train == [
        'LoadImageFromFile', 'RandomResizedCrop', 'RandomFlip', 'RandAugment',
        'RandomErasing', 'PackInputs'
    ]
    rand_aug = cfg.train_dataloader.dataset.pipeline[3]
    assert (rand_aug.magnitude_level, rand_aug.num_policies,
            rand_aug.magnitude_std) == (9, 2, 0.5)
    test = cfg.test_dataloader.dataset.pipeline
    assert test[1].scale == 248 and test[1].interpolation == 'bicubic'
    assert test[2].crop_size == 224
    assert cfg.optim_wrapper.optimizer.lr == 1e-3
    assert cfg.optim_wrapper.optimizer.weight_decay == 0.05
    assert cfg.optim_wrapper.paramwise_cfg.norm_decay_mult == 0.0
    assert cfg.auto_scale_lr.base_batch_size == 1024
    assert cfg.train_dataloader.batch_size == 128
    assert cfg.train_cfg.max_epochs == 310
    warmup, cosine = cfg.param_scheduler
    assert warmup.end == 5 and cosine.eta_min == 1e-5
    augments = [a.type for a in cfg.model.train_cfg.augments]
    assert augments == ['Mixup', 'CutMix']
    assert cfg.model.head.loss.label_smooth_val == 0.1
    assert cfg.model.backbone.drop_path_rate == (0.2
                                                 if 'van-b3' in name else 0.1)


def test_finetune_recipe(root):
    cfg = Config.fromfile(
        osp.join(root, 'configs', 'van', 'van-b5_in22k-pre_8xb64_in1k.py'))
    assert cfg.optim_wrapper.optimizer.lr == 5e-5
    assert cfg.optim_wrapper.optimizer.weight_decay == 1e-8
    assert cfg.train_cfg.max_epochs == 30
    assert cfg.auto_scale_lr.base_batch_size == 512
    assert not cfg.model.train_cfg
