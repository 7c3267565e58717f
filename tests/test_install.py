# Copyright (c) mmvan contributors. All rights reserved.
import subprocess
import sys

import pytest
from mmengine.config import Config

from mmvan.apis import register_all_modules


@pytest.mark.slow  # a fresh interpreter
def test_all_libraries_import_together():
    code = ('import mmvan, mmpretrain.models, mmdet.models, mmseg.models\n'
            'import mmcv.ops\n'
            'print(mmvan.__version__)')
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


def test_mmvan_config_inheritance(tmp_path, monkeypatch):
    """``_base_ = 'mmvan::...'`` resolves from outside the repository once
    :func:`mmvan.apis.register_all_modules` has run."""
    cfg = tmp_path / 'my_van.py'
    cfg.write_text("_base_ = 'mmvan::van/van-b0_8xb128_in1k.py'\n"
                   "model = dict(backbone=dict(arch='b1'))\n")
    monkeypatch.chdir(tmp_path)
    register_all_modules()
    cfg = Config.fromfile(str(cfg))
    assert cfg.model.backbone.type == 'mmvan.VAN'
    assert cfg.model.backbone.arch == 'b1'
    assert cfg.data_preprocessor.mean == [127.5] * 3
