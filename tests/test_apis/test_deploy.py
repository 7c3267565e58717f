# Copyright (c) mmvan contributors. All rights reserved.
"""The deploy and backend hooks are registered mmvan hooks; the backend
check runs on images shipped inside the package; the public functions of
``mmvan.apis`` are typed."""
import ast
import fnmatch
import inspect
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from mmengine.registry import HOOKS as MMENGINE_HOOKS

import mmvan
import mmvan.apis
from mmvan.apis import init_model
from mmvan.backends import build_backend_model
from mmvan.backends import check as backend_check
from mmvan.backends import check_images

PACKAGE_DIR = osp.dirname(osp.abspath(mmvan.__file__))


def test_check_images_ship_with_the_package(root):
    images = check_images()
    assert [osp.basename(p) for p in images] == ['cat.jpg', 'coffee.jpg']
    for path in images:
        # Inside the package, not in the repository's demo folder.
        assert osp.commonpath([PACKAGE_DIR, path]) == PACKAGE_DIR
        with open(path, 'rb') as f, open(
                osp.join(root, 'demo', osp.basename(path)), 'rb') as g:
            assert f.read() == g.read()
    # setup.py installs them with the package.
    with open(osp.join(root, 'setup.py'), encoding='utf-8') as f:
        tree = ast.parse(f.read())
    patterns = [
        ast.literal_eval(node.value)['mmvan'] for node in ast.walk(tree)
        if isinstance(node, ast.keyword) and node.arg == 'package_data'
    ]
    assert len(patterns) == 1
    for path in images:
        rel = osp.relpath(path, PACKAGE_DIR).replace(osp.sep, '/')
        assert any(fnmatch.fnmatch(rel, p) for p in patterns[0]), rel


def test_backend_check_reads_only_package_images(root, monkeypatch):
    config = osp.join(root, 'configs', 'van', 'van-b0_demo.py')
    torch.manual_seed(0)
    model = init_model(config, deploy=False)
    read = []
    load_image = backend_check.load_image

    def recording(img, cfg=None):
        read.append(osp.abspath(str(img)))
        return load_image(img, cfg)

    monkeypatch.setattr(backend_check, 'load_image', recording)
    build_backend_model(model, 'pytorch', 'bf16')
    assert model.backend_report['images'] == 2
    assert sorted(read) == sorted(check_images())
    assert all(not p.startswith(osp.join(root, 'demo')) for p in read)


def test_deploy_hook_is_registered_and_folds(tiny):
    hook = MMENGINE_HOOKS.build(dict(type='mmvan.DeployHook'))
    model = init_model(tiny(), deploy=False)
    model.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        want = model(x, mode='tensor')
    assert not model.backbone.deploy
    hook.before_test(SimpleNamespace(model=model))
    assert model.backbone.deploy
    # The folded model has no BatchNorm left in its backbone.
    assert not [
        m for m in model.backbone.modules()
        if isinstance(m, torch.nn.BatchNorm2d)
    ]
    with torch.no_grad():
        got = model(x, mode='tensor')
    assert (got - want).abs().max() <= 1e-4 * want.abs().max()


def test_backend_hook_is_registered():
    hook = MMENGINE_HOOKS.build(
        dict(
            type='mmvan.BackendHook',
            backend='onnxruntime',
            precision='int8',
            checkpoint='model.pth'))
    assert (hook.backend, hook.precision,
            hook.checkpoint) == ('onnxruntime', 'int8', 'model.pth')
    assert hook.priority == 'LOWEST'


@pytest.mark.parametrize('name', mmvan.apis.__all__)
def test_public_functions_are_typed(name):
    fn = getattr(mmvan.apis, name)
    signature = inspect.signature(fn)
    untyped = [
        p.name for p in signature.parameters.values()
        if p.annotation is inspect.Parameter.empty and p.kind not in (
            p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    assert not untyped, f'{name}: no type for {untyped}'
    assert signature.return_annotation is not inspect.Signature.empty, name
