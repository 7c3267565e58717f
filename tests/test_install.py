# Copyright (c) mmvan contributors. All rights reserved.
import subprocess
import sys

import pytest

# Each test starts a fresh interpreter.
pytestmark = pytest.mark.slow


def test_all_libraries_import_together():
    code = ('import mmvan, mmpretrain.models, mmdet.models, mmseg.models\n'
            'import mmcv.ops\n'
            'print(mmvan.__version__)')
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


def test_mmvan_config_inheritance(tmp_path):
    """``_base_ = 'mmvan::...'`` resolves from outside the repository."""
    cfg = tmp_path / 'my_van.py'
    cfg.write_text("_base_ = 'mmvan::van/van-b0_8xb128_in1k.py'\n"
                   "model = dict(backbone=dict(arch='b1'))\n")
    code = ('import mmvan\n'
            'from mmengine.config import Config\n'
            f'cfg = Config.fromfile({str(cfg)!r})\n'
            'assert cfg.model.backbone.type == "mmvan.VAN"\n'
            'assert cfg.model.backbone.arch == "b1"\n'
            'assert cfg.data_preprocessor.mean == [127.5] * 3\n'
            'print("ok")\n')
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True,
                         timeout=300,
                         cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith('ok')
