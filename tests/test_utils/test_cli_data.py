# Copyright (c) mmvan contributors. All rights reserved.
import os.path as osp

import pytest

from mmvan.utils import cli
from mmvan.utils.errors import UserError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'van', 'van-b0_8xb128_in1k.py')


def test_imagenet_with_few_class_folders_and_no_meta(tmp_path):
    for split in ('train', 'val'):
        for wnid in ('n01440764', 'n01443537'):
            (tmp_path / split / wnid).mkdir(parents=True)
    cfg = cli.load_config(
        CONFIG, {
            'train_dataloader.dataset.data_root': str(tmp_path),
            'val_dataloader.dataset.data_root': str(tmp_path)
        })
    with pytest.raises(UserError, match='has 2 class folders.*meta/train.txt'):
        cli.check_data(cfg, ['train_dataloader'])
    # With the annotation list the layout is accepted.
    (tmp_path / 'meta').mkdir()
    (tmp_path / 'meta' / 'train.txt').write_text('n01440764/a.JPEG 0\n')
    cli.check_data(cfg, ['train_dataloader'])


def test_runtime_keys_in_cfg_options(tmp_path):
    cfg = cli.load_config(CONFIG, {'work_dir': str(tmp_path / 'w')})
    assert cfg.work_dir == str(tmp_path / 'w')
    with pytest.raises(UserError, match="'wrok_dir' is not a key"):
        cli.load_config(CONFIG, {'wrok_dir': 'x'})
