# Copyright (c) mmvan contributors. All rights reserved.
import os.path as osp

import pytest
from mmengine.config import Config

from mmvan import cli
from mmvan.utils.errors import CheckpointError, UserError


@pytest.fixture
def config(root):
    return osp.join(root, 'configs', 'van', 'van-b0_8xb128_in1k.py')


def test_imagenet_with_few_class_folders_and_no_meta(tmp_path, config):
    for split in ('train', 'val'):
        for wnid in ('n01440764', 'n01443537'):
            (tmp_path / split / wnid).mkdir(parents=True)
    cfg = cli.load_config(
        config, {
            'train_dataloader.dataset.data_root': str(tmp_path),
            'val_dataloader.dataset.data_root': str(tmp_path)
        })
    with pytest.raises(UserError, match='has 2 class folders.*meta/train.txt'):
        cli.check_data(cfg, ['train_dataloader'])
    # With the annotation list the layout is accepted.
    (tmp_path / 'meta').mkdir()
    (tmp_path / 'meta' / 'train.txt').write_text('n01440764/a.JPEG 0\n')
    cli.check_data(cfg, ['train_dataloader'])


def test_runtime_keys_in_cfg_options(tmp_path, config):
    cfg = cli.load_config(config, {'work_dir': str(tmp_path / 'w')})
    assert cfg.work_dir == str(tmp_path / 'w')
    with pytest.raises(UserError, match="'wrok_dir' is not a key"):
        cli.load_config(config, {'wrok_dir': 'x'})
    # The training-at-scale keys (docs/training.md) are set from the
    # command line too, although the recipes do not name them.
    cfg = cli.load_config(config, {
        'effective_batch': 1024,
        'ema': 2e-4,
        'preemption': False
    })
    assert (cfg.effective_batch, cfg.ema, cfg.preemption) == (1024, 2e-4,
                                                              False)


def test_external_configs_load_as_mmengine_loads_them(root, monkeypatch):
    """mmvan keeps the metafile index of mmdet / mmseg per process; a config
    inheriting their experiment configs reads the same as with mmengine's
    own lookup."""
    from mmengine.config import Config
    from mmengine.config import utils as config_utils

    import mmvan  # noqa: F401
    path = osp.join(root, 'configs', 'atss', 'atss_van-b0_fpn_1x_coco.py')
    ours = Config.fromfile(path).to_dict()
    patched = config_utils._get_cfg_metainfo
    assert patched.__mmvan_wrapped__
    monkeypatch.setattr(config_utils, '_get_cfg_metainfo',
                        patched.mmengine_original)
    assert Config.fromfile(path).to_dict() == ours
    import mmdet
    with pytest.raises(ValueError, match='no_such_config'):
        patched(osp.dirname(mmdet.__file__), 'no_such_config')


@pytest.mark.parametrize(
    'config', ['van-b0_demo-cub.py', 'van-b4_in22k-pre_8xb8_cub-384px.py'])
def test_cub_data_check_looks_for_its_lists(root, tmp_path, config):
    """CUB's split is a column of its lists, not a folder: a CUB tree
    passes the check, and a folder without images.txt is named."""
    from mmvan.datasets.demo_data_paper import make_cub_demo
    data = make_cub_demo(str(tmp_path / 'cub'), num_train=4, num_test=2)
    loaders = ['train_dataloader', 'val_dataloader', 'test_dataloader']
    options = {f'{name}.dataset.data_root': data for name in loaders}
    path = osp.join(root, 'configs', 'van', config)
    cli.check_data(cli.load_config(path, options), loaders)
    empty = tmp_path / 'empty'
    empty.mkdir()
    options = {f'{name}.dataset.data_root': str(empty) for name in loaders}
    with pytest.raises(UserError, match='images.txt not found'):
        cli.check_data(cli.load_config(path, options), loaders)


@pytest.mark.parametrize('kind', ['Pretrained', 'mmvan.PretrainedVAN'])
def test_check_pretrained_finds_a_missing_file_before_training(tmp_path, kind):
    missing = str(tmp_path / 'missing.pth')
    cfg = Config(
        dict(
            model=dict(
                backbone=dict(
                    type='mmvan.VAN',
                    init_cfg=dict(type=kind, checkpoint=missing)))))
    with pytest.raises(cli.UserError, match='missing.pth not found'):
        cli.check_pretrained(cfg)
    cfg.model.backbone.init_cfg.checkpoint = 'mmvan://no-such-model'
    with pytest.raises(CheckpointError, match='no-such-model'):
        cli.check_pretrained(cfg)
