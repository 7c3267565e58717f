# Copyright (c) mmvan contributors. All rights reserved.
"""The tools' console is short; the log file keeps mmengine's full output."""
import glob
import io
import itertools
import logging
import re
import statistics
from types import SimpleNamespace

import pytest
import torch
from mmengine.fileio import FileClient
from mmengine.hooks import CheckpointHook
from mmengine.logging import MessageHub, MMLogger, print_log
from mmengine.model import BaseModule
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import load_checkpoint

from mmvan.apis import register_all_modules
from mmvan.datasets import make_classification_demo
from mmvan.utils.quiet import ShortLogProcessor, short_console

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
    # The best checkpoint, named with its score.
    assert re.search(
        r'best accuracy/top1: \d+\.\d{4}, saved to '
        r'best_accuracy_top1_epoch_1\.pth', out.stdout), out.stdout


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


_names = (f'quiet-test-{i}' for i in itertools.count())


def _console(log_file, max_epochs=3):
    """An ``MMLogger`` as the Runner builds it (the current one: mmengine's
    ``print_log(logger='current')`` goes to it), its console made short and
    written into a string."""
    logger = MMLogger.get_instance(
        next(_names), log_file=str(log_file), log_level='INFO')
    console = io.StringIO()
    for handler in logger.handlers:
        if not isinstance(handler, logging.FileHandler):
            handler.setStream(console)
    [filt] = short_console(logger, max_epochs=max_epochs)
    return logger, filt, console


def _shown(console):
    """The console's lines without their time and colours."""
    text = re.sub(r'\x1b\[[0-9;]*m', '', console.getvalue())
    return [
        re.sub(r'^\d\d:\d\d:\d\d (WARNING: )?', '', line)
        for line in text.splitlines()
    ]


class _Run:
    """What mmengine's ``LogProcessor`` reads of a Runner, with a real
    ``MessageHub`` that the test fills as mmengine's hooks do."""

    def __init__(self, train_len=5, val_len=2, max_epochs=3, max_iters=None):
        self.message_hub = MessageHub(next(_names))
        self.train_loop = SimpleNamespace(dataloader=[None] * train_len)
        self.val_loop = SimpleNamespace(dataloader=[None] * val_len)
        self.test_loop = SimpleNamespace(dataloader=[None] * val_len)
        self._train_loop = self.train_loop
        self.max_epochs = max_epochs
        self.max_iters = max_iters or max_epochs * train_len
        self.epoch = self.iter = 0
        self.model = None

    def train_iter(self, loss, time=0.5, lr=1e-3, grad_norm=2.0):
        hub = self.message_hub
        hub.update_scalar('train/base_lr', lr)
        hub.update_scalar('train/lr', lr)
        hub.update_scalar('train/time', time)
        hub.update_scalar('train/data_time', 0.01)
        hub.update_scalar('train/grad_norm', grad_norm)
        hub.update_scalar('train/loss', loss)
        hub.update_info('eta', 9.7)


def _log_iter(logger, processor, run, batch_idx, mode='train'):
    """What mmengine's LoggerHook does after a logged iteration."""
    _, line = processor.get_log_after_iter(run, batch_idx, mode)
    logger.info(line)
    return line


def test_short_console_lines_from_the_log_processor(tmp_path):
    """A training epoch logged at iterations 2 and 4 of 5 and a COCO-style
    validation: the console's lines come from the values, the log file has
    mmengine's lines."""
    log_file = tmp_path / 'run.log'
    logger, filt, console = _console(log_file)
    processor = ShortLogProcessor(window_size=10)
    run = _Run()
    losses = [1.5, 1.4, 1.3, 1.2]
    for batch_idx, loss in enumerate(losses):
        run.train_iter(loss)
        if batch_idx in (1, 3):
            line = _log_iter(logger, processor, run, batch_idx)
        run.iter += 1
    filt.end_epoch()
    mean = statistics.mean(losses)
    # The epoch's line: its last logged iteration, losses first, timing
    # last; base_lr and data_time only in the file.
    assert _shown(console) == [
        f'epoch 1/3  loss: {mean:.4f}  lr: 1.0000e-03  grad_norm: 2.0000  '
        f'eta: 0:00:09  time: 0.5000'
    ], console.getvalue()
    run.epoch = 1
    hub = run.message_hub
    hub.update_scalar('val/coco/AP', 0.5)
    hub.update_scalar('val/coco/AP (M)', 0.25)
    hub.update_info('val/coco/bbox_mAP_copypaste', '0.500 0.250 0.100')
    hub.update_scalar('val/time', 0.2)
    hub.update_scalar('val/data_time', 0.01)
    _, metrics = processor.get_log_after_epoch(run, 2, 'val')
    logger.info(metrics)
    assert _shown(console)[1:] == [
        'epoch 1/3  validation  coco/AP: 0.5000  coco/AP (M): 0.2500'
    ]
    full = log_file.read_text()
    assert str(line) in full and str(metrics) in full
    assert 'Epoch(train) [1][4/5]  base_lr: 1.0000e-03 lr: 1.0000e-03' in full
    assert 'coco/bbox_mAP_copypaste: 0.500 0.250 0.100' in full


def test_next_epoch_shows_the_previous_one(tmp_path):
    """Without the Runner's end-of-epoch call, an epoch's line shows when
    the next epoch starts; an epoch whose last iteration is logged shows at
    once, and only once."""
    logger, filt, console = _console(tmp_path / 'run.log', max_epochs=None)
    processor = ShortLogProcessor(window_size=1)
    run = _Run(train_len=4)
    for epoch, batches in ((0, (1, )), (1, (1, 3))):
        run.epoch = epoch
        for batch_idx in range(4):
            run.train_iter(1.0 - 0.1 * epoch)
            if batch_idx in batches:
                _log_iter(logger, processor, run, batch_idx)
            run.iter += 1
    filt.end_epoch()
    assert [line.split('  ')[:2] for line in _shown(console)
            ] == [['epoch 1', 'loss: 1.0000'],
                  ['epoch 2', 'loss: 0.9000']], console.getvalue()


def test_iteration_based_run_shows_a_line_per_tenth(tmp_path):
    logger, _, console = _console(tmp_path / 'run.log')
    processor = ShortLogProcessor(by_epoch=False, window_size=1)
    run = _Run(max_iters=50)
    for i in range(50):
        run.train_iter(2.0)
        if (i + 1) % 5 == 0 or (i + 1) == 7:
            _log_iter(logger, processor, run, i)
        run.iter += 1
    # The evaluation of an iteration-based run names the iteration.
    run.message_hub.update_scalar('val/accuracy/top1', 20.0)
    logger.info(processor.get_log_after_epoch(run, 2, 'val')[1])
    shown = _shown(console)
    assert [line.split('  ')[0] for line in shown
            ] == [f'iter {i}/50'
                  for i in range(5, 51, 5)] + ['iter 50/50'], shown
    assert shown[-1] == 'iter 50/50  validation  accuracy/top1: 20.0000'


def test_set_up_report_goes_to_the_log_file(tmp_path):
    """The INFO records of mmengine's set-up report and its warnings about
    its own internals stay in the file; other records of mmengine, mmvan's
    and the user's records and other warnings show."""
    log_file = tmp_path / 'run.log'
    logger, _, console = _console(log_file)
    path = tmp_path / 'weights.pth'
    torch.save(dict(state_dict=torch.nn.Linear(1, 1).state_dict()), path)
    load_checkpoint(torch.nn.Linear(1, 1), str(path), logger='current')
    FileClient.infer_client(None, str(tmp_path))  # deprecated on every save
    hook = CheckpointHook(interval=1)
    hook.before_train(SimpleNamespace(work_dir=str(tmp_path), logger=logger))
    # The Runner's learning rate scaling shows.
    linear = torch.nn.Linear(1, 1)
    Runner.scale_lr(
        SimpleNamespace(
            _train_dataloader=dict(batch_size=8),
            world_size=1,
            logger=logger,
            param_schedulers=None),
        OptimWrapper(torch.optim.SGD(linear.parameters(), lr=0.1)),
        dict(enable=True, base_batch_size=16))
    print_log('one of ours', logger='current')
    logger.warning('Something the user should know.')
    assert _shown(console) == [
        'LR is set based on batch size of 16 and the current batch size is '
        '8. Scaling the original LR by 0.5.', 'one of ours',
        'Something the user should know.'
    ], console.getvalue()
    full = log_file.read_text()
    assert f'from path: {path}' in full
    assert '"FileClient" will be deprecated' in full
    assert f'Checkpoints will be saved to {tmp_path}' in full


class _Inited(BaseModule):

    def __init__(self):
        super().__init__(init_cfg=dict(type='Constant', layer='Linear', val=1))
        self.fc = torch.nn.Linear(2, 2)


def test_init_report_is_debug_outside_a_run(capsys):
    """Without a log file, mmengine's per-parameter report is DEBUG: not
    on the console at INFO level, shown at DEBUG level."""
    # A script's logger: mmengine's report goes to the newest one.
    logger = MMLogger.get_instance(next(_names))
    register_all_modules()
    console = io.StringIO()
    handlers = [
        h for h in logger.handlers if not isinstance(h, logging.FileHandler)
    ]
    streams = [h.setStream(console) for h in handlers]
    try:
        _Inited().init_weights()
        assert 'fc.weight' not in console.getvalue()
        level = logger.level
        logger.setLevel(logging.DEBUG)
        for h in handlers:
            h.setLevel(logging.DEBUG)
        try:
            _Inited().init_weights()
        finally:
            logger.setLevel(level)
            for h in handlers:
                h.setLevel(level)
        assert 'fc.weight' in console.getvalue()
        assert 'ConstantInit' in console.getvalue()
    finally:
        for h, stream in zip(handlers, streams):
            h.setStream(stream)
