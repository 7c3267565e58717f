# Copyright (c) mmvan contributors. All rights reserved.
"""The tools' console is short; the log file keeps mmengine's full output."""
import glob
import io
import logging
import re

import pytest

from mmvan.datasets import make_classification_demo
from mmvan.utils.quiet import short_console

EPOCHS = 2

# The short console whatever the caller's environment says.
NOT_VERBOSE = dict(MMVAN_VERBOSE=None)


def options(data_root, epochs=EPOCHS):
    opts = [f'train_cfg.max_epochs={epochs}', 'train_cfg.val_interval=1']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [
            f'{loader}.dataset.data_root={data_root}',
            f'{loader}.num_workers=0', f'{loader}.batch_size=8'
        ]
    # Logged every 2 of the 5 iterations: the last one of an epoch is not.
    return opts + [
        'default_hooks.logger.interval=2',
        'default_hooks.visualization.enable=False'
    ]


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('data') / 'demo'
    return make_classification_demo(
        str(root), num_train=8, num_val=2, size=32, seed=1)


@pytest.fixture(scope='module')
def config(tiny):
    return tiny(base='van-b0_demo.py')


@pytest.fixture(scope='module')
def trained(run_tool, tmp_path_factory, config, data_root):
    work_dir = tmp_path_factory.mktemp('quiet') / 'work'
    out = run_tool([
        'tools/train.py', config, '--work-dir',
        str(work_dir), '--cfg-options', *options(data_root)
    ],
                   env=NOT_VERBOSE,
                   timeout=300)
    logs = glob.glob(str(work_dir / '*' / '*.log'))
    assert len(logs) == 1
    with open(logs[0]) as f:
        return out, work_dir, f.read()


@pytest.mark.slow
def test_train_console_is_short(trained):
    out, work_dir, _ = trained
    lines = out.stdout.splitlines()
    text = out.stdout + out.stderr
    # Set-up (config, model, work dir, training path, data), per epoch a
    # training line, a validation line and at most a best-checkpoint line.
    assert len(lines) <= 5 + 3 * EPOCHS, out.stdout
    for noise in ('System environment', 'Config:', 'Hooks will be executed',
                  'paramwise_options', 'Epoch(train)', 'Exp name',
                  'init_weights', '"FileClient"'):
        assert noise not in text, noise
    assert lines[0].split(' ', 1)[1].startswith('config: '), lines[0]
    for expected in ('model: ImageClassifier (backbone VAN), ',
                     ' M parameters', f'work dir: {work_dir}',
                     'training path: layout: ',
                     'data: train 40 samples, val 10 samples (CustomDataset'):
        assert expected in out.stdout, expected
    for epoch in range(1, EPOCHS + 1):
        train = [
            line for line in lines if f'epoch {epoch}/{EPOCHS}  loss: ' in line
        ]
        assert len(train) == 1, out.stdout
        assert ' lr: ' in train[0] and ' time: ' in train[0]
        assert f'epoch {epoch}/{EPOCHS}  validation  accuracy/top1: ' in \
            out.stdout


@pytest.mark.slow
def test_train_log_file_keeps_everything(trained):
    _, _, log = trained
    for full in ('System environment:', 'Config:', 'Hooks will be executed',
                 'paramwise_options', 'Exp name', 'Name of parameter',
                 'training path: layout: ', 'data: train 40 samples'):
        assert full in log, full
    # Every logged iteration, as mmengine writes it.
    for epoch in range(1, EPOCHS + 1):
        for i in (2, 4):
            assert f'Epoch(train) [{epoch}][{i}/5]  base_lr: ' in log
        assert f'Epoch(val) [{epoch}][2/2]    accuracy/top1: ' in log


@pytest.mark.slow
def test_verbose_restores_the_full_console(run_tool, tmp_path, config,
                                           data_root):
    out = run_tool([
        'tools/train.py', config, '--verbose', '--no-validate', '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', *options(data_root, 1)
    ],
                   env=NOT_VERBOSE,
                   timeout=300)
    for full in ('System environment:', 'Hooks will be executed',
                 'Epoch(train) [1][2/5]'):
        assert full in out.stdout, full


@pytest.mark.slow
def test_benchmark_prints_no_init_report(run_tool, trained, config):
    _, work_dir, _ = trained
    out = run_tool([
        'tools/analysis_tools/benchmark.py', config, '--batch-size', '1',
        '--shape', '32', '32', '--repeats', '1', '--warmup', '1',
        '--checkpoint',
        str(work_dir / f'epoch_{EPOCHS}.pth')
    ],
                   env=NOT_VERBOSE,
                   timeout=300)
    text = out.stdout + out.stderr
    for noise in ('init_weights', 'Initialized by', 'Name of parameter',
                  'Loads checkpoint by', 'unexpected key', 'mmengine - '):
        assert noise not in text, noise
    lines = out.stdout.splitlines()
    assert re.match(r'weights: (\d+) of \1 backbone tensors', lines[0])
    assert 'img/s' in out.stdout and len(lines) < 10, out.stdout


def _console(log_file, max_epochs=3):
    """A logger like the Runner's: a console (made short) and a file."""
    logger = logging.Logger('quiet-test')
    console = io.StringIO()
    for handler in (logging.StreamHandler(console),
                    logging.FileHandler(log_file)):
        handler.setLevel(logging.INFO)
        logger.addHandler(handler)
    [filt] = short_console(logger, max_epochs=max_epochs)
    return logger, filt, console


def _shown(console):
    """The console's lines without their time and colours."""
    text = re.sub(r'\x1b\[[0-9;]*m', '', console.getvalue())
    return [
        re.sub(r'^\d\d:\d\d:\d\d (WARNING: )?', '', line)
        for line in text.splitlines()
    ]


def test_short_console_lines(tmp_path):
    log_file = tmp_path / 'run.log'
    logger, filt, console = _console(log_file)
    records = [
        '\n' + '-' * 60 + '\nSystem environment:\n    Python: 3',
        'Config:\nmodel = dict()',
        'Hooks will be executed in the following order:\nbefore_run:',
        'paramwise_options -- backbone.norm1.bias:weight_decay=0.0',
        'training path: layout: contiguous, precision: fp32',
        'Epoch(train) [1][2/5]  base_lr: 1.0e-03 lr: 1.0e-03  eta: 0:00:09  '
        'time: 0.5  data_time: 0.01  grad_norm: 2.0  loss: 1.5',
        'Epoch(train) [1][4/5]  base_lr: 1.0e-03 lr: 1.0e-03  eta: 0:00:08  '
        'time: 0.5  data_time: 0.01  grad_norm: 2.0  loss: 1.4',
    ]
    for msg in records:
        logger.info(msg)
    filt.end_epoch()
    logger.info('Epoch(val) [1][2/2]    eta: 0:00:00  time: 0.2  '
                'data_time: 0.01  ')
    logger.info('Epoch(val) [1][2/2]    coco/AP: 0.5000  coco/AP (M): '
                '0.2500  coco/bbox_mAP_copypaste: 0.1 0.2 0.3  '
                'data_time: 0.0100  time: 0.2000')
    logger.warning('"FileClient" will be deprecated in future.')
    logger.warning('Something the user should know.')
    logger.info('Iter(train) [ 5/50]  lr: 1e-3  eta: 0:01:00  time: 1.0  '
                'loss: 2.0')
    logger.info('Iter(train) [ 7/50]  lr: 1e-3  eta: 0:01:00  time: 1.0  '
                'loss: 1.9')
    logger.info('Epoch(test) [2/2]    accuracy/top1: 20.0000  '
                'data_time: 0.0100  time: 0.2000')
    assert _shown(console) == [
        'training path: layout: contiguous, precision: fp32',
        'epoch 1/3  loss: 1.4  lr: 1.0e-03  grad_norm: 2.0  eta: 0:00:08  '
        'time: 0.5',
        'epoch 1/3  validation  coco/AP: 0.5000  coco/AP (M): 0.2500',
        'Something the user should know.',
        'iter 5/50  loss: 2.0  lr: 1e-3  eta: 0:01:00  time: 1.0',
        'test  accuracy/top1: 20.0000',
    ], console.getvalue()
    # The file has every record as it came.
    full = log_file.read_text()
    for msg in records:
        assert msg in full
    assert 'coco/bbox_mAP_copypaste: 0.1 0.2 0.3' in full
    assert 'Iter(train) [ 7/50]' in full


def test_next_epoch_shows_the_previous_one(tmp_path):
    """Without the Runner's end-of-epoch call, an epoch's line shows when
    the next epoch starts; an epoch whose last iteration is logged shows at
    once, and only once."""
    logger, filt, console = _console(tmp_path / 'run.log', max_epochs=None)
    logger.info('Epoch(train) [1][2/4]  lr: 1e-3  loss: 1.0')
    logger.info('Epoch(train) [2][2/4]  lr: 1e-3  loss: 0.9')
    logger.info('Epoch(train) [2][4/4]  lr: 1e-3  loss: 0.8')
    filt.end_epoch()
    assert _shown(console) == [
        'epoch 1  loss: 1.0  lr: 1e-3', 'epoch 2  loss: 0.8  lr: 1e-3'
    ]
