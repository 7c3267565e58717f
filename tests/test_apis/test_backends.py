# Copyright (c) mmvan contributors. All rights reserved.
"""Deployment backends: ONNX Runtime and OpenVINO behind init_model, the
export cache, reduced precision and the errors (tiny models, 64x64)."""
import os
import os.path as osp
import shutil

import pytest
import torch

from mmvan.apis import inference_model, init_model
from mmvan.backends import (BackendCheckError, BackendModule,
                            BackendNotInstalledError, BackendUnsupportedError,
                            RuntimePredictor, pick_backend)
from mmvan.utils.errors import UserError


@pytest.fixture(scope='module')
def cls_config(root):
    return osp.join(root, 'configs', 'van', 'van-b0_demo.py')


@pytest.fixture(scope='module')
def cat(root):
    return osp.join(root, 'demo', 'cat.jpg')


def save_checkpoint(config, path, seed=0):
    torch.manual_seed(seed)
    model = init_model(config, deploy=False)
    model.init_weights()
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, str(path))
    return str(path)


@pytest.fixture(scope='module')
def ckpt(tmp_path_factory, cls_config):
    return save_checkpoint(cls_config,
                           tmp_path_factory.mktemp('cls') / 'cls.pth')


@pytest.fixture(scope='module')
def reference(ckpt, cls_config, cat):
    model = init_model(cls_config, ckpt, backend='pytorch')
    return inference_model(model, cat)


def _agrees_and_serves(model, backend, reference, ckpt, cat):
    assert model.backend == backend and model.precision == 'fp32'
    report = model.backend_report
    assert report['part'] == 'model' and report['max_rel'] <= 1e-4
    assert report['images'] == 2 and report['top1_agree'] == 1.0
    assert isinstance(model.backbone, BackendModule)
    assert osp.dirname(report['file']) == osp.dirname(ckpt)
    sample = inference_model(model, cat)
    torch.testing.assert_close(
        sample.pred_score, reference.pred_score, atol=1e-5, rtol=0)
    assert int(sample.pred_label) == int(reference.pred_label)
    # The model keeps its interface: logits in tensor mode, any batch.
    logits = model(torch.rand(3, 3, 64, 64), mode='tensor')
    assert logits.shape == (3, 5)


@pytest.mark.slow
def test_openvino_agrees_and_serves_inference(ckpt, reference, cls_config,
                                              cat):
    model = init_model(cls_config, ckpt, backend='openvino')
    _agrees_and_serves(model, 'openvino', reference, ckpt, cat)


@pytest.mark.slow
def test_onnxruntime_agrees_serves_and_caches(tmp_path, ckpt, reference,
                                              cls_config, cat):
    path = str(tmp_path / 'model.pth')
    shutil.copy(ckpt, path)
    model = init_model(cls_config, path, backend='onnxruntime')
    _agrees_and_serves(model, 'onnxruntime', reference, path, cat)
    first = model.backend_report
    assert not first['cached'] and osp.isfile(first['file'])
    assert osp.isfile(first['file'][:-len('.onnx')] + '.json')
    again = init_model(cls_config, path, backend='onnxruntime').backend_report
    assert again['cached'] and again['file'] == first['file']
    # Another checkpoint at the same path: rebuilt, the stale file gone.
    save_checkpoint(cls_config, path, seed=1)
    changed = init_model(
        cls_config, path, backend='onnxruntime').backend_report
    assert not changed['cached'] and changed['file'] != first['file']
    assert not osp.exists(first['file'])
    assert changed['max_rel'] <= 1e-4
    exports = [f for f in os.listdir(tmp_path) if f.endswith('.onnx')]
    assert exports == [osp.basename(changed['file'])]


def test_auto_picks_a_runtime_for_checkpoints_only(ckpt, monkeypatch,
                                                   cls_config):
    monkeypatch.delenv('MMVAN_BACKEND', raising=False)
    assert pick_backend('cpu') == 'openvino'  # both runtimes installed
    assert pick_backend('cuda:0') == 'pytorch'
    assert init_model(cls_config, ckpt).backend == 'openvino'
    # Nothing to key a cache on: the folded PyTorch model.
    model = init_model(cls_config)
    assert model.backend == 'pytorch' and model.backbone.deploy
    with pytest.raises(UserError, match='deploy=True'):
        init_model(cls_config, ckpt, deploy=False, backend='openvino')


@pytest.mark.slow
def test_segmentor_backbone_on_runtime(tmp_path, root, cat):
    seg_config = osp.join(root, 'configs', 'sem_fpn', 'fpn_van-b0_demo.py')
    ckpt = save_checkpoint(seg_config, tmp_path / 'seg.pth')
    model = init_model(seg_config, ckpt, backend='onnxruntime')
    report = model.backend_report
    # Checked at two sizes (dynamic height and width) on a real image.
    assert report['part'] == 'backbone' and report['max_rel'] <= 1e-4
    assert report['sizes'] == [(224, 320), (161, 243)]
    assert isinstance(model.backbone, BackendModule)
    assert model.decode_head is not None  # neck and head stay in PyTorch
    sample = inference_model(model, cat)
    assert tuple(sample.pred_sem_seg.data.shape[-2:]) == (300, 451)


@pytest.mark.parametrize('backend', ['openvino', 'pytorch'])
def test_bf16_is_explicit_and_reported(backend, ckpt, cls_config):
    model = init_model(cls_config, ckpt, backend=backend, precision='bf16')
    report = model.backend_report
    assert model.precision == 'bf16' and report['precision'] == 'bf16'
    assert 0 < report['max_rel'] <= 5e-2
    assert report['top1_agree'] == 1.0
    assert 'native_bf16' in report
    with pytest.raises(BackendUnsupportedError, match='no bf16'):
        init_model(cls_config, ckpt, backend='onnxruntime', precision='bf16')
    with pytest.raises(UserError, match='Unknown precision'):
        init_model(cls_config, ckpt, precision='fp16')


def test_missing_runtime_is_one_clear_error(ckpt, monkeypatch, cls_config):
    monkeypatch.setitem(__import__('sys').modules, 'openvino', None)
    with pytest.raises(BackendNotInstalledError) as info:
        init_model(cls_config, ckpt, backend='openvino')
    assert str(info.value) == ("backend 'openvino' is not installed: pip "
                               'install openvino')
    monkeypatch.delenv('MMVAN_BACKEND', raising=False)
    # auto goes on with the next runtime.
    assert pick_backend('cpu') == 'onnxruntime'


def test_mismatch_is_refused(ckpt, monkeypatch, cls_config):
    call = RuntimePredictor.__call__

    def off(self, x):
        return [o + 1e-2 * o.abs().max() for o in call(self, x)]

    monkeypatch.setattr(RuntimePredictor, '__call__', off)
    with pytest.raises(BackendCheckError, match='refusing'):
        init_model(cls_config, ckpt, backend='openvino')
    # auto falls back to the folded PyTorch model, with a warning.
    with pytest.warns(UserWarning, match='folded PyTorch'):
        model = init_model(cls_config, ckpt, backend='auto')
    assert model.backend == 'pytorch' and model.backbone.deploy


def test_optimize_for_inference_on_runtime():
    from mmvan.apis import optimize_for_inference
    from mmvan.models import VAN
    torch.manual_seed(0)
    model = VAN(arch='b0', out_indices=(0, 1, 2, 3)).eval()
    x = torch.rand(2, 3, 61, 83)
    with torch.no_grad():
        ref = model(x)
    fast = optimize_for_inference(model, backend='onnxruntime', shape=(64, 64))
    assert fast.backend == 'onnxruntime'
    assert fast.report['max_rel'] <= 1e-4
    for a, b in zip(ref, fast(x)):
        assert (a - b).abs().max() / a.abs().max() <= 1e-4
    assert not model.deploy
