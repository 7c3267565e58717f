# Copyright (c) mmvan contributors. All rights reserved.
"""Real runs of tools/train.py and tools/test.py on a shrunken demo set."""
import glob
import json
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from mmvan.datasets import make_classification_demo

CONFIG = osp.join('configs', 'van', 'van-b0_demo.py')  # in the repository


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('data') / 'demo'
    return make_classification_demo(
        str(root), num_train=8, num_val=4, size=32, seed=1)


def small_options(data_root, epochs=1, workers=0):
    opts = [f'train_cfg.max_epochs={epochs}', 'train_cfg.val_interval=1']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [
            f'{loader}.dataset.data_root={data_root}',
            f'{loader}.num_workers={workers}', f'{loader}.batch_size=8'
        ]
    opts += [
        'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.visualization.enable=False'
    ]
    return opts


@pytest.mark.slow
def test_train_then_test(tmp_path, data_root, run_tool):
    work_dir = tmp_path / 'work'
    run_tool([
        'tools/train.py', CONFIG, '--work-dir',
        str(work_dir), '--cfg-options', *small_options(data_root, epochs=2)
    ])
    ckpt = work_dir / 'epoch_2.pth'
    assert ckpt.is_file()
    metrics = tmp_path / 'metrics.json'
    out = run_tool([
        'tools/test.py', CONFIG,
        str(ckpt), '--work-dir',
        str(tmp_path / 'test'), '--out',
        str(metrics), '--out-item', 'metrics', '--cfg-options',
        *small_options(data_root)
    ])
    assert 'Folded BatchNorms' in out.stdout + out.stderr
    folded = json.loads(metrics.read_text())['accuracy/top1']
    # The folded model (default) and the model as trained agree.
    metrics_raw = tmp_path / 'metrics_raw.json'
    run_tool([
        'tools/test.py', CONFIG,
        str(ckpt), '--no-deploy', '--work-dir',
        str(tmp_path / 'test_raw'), '--out',
        str(metrics_raw), '--out-item', 'metrics', '--cfg-options',
        *small_options(data_root)
    ])
    assert json.loads(metrics_raw.read_text())['accuracy/top1'] == folded
    # Predictions dump.
    preds = tmp_path / 'preds.pkl'
    run_tool([
        'tools/test.py', CONFIG,
        str(ckpt), '--work-dir',
        str(tmp_path / 'test_pred'), '--out',
        str(preds), '--cfg-options', *small_options(data_root)
    ])
    assert preds.stat().st_size > 0


@pytest.mark.slow
def test_amp_on_cpu_uses_bf16(tmp_path, data_root, run_tool):
    out = run_tool([
        'tools/train.py', CONFIG, '--amp', '--no-validate', '--work-dir',
        str(tmp_path / 'amp'), '--cfg-options', *small_options(data_root)
    ])
    assert (tmp_path / 'amp' / 'epoch_1.pth').is_file()
    assert 'CPUAmpOptimWrapper' in (tmp_path / 'amp' /
                                    'van-b0_demo.py').read_text()
    assert 'Traceback' not in out.stderr


@pytest.mark.slow
def test_dist_train_two_cpu_processes(tmp_path, data_root, dist_train):
    dist_train(CONFIG, '--work-dir', str(tmp_path / 'dist'), '--cfg-options',
               *small_options(data_root))
    assert (tmp_path / 'dist' / 'epoch_1.pth').is_file()
    logs = glob.glob(str(tmp_path / 'dist' / '*' / '*.log'))
    text = open(logs[0]).read()
    # The runtime environment the Runner logs: two processes of a pytorch
    # launch, with gloo as the process group's backend (no GPU).
    for line in ('Distributed launcher: pytorch', 'Distributed training: True',
                 'GPU number: 2', "dist_cfg: {'backend': 'gloo'}"):
        assert f'    {line}\n' in text, line


def _state(path):
    return torch.load(path, map_location='cpu', weights_only=True)


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted(tmp_path, data_root,
                                                    run_tool, root):
    opts = small_options(
        data_root, epochs=3) + [
            'train_dataloader.batch_size=2', 'randomness.deterministic=True'
        ]
    # Uninterrupted reference.
    ref_dir = tmp_path / 'ref'
    run_tool([
        'tools/train.py', CONFIG, '--work-dir',
        str(ref_dir), '--cfg-options', *opts
    ])
    ref = _state(ref_dir / 'epoch_3.pth')

    # Same run, killed with SIGKILL in the middle of epoch 2.
    run_dir = tmp_path / 'killed'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.Popen([
        sys.executable, 'tools/train.py', CONFIG, '--work-dir',
        str(run_dir), '--cfg-options', *opts
    ],
                            cwd=root,
                            env=env,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    killed = False
    while time.time() < deadline and proc.poll() is None:
        logs = glob.glob(str(run_dir / '*' / '*.log'))
        if (run_dir / 'epoch_1.pth').is_file() and logs and re.search(
                r'Epoch\(train\)\s+\[2\]\[',
                open(logs[0]).read()):
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.05)
    proc.wait()
    assert killed, 'training finished before it could be interrupted'
    assert not (run_dir / 'epoch_2.pth').exists()

    run_tool([
        'tools/train.py', CONFIG, '--resume', '--work-dir',
        str(run_dir), '--cfg-options', *opts
    ])
    resumed = _state(run_dir / 'epoch_3.pth')
    assert resumed['meta']['epoch'] == 3
    for key, value in ref['state_dict'].items():
        assert torch.equal(value, resumed['state_dict'][key]), key


def _assert_one_clear_error(out, *needles):
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert 'Traceback' not in out.stderr
    errors = [
        line for line in out.stderr.splitlines() if line.startswith('error')
    ]
    assert len(errors) == 1 and errors[0].startswith('error: ')
    text = out.stderr
    for needle in needles:
        assert needle in text, text


@pytest.mark.slow
def test_missing_config(tmp_path, run_tool):
    out = run_tool(['tools/train.py', 'configs/van/van-b0_8xb128_in1kk.py'],
                   check=False)
    _assert_one_clear_error(out, 'does not exist', 'van-b0_8xb128_in1k.py')


@pytest.mark.slow
def test_missing_imagenet_leaves_nothing(tmp_path, run_tool):
    work_dir = tmp_path / 'w'
    out = run_tool([
        'tools/train.py', 'configs/van/van-b0_8xb128_in1k.py', '--work-dir',
        str(work_dir), '--cfg-options',
        f'train_dataloader.dataset.data_root={tmp_path}/imagenet',
        f'val_dataloader.dataset.data_root={tmp_path}/imagenet'
    ],
                   check=False)
    _assert_one_clear_error(out, 'dataset not found', 'imagenet',
                            'image-net.org')
    assert not work_dir.exists()
    out = run_tool([
        'tools/test.py', 'configs/van/van-b0_8xb128_in1k.py',
        str(tmp_path / 'none.pth')
    ],
                   check=False)
    _assert_one_clear_error(out, 'none.pth does not exist')


@pytest.mark.slow
def test_config_key_typos(tmp_path, data_root, run_tool):
    work_dir = tmp_path / 'w'
    out = run_tool([
        'tools/train.py', CONFIG, '--work-dir',
        str(work_dir), '--cfg-options', *small_options(data_root),
        'trian_cfg.max_epochs=3'
    ],
                   check=False)
    _assert_one_clear_error(out, "'trian_cfg' is not a key",
                            'Did you mean: train_cfg')
    out = run_tool([
        'tools/train.py', CONFIG, '--work-dir',
        str(work_dir), '--cfg-options', *small_options(data_root),
        'model.backbone.drop_path_rat=0.3'
    ],
                   check=False)
    _assert_one_clear_error(out, 'drop_path_rat')
    assert not work_dir.exists()


@pytest.mark.slow
def test_wrong_arch(tmp_path, data_root, run_tool):
    out = run_tool([
        'tools/train.py', CONFIG, '--work-dir',
        str(tmp_path / 'w'), '--cfg-options', *small_options(data_root),
        'model.backbone.arch=b9'
    ],
                   check=False)
    _assert_one_clear_error(out, "Unknown VAN arch 'b9'", "'b0'")
    assert not (tmp_path / 'w').exists()


def test_gray_and_rgba_images_become_three_channels(data_root, root):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import DATASETS
    from PIL import Image
    cfg = Config.fromfile(osp.join(root, CONFIG))
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = data_root
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        dataset = DATASETS.build(ds_cfg)
    modes = {}
    for i in range(len(dataset)):
        path = dataset.get_data_info(i)['img_path']
        mode = Image.open(path).mode
        if mode in ('L', 'RGBA') and mode not in modes:
            modes[mode] = dataset[i]['inputs']
    assert set(modes) == {'L', 'RGBA'}
    for inputs in modes.values():
        assert inputs.shape == (3, 64, 64)


# Reliability: failures keep the evidence, resumes find what loads, a
# diverging or corrupt run stops with one message.


def _corrupt(data_root, kinds=('empty', 'truncated')):
    """Replace training images by a zero-byte and a truncated JPEG."""
    lines = open(osp.join(data_root, 'meta', 'train.txt')).read().split()
    paths = [
        osp.join(data_root, 'train', p) for p in lines[::2]
        if p.endswith(('.jpg', '.JPEG', '.png'))
    ]
    done = []
    for kind, path in zip(kinds, paths):
        data = open(path, 'rb').read()
        with open(path, 'wb') as f:
            f.write(b'' if kind == 'empty' else data[:len(data) // 3])
        done.append(path)
    return done


@pytest.fixture
def corrupt_root(tmp_path):
    root = make_classification_demo(
        str(tmp_path / 'corrupt'), num_train=8, num_val=4, size=32, seed=1)
    bad = _corrupt(root)
    return root, bad


@pytest.mark.slow
def test_two_processes_stop_at_once_when_one_fails(tmp_path, corrupt_root,
                                                   dist_train):
    """One rank meets an unreadable image with policy 'raise': its error
    line comes first and both processes are gone within seconds."""
    data, bad = corrupt_root
    start = time.time()
    out = dist_train(
        CONFIG,
        '--work-dir',
        str(tmp_path / 'dist'),
        '--cfg-options',
        *small_options(data, epochs=3),
        'train_dataloader.batch_size=1',
        'unreadable_images.policy=raise',
        timeout=240,
        check=False)
    elapsed = time.time() - start
    assert out.returncode != 0
    errors = [
        line for line in out.stderr.splitlines() if line.startswith('error:')
    ]
    assert errors and 'cannot read image' in errors[0], out.stderr[-3000:]
    assert any(osp.basename(p) in errors[0] for p in bad)
    assert elapsed < 120, elapsed


@pytest.mark.slow
def test_unreadable_images_are_skipped_and_counted(tmp_path, corrupt_root,
                                                   run_tool):
    data, bad = corrupt_root
    work_dir = tmp_path / 'w'
    out = run_tool([
        'tools/train.py', CONFIG, '--work-dir',
        str(work_dir), '--no-validate', '--cfg-options',
        *small_options(data, workers=2), 'unreadable_images.max_share=0.5'
    ])
    listed = (work_dir / 'unreadable_images.txt').read_text()
    for path in bad:
        assert path in listed
        assert f'skipped unreadable image {path}' in out.stderr
    assert 'empty file' in listed
    assert (work_dir / 'epoch_1.pth').is_file()
    # With the default share (0.1 %), the run stops and names the files.
    out = run_tool([
        'tools/train.py', CONFIG, '--work-dir',
        str(tmp_path / 'w2'), '--no-validate', '--cfg-options',
        *small_options(data, workers=2)
    ],
                   check=False)
    _assert_one_clear_error(out, 'training images are unreadable',
                            osp.basename(bad[0]))


@pytest.mark.slow
def test_check_dataset_lists_bad_files(corrupt_root, run_tool):
    data, bad = corrupt_root
    out = run_tool([
        'tools/analysis_tools/check_dataset.py', CONFIG, '--cfg-options',
        f'train_dataloader.dataset.data_root={data}'
    ],
                   check=False)
    assert out.returncode == 1, out.stderr[-2000:]
    total = len(open(osp.join(data, 'meta', 'train.txt')).readlines())
    assert f'train: {len(bad)} of {total} images unreadable' in out.stdout
    for path in bad:
        assert path in out.stdout


@pytest.mark.slow
def test_failed_run_keeps_its_log(tmp_path, data_root, run_tool):
    """A checkpoint-hook typo fails at the first save, after an epoch of
    training: the log, config dump and scalars stay."""
    work_dir = tmp_path / 'w'
    out = run_tool([
        'tools/train.py', CONFIG, '--work-dir',
        str(work_dir), '--no-validate', '--cfg-options',
        *small_options(data_root), 'default_hooks.checkpoint.max_keep_ckpt=1'
    ],
                   check=False)
    assert out.returncode != 0
    logs = glob.glob(str(work_dir / '*' / '*.log'))
    assert logs, out.stderr[-2000:]
    assert 'Epoch(train)' in open(logs[0]).read()
    assert (work_dir / 'van-b0_demo.py').is_file()
    assert logs[0] in out.stderr
    assert not glob.glob(str(work_dir / '*.pth'))


@pytest.mark.slow
def test_resume_without_last_checkpoint_and_truncated_newest(
        tmp_path, data_root, run_tool):
    work_dir = tmp_path / 'w'
    keep = 'default_hooks.checkpoint.max_keep_ckpts=3'
    opts = small_options(data_root, epochs=2) + [keep]
    run_tool([
        'tools/train.py', CONFIG, '--work-dir',
        str(work_dir), '--no-validate', '--cfg-options', *opts
    ])
    first = (work_dir / 'epoch_1.pth').read_bytes()
    # A plain re-run into the same folder would overwrite them: refused.
    out = run_tool([
        'tools/train.py', CONFIG, '--work-dir',
        str(work_dir), '--no-validate', '--cfg-options', *opts
    ],
                   check=False)
    _assert_one_clear_error(out, 'already holds checkpoints', '--resume')
    # last_checkpoint missing, newest checkpoint truncated.
    (work_dir / 'last_checkpoint').unlink()
    data = (work_dir / 'epoch_2.pth').read_bytes()
    (work_dir / 'epoch_2.pth').write_bytes(data[:len(data) // 2])
    out = run_tool([
        'tools/train.py', CONFIG, '--work-dir',
        str(work_dir), '--no-validate', '--resume', '--cfg-options',
        *small_options(data_root, epochs=3), keep
    ])
    assert 'skipped' in out.stderr and 'epoch_2.pth' in out.stderr
    assert (work_dir / 'epoch_1.pth').read_bytes() == first
    assert _state(work_dir / 'epoch_3.pth')['meta']['epoch'] == 3
    logs = sorted(glob.glob(str(work_dir / '*' / '*.log')))
    # The resumed run's log: from epoch 1, the newest whole checkpoint,
    # after one epoch's iterations (batches of 8).
    text = open(logs[-1]).read()
    assert f' from {work_dir / "epoch_1.pth"}' in text
    images = len(open(osp.join(data_root, 'meta', 'train.txt')).readlines())
    assert f'resumed epoch: 1, iter: {-(-images // 8)}\n' in text


@pytest.mark.slow
def test_divergence_stops_without_nan_checkpoints(tmp_path, data_root,
                                                  run_tool):
    work_dir = tmp_path / 'w'
    out = run_tool([
        'tools/train.py', CONFIG, '--work-dir',
        str(work_dir), '--cfg-options', *small_options(data_root, epochs=3),
        'train_dataloader.batch_size=2', 'optim_wrapper.optimizer.lr=1e4',
        'param_scheduler=[]'
    ],
                   check=False)
    _assert_one_clear_error(out, 'training diverged at iteration',
                            'Lower the learning rate')
    for path in glob.glob(str(work_dir / '*.pth')):
        sd = _state(path)['state_dict']
        assert all(
            torch.isfinite(v).all() for v in sd.values()
            if v.is_floating_point()), path


@pytest.mark.slow
def test_test_warns_on_nonfinite_checkpoint(tmp_path, data_root, run_tool,
                                            root):
    from mmvan.apis import init_model
    model = init_model(osp.join(root, CONFIG), deploy=False)
    sd = model.state_dict()
    sd['backbone.block1.0.mlp.fc1.weight'][0, 0] = float('nan')
    path = tmp_path / 'nan.pth'
    torch.save({'state_dict': sd, 'meta': {}}, path)
    out = run_tool([
        'tools/test.py', CONFIG,
        str(path), '--work-dir',
        str(tmp_path / 't'), '--cfg-options', *small_options(data_root)
    ])
    assert '1 of' in out.stdout + out.stderr
    assert 'hold NaN or inf' in out.stdout + out.stderr


@pytest.mark.slow
def test_fast_path_logged_and_resume_across_the_switch(tmp_path, data_root,
                                                       run_tool):
    work_dir = tmp_path / 'w'
    run_tool([
        'tools/train.py', CONFIG, '--work-dir',
        str(work_dir), '--no-validate', '--cfg-options',
        *small_options(data_root)
    ])
    logs = glob.glob(str(work_dir / '*' / '*.log'))
    assert 'training path: layout: channels_last, precision: fp32' in open(
        logs[0]).read()
    # Resume the channels-last run in the plain layout.
    run_tool([
        'tools/train.py', CONFIG, '--work-dir',
        str(work_dir), '--no-validate', '--resume', '--cfg-options',
        *small_options(data_root, epochs=2),
        'train_fast_path.layout=contiguous'
    ])
    assert _state(work_dir / 'epoch_2.pth')['meta']['epoch'] == 2
    logs = sorted(glob.glob(str(work_dir / '*' / '*.log')))
    assert 'layout: contiguous' in open(logs[-1]).read()
