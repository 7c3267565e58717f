# Copyright (c) mmvan contributors. All rights reserved.
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mmvan.apis import inference_model, init_model, load_image
from mmvan.cli import UserError
from mmvan.utils.config import load_config
from mmvan.zoo import WeightsMismatchError

CONFIGS = {
    'cls': 'configs/van/van-b0_demo.py',
    'det': 'configs/retinanet/retinanet_van-b0_fpn_demo.py',
    'seg': 'configs/sem_fpn/fpn_van-b0_demo.py',
}


def save_checkpoint(root, task, path, seed=0):
    torch.manual_seed(seed)
    model = init_model(osp.join(root, CONFIGS[task]), deploy=False)
    model.init_weights()
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return model


@pytest.fixture(scope='module')
def checkpoints(root, tmp_path_factory):
    folder = tmp_path_factory.mktemp('ckpt')
    out = {}
    for task in CONFIGS:
        out[task] = str(folder / f'{task}.pth')
        save_checkpoint(root, task, out[task])
    return out


@pytest.mark.parametrize('task', sorted(CONFIGS))
def test_api_round_trip(task, checkpoints, root):
    raw = init_model(
        osp.join(root, CONFIGS[task]), checkpoints[task], deploy=False)
    assert raw.task == task and not raw.training
    ref = torch.load(checkpoints[task], weights_only=True)['state_dict']
    for k, v in raw.state_dict().items():
        assert torch.equal(v, ref[k]), k
    model = init_model(osp.join(root, CONFIGS[task]), checkpoints[task])
    assert model.backbone.deploy  # the fast path is the default
    sample = inference_model(model, osp.join(root, 'demo', 'cat.jpg'))
    raw_sample = inference_model(raw, osp.join(root, 'demo', 'cat.jpg'))
    if task == 'cls':
        torch.testing.assert_close(
            sample.pred_score, raw_sample.pred_score, atol=1e-4, rtol=0)
    elif task == 'seg':
        same = (sample.pred_sem_seg.data == raw_sample.pred_sem_seg.data)
        assert same.float().mean() > 0.999
    if task == 'cls':
        assert sample.pred_score.shape == (5, )
        assert float(sample.pred_score.sum()) == pytest.approx(1, abs=1e-4)
        assert int(sample.pred_label) == int(sample.pred_score.argmax())
    elif task == 'det':
        assert sample.pred_instances.bboxes.shape[-1] == 4
    else:
        assert tuple(sample.pred_sem_seg.data.shape[-2:]) == (300, 451)


@pytest.mark.parametrize('task', sorted(CONFIGS))
def test_image_demo_writes_picture_of_input_size(task, checkpoints, tmp_path,
                                                 root, tool):
    image_demo = tool('image_demo', '', base='demo')
    out = tmp_path / f'{task}.png'
    image_demo.main([
        osp.join(root, 'demo', 'coffee.jpg'),
        osp.join(root, CONFIGS[task]), checkpoints[task], '--out-file',
        str(out)
    ])
    assert out.stat().st_size > 0
    assert Image.open(out).size == Image.open(
        osp.join(root, 'demo', 'coffee.jpg')).size


def test_gray_and_rgba_images(tmp_path, checkpoints, root):
    rgb = Image.open(osp.join(root, 'demo', 'cat.jpg'))
    gray, rgba = tmp_path / 'g.png', tmp_path / 'a.png'
    rgb.convert('L').save(gray)
    rgb.convert('RGBA').save(rgba)
    assert load_image(str(gray)).shape == (300, 451, 3)
    assert load_image(str(rgba)).shape == (300, 451, 3)
    assert load_image(np.zeros((7, 9), np.uint8)).shape == (7, 9, 3)
    assert load_image(np.zeros((7, 9, 4), np.uint8)).shape == (7, 9, 3)
    model = init_model(osp.join(root, CONFIGS['cls']), checkpoints['cls'])
    for path in (gray, rgba):
        assert inference_model(model, str(path)).pred_score.shape == (5, )


@pytest.mark.slow
def test_bad_inputs(tmp_path, checkpoints, root):
    with pytest.raises(UserError, match='does not exist'):
        load_image(str(tmp_path / 'missing.jpg'))
    text = tmp_path / 'notes.jpg'
    text.write_text('not an image')
    with pytest.raises(UserError, match='not an image'):
        load_image(str(text))
    # A checkpoint of another architecture.
    with pytest.raises(
            WeightsMismatchError,
            match='does not fit the model of config.*shapes differ'):
        init_model(
            osp.join(root, CONFIGS['cls']),
            checkpoints['cls'],
            cfg_options={'model.backbone.arch': 'b1'})
    # Through the command line: one message, no traceback.
    out = subprocess.run([
        sys.executable, 'demo/image_demo.py',
        str(text), CONFIGS['cls'], checkpoints['cls']
    ],
                         cwd=root,
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert out.returncode == 2 and 'Traceback' not in out.stderr
    assert 'not an image' in out.stderr


@pytest.mark.parametrize('attention', ['lka', 'lska'])
def test_attention_maps(tmp_path, checkpoints, attention, root, tool):
    vis_attention = tool('vis_attention', 'visualization')
    options = ['--stages', '0', '1', '3']
    out = tmp_path / 'attn.png'
    if attention == 'lska':
        cfg = 'configs/van/van-lska-b0_8xb128_in1k.py'
        maps = vis_attention.main([
            osp.join(root, 'demo', 'cat.jpg'),
            osp.join(root, cfg), '--out-file',
            str(out), '--shape', '97', '131', *options
        ])
        h, w = 97, 131
    else:
        maps = vis_attention.main([
            osp.join(root, 'demo', 'cat.jpg'),
            osp.join(root, CONFIGS['cls']), checkpoints['cls'], '--out-file',
            str(out), *options
        ])
        h, w = 300, 451
    assert sorted(maps) == [0, 1, 3]
    size = [((h - 1) // 4 + 1, (w - 1) // 4 + 1)]
    for _ in range(3):
        size.append(((size[-1][0] - 1) // 2 + 1, (size[-1][1] - 1) // 2 + 1))
    for stage, attn in maps.items():
        assert attn.shape == size[stage]
        assert float(attn.std()) > 0  # not constant
    assert out.stat().st_size > 0


@pytest.mark.slow
def test_onnx_export_dynamic(tmp_path, checkpoints, root, tool):
    pytorch2onnx = tool('pytorch2onnx', 'deployment')
    out = tmp_path / 'van.onnx'
    worst = pytorch2onnx.main([
        osp.join(root, CONFIGS['cls']), checkpoints['cls'], '--out',
        str(out), '--dynamic', '--shape', '64', '96'
    ])
    assert worst <= 1e-4 and out.stat().st_size > 0
    import onnxruntime as ort
    session = ort.InferenceSession(str(out))
    for shape in [(1, 3, 64, 96), (3, 3, 77, 51)]:
        logits = session.run(
            None,
            {'image': np.random.rand(*shape).astype(np.float32) * 255})[0]
        assert logits.shape == (shape[0], 5)


@pytest.mark.slow
def test_onnx_backbone_only(tmp_path, checkpoints, root, tool):
    pytorch2onnx = tool('pytorch2onnx', 'deployment')
    out = tmp_path / 'backbone.onnx'
    worst = pytorch2onnx.main([
        osp.join(root, CONFIGS['seg']), checkpoints['seg'], '--out',
        str(out), '--backbone-only', '--shape', '64', '64'
    ])
    assert worst <= 1e-4
    with pytest.raises(UserError, match='--backbone-only'):
        pytorch2onnx.main([
            osp.join(root, CONFIGS['seg']), checkpoints['seg'], '--out',
            str(tmp_path / 'x.onnx')
        ])
    assert not (tmp_path / 'x.onnx').exists()


def _test_loader_image(path):
    """The image as tools/test.py's pipeline decodes it."""
    from mmcv.transforms import LoadImageFromFile
    return LoadImageFromFile()(dict(img_path=str(path)))['img']


def test_decoding_equals_the_test_pipeline(tmp_path, root):
    """EXIF orientation and 16-bit images: the API sees what tools/test.py
    sees."""
    rgb = Image.open(osp.join(root, 'demo', 'cat.jpg'))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    rotated = tmp_path / 'exif.jpg'
    rgb.save(rotated, exif=exif.tobytes())
    ours = load_image(str(rotated))
    assert ours.shape == (451, 300, 3)
    assert np.array_equal(ours, _test_loader_image(rotated))
    deep = tmp_path / 'deep.png'
    values = (np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 3)
    Image.fromarray(values).save(deep)
    ours = load_image(str(deep))
    assert np.array_equal(ours, _test_loader_image(deep))
    # 16-bit values are reduced as the loader does (>> 8), not stretched.
    assert ours.max() == (values.max() >> 8)


@pytest.mark.slow
def test_extreme_images_are_refused(tmp_path, root):
    from mmvan.utils.errors import DataError
    thin = tmp_path / 'thin.png'
    Image.fromarray(np.zeros((1, 6000), np.uint8)).save(thin)
    with pytest.raises(DataError, match='aspect ratio'):
        load_image(str(thin))
    out = subprocess.run([
        sys.executable, 'demo/image_demo.py',
        str(thin), CONFIGS['cls'], 'none.pth'
    ],
                         cwd=root,
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert out.returncode == 2 and 'aspect ratio' in out.stderr
    assert 'Traceback' not in out.stderr


@pytest.mark.slow
def test_large_image_demo_memory(tmp_path, checkpoints, root):
    """A 6000x6000 JPEG through image_demo.py: peak RSS <= 1.5 GB, and the
    picture is drawn at display size."""
    big = tmp_path / 'big.jpg'
    rng = np.random.default_rng(0)
    tile = rng.integers(0, 255, (375, 375, 3), np.uint8)
    Image.fromarray(np.tile(tile, (16, 16, 1))).save(big, quality=80)
    out_file = tmp_path / 'pred.png'
    code = ('import resource, subprocess, sys\n'
            'p = subprocess.run([sys.executable, "demo/image_demo.py", '
            f'{str(big)!r}, {CONFIGS["cls"]!r}, {checkpoints["cls"]!r}, '
            f'"--out-file", {str(out_file)!r}])\n'
            'peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n'
            'print("PEAK_KIB", peak)\n'
            'sys.exit(p.returncode)\n')
    out = subprocess.run([sys.executable, '-c', code],
                         cwd=root,
                         capture_output=True,
                         text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    peak_kib = int(out.stdout.split('PEAK_KIB')[-1].split()[0])
    assert peak_kib <= 1.5 * 2**20, f'{peak_kib / 2**20:.2f} GiB'
    assert max(Image.open(out_file).size) == 1280


@pytest.fixture
def inheriting_config(tmp_path):
    """A user's config that inherits mmvan's with ``mmvan::``."""
    cfg = tmp_path / 'mine.py'
    cfg.write_text("_base_ = 'mmvan::van/van-b0_8xb128_in1k.py'\n"
                   'model = dict(head=dict(num_classes=7))\n')
    return cfg


@pytest.mark.slow
def test_init_model_needs_no_setup_call(tmp_path, root, inheriting_config):
    # A Python user who only imports mmvan.apis: init_model reads a config
    # that inherits mmvan's with ``mmvan::`` and builds it, because it makes
    # the set-up call itself (importing mmvan makes none).
    script = (
        'from mmvan.apis import init_model\n'
        f'model = init_model({str(inheriting_config)!r}, deploy=False)\n'
        'print(model.head.fc.out_features, type(model.backbone).__name__,'
        ' model.backbone.embed_dims)\n')
    out = subprocess.run([sys.executable, '-c', script],
                         cwd=str(tmp_path),
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-6:] == [
        '7', 'VAN', '[32,', '64,', '160,', '256]'
    ]


def test_config_inheriting_mmvan_builds_in_its_own_scope(inheriting_config):
    # mmengine marks the dicts of a ``mmvan::`` base with the scope 'mmvan',
    # where mmpretrain's ImageClassifier and LinearClsHead do not exist.
    model = init_model(str(inheriting_config), deploy=False)
    assert type(model).__name__ == 'ImageClassifier'
    assert type(model).__module__.startswith('mmpretrain.')
    assert type(model.backbone).__module__ == 'mmvan.models.backbones.van'
    assert model.head.fc.out_features == 7


def test_config_inheriting_mmvan_keeps_scopes_the_user_wrote(tmp_path):
    cfg = tmp_path / 'mine.py'
    cfg.write_text(
        "_base_ = 'mmvan::van/van-b0_8xb128_in1k.py'\n"
        "custom_hooks = [dict(type='EpochSeedHook', _scope_='mmvan')]\n")
    loaded = load_config(str(cfg))
    # The mark mmengine put on the inherited model is gone; the one written
    # on a hook that mmvan registers stays.
    assert '_scope_' not in loaded.model
    assert loaded.custom_hooks == [dict(type='EpochSeedHook', _scope_='mmvan')]
