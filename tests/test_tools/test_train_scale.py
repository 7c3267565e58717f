# Copyright (c) mmvan contributors. All rights reserved.
"""tools/train.py at any scale, for real: --effective-batch on one and two
CPU processes, stop signals (SIGTERM, SIGUSR1) with their checkpoint and
resume through the slurm script's requeue, and --ema.

The signals are real: a small hook (written beside the test's config and
imported through ``custom_imports``) sends them to its own process at a
chosen point, so each case happens at the same place on every run. Runs
are few and share their work: the suite runs on two cores."""
import glob
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmvan.datasets import make_classification_demo

# Each test runs tools/train.py.
pytestmark = pytest.mark.slow

PREEMPTED = 143

SIGNAL_HOOK = '''
import os
import signal

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class SignalAt(Hook):
    """Send ``signals`` to this process: 'start' (before the first
    iteration), 'iter' (after iteration ``at_iter``) or 'val' (during the
    validation after epoch ``at_epoch``); with ``again_while_saving``, SIGTERM
    and SIGUSR1 once more while the stop checkpoint is written."""
    priority = 'VERY_HIGH'

    def __init__(self, when='never', at_iter=0, at_epoch=0, rank=None,
                 signals=('SIGTERM', ), again_while_saving=False):
        self.when, self.at_iter, self.at_epoch = when, at_iter, at_epoch
        self.rank, self.signals = rank, signals
        self.again_while_saving = again_while_saving

    def _send(self, runner, names):
        if self.rank is None or self.rank == runner.rank:
            for name in names:
                os.kill(os.getpid(), getattr(signal, name))

    def before_train(self, runner):
        if self.when == 'start':
            self._send(runner, self.signals)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if self.when == 'iter' and runner.iter + 1 == self.at_iter:
            self._send(runner, self.signals)

    def after_val_iter(self, runner, batch_idx, data_batch=None,
                       outputs=None):
        if self.when == 'val' and runner.epoch == self.at_epoch and \\
                batch_idx == 0:
            self._send(runner, self.signals)

    def before_save_checkpoint(self, runner, checkpoint):
        if self.again_while_saving and 'stopped_by' in checkpoint['meta']:
            self._send(runner, ('SIGTERM', 'SIGUSR1'))
'''


@pytest.fixture(scope='module')
def setup(tmp_path_factory, tiny):
    """Five training and five validation images, and a tiny VAN config on
    them with the signal hook (idle unless told)."""
    folder = tmp_path_factory.mktemp('scale')
    data = make_classification_demo(
        str(folder / 'data'), num_train=1, num_val=1, size=32, seed=1)
    (folder / 'signal_at.py').write_text(SIGNAL_HOOK)
    config = folder / 'tiny_signals.py'
    config.write_text(f'_base_ = {tiny(base="van-b0_demo.py")!r}\n'
                      "custom_imports = dict(imports=['signal_at'], "
                      'allow_failed_imports=False)\n'
                      "custom_hooks = [dict(type='mmvan.EpochSeedHook'), "
                      "dict(type='SignalAt')]\n"
                      "visualizer = dict(type='UniversalVisualizer', "
                      "vis_backends=[dict(type='LocalVisBackend')])\n")
    return dict(config=str(config), data=data, env={'PYTHONPATH': str(folder)})


def options(setup, epochs=2, batch=1, *extra):
    opts = [
        f'train_cfg.max_epochs={epochs}', 'train_cfg.val_interval=1',
        'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.checkpoint.max_keep_ckpts=-1',
        'default_hooks.checkpoint.save_best=None',
        'randomness.deterministic=True'
    ]
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [
            f'{loader}.dataset.data_root={setup["data"]}',
            f'{loader}.num_workers=0', f'{loader}.batch_size={batch}'
        ]
    return ['--cfg-options', *opts, *extra]


def signal_at(**kwargs):
    return [f'custom_hooks.1.{k}={v}' for k, v in kwargs.items()]


def log_text(work_dir):
    return ''.join(
        open(p).read()
        for p in sorted(glob.glob(osp.join(str(work_dir), '*', '*.log'))))


def load(path):
    return torch.load(str(path), map_location='cpu', weights_only=True)


def assert_same_weights(a, b, key='state_dict'):
    assert a[key].keys() == b[key].keys()
    for name, value in a[key].items():
        assert torch.equal(value, b[key][name]), name


def train(run_tool, setup, work_dir, *args, check=True):
    return run_tool([
        'tools/train.py', setup['config'], '--work-dir',
        str(work_dir), *args
    ],
                    env=setup['env'],
                    check=check)


def stopped(out, status=PREEMPTED):
    assert out.returncode == status, out.stdout[-3000:] + out.stderr[-3000:]
    assert 'Traceback' not in out.stderr, out.stderr[-3000:]
    return out.stdout + out.stderr


def no_temporaries(work_dir):
    return [n for n in os.listdir(work_dir) if n.endswith('.tmp')] == []


FAKE_SRUN = r"""#!/usr/bin/env bash
# One slurm task on this machine: the call is recorded, the options are left
# out and the command runs here (without GPUs, as a single process).
echo "srun $*" >> "$FAKE_SLURM_LOG"
while [ $# -gt 0 ]; do
  case "$1" in
    -p|-J|-n|-N) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
args=()
for a in "$@"; do
  [ "$a" = --launcher=slurm ] && a=--launcher=none
  args+=("$a")
done
exec "${args[@]}"
"""
FAKE_SCONTROL = """#!/usr/bin/env bash
echo "scontrol $*" >> "$FAKE_SLURM_LOG"
"""


def test_preempted_slurm_job_requeued_resumes_as_uninterrupted(
        tmp_path, setup, root, run_tool):
    """--effective-batch 2 on one process of 1 image (2 accumulation, 5
    iterations an epoch, 15 in 3 epochs) with an EMA. The batch job gets
    SIGTERM in iteration 7, and SIGTERM and SIGUSR1 again while it saves: it
    finishes the accumulation (iteration 8), saves a complete checkpoint,
    exits with 143 and is requeued; the requeued job resumes by itself and
    ends with the uninterrupted run's weights and EMA."""
    run = ['--effective-batch', '2', '--ema', '0.25']
    ref_dir = tmp_path / 'ref'
    out = train(run_tool, setup, ref_dir, *run, *options(setup, 3, 1))
    text = out.stdout + out.stderr
    assert 'effective batch 2 = 1 process x 1 x 2 accumulation' in text
    log = log_text(ref_dir)
    assert 'an epoch has 5 iterations, not a multiple of the accumulation ' \
        '2: accumulations run on across the end of an epoch' in log
    assert "the run's last 1 iterations make an optimizer step of their " \
        'own' in log
    ref = load(ref_dir / 'epoch_3.pth')
    # AdamW counts its steps: 7 of 2 iterations and the last one alone.
    assert {int(s['step']) for s in ref['optimizer']['state'].values()} == {8}
    assert 'validation: the EMA weights (momentum 0.25)' in text

    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for name, script in (('srun', FAKE_SRUN), ('scontrol', FAKE_SCONTROL)):
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    calls = tmp_path / 'slurm.log'
    work_dir = tmp_path / 'job'
    env = dict(
        os.environ,
        **setup['env'],
        PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
        PYTHON=sys.executable,
        FAKE_SLURM_LOG=str(calls),
        SLURM_JOB_ID='4242',
        OMP_NUM_THREADS='1')

    def job(*extra, restarts=0):
        return subprocess.run([
            'bash', 'tools/slurm_train.sh', 'gpu', 'van', setup['config'],
            str(work_dir), *run, *options(setup, 3, 1, *extra)
        ],
                              cwd=root,
                              env=dict(env, SLURM_RESTART_COUNT=str(restarts)),
                              capture_output=True,
                              text=True,
                              timeout=600)

    out = job(*signal_at(when='iter', at_iter=7, again_while_saving=True))
    text = stopped(out)
    saved = work_dir / 'iter_8.pth'
    assert 'SIGTERM: finishing the gradient accumulation before saving.' in \
        text
    assert (f'SIGTERM: saved the state after iteration 8 (epoch 2, '
            f'iteration 3 of 5) to {saved}; --resume continues from it. '
            f'Exiting with status 143.') in text
    lines = calls.read_text().splitlines()
    assert '--signal=USR1@120' in lines[0] and '--resume' not in lines[0]
    assert lines[1:] == ['scontrol requeue 4242']
    assert 'job 4242 requeued' in out.stderr
    assert not (work_dir / 'epoch_2.pth').exists()
    assert no_temporaries(work_dir)
    assert (work_dir / 'last_checkpoint').read_text().strip() == 'iter_8.pth'
    ckpt = load(saved)
    assert (ckpt['meta']['epoch'], ckpt['meta']['iter']) == (1, 8)
    assert 'ema_state_dict' in ckpt and 'optimizer' in ckpt

    out = job(restarts=1)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = calls.read_text().splitlines()
    assert len(lines) == 3 and '--resume' in lines[2]
    log = log_text(work_dir)
    assert 'epoch 2: continuing after its first 3 of 5 iterations' in log
    # Outdated once epoch_2.pth is written: --resume takes the highest N.
    assert 'removed iter_8.pth, the stop checkpoint this run resumed from: ' \
        'epoch_2.pth holds a later state.' in log
    assert not saved.exists()
    resumed = load(work_dir / 'epoch_3.pth')
    assert resumed['meta']['iter'] == 15
    assert_same_weights(ref, resumed)
    assert_same_weights(ref, resumed, 'ema_state_dict')


def test_signal_during_validation_then_ema_from_its_weights(
        tmp_path, setup, run_tool):
    """SIGUSR1 while epoch 1 (one iteration of 5 images) is validated: the
    validation finishes, the end of epoch 1 is saved (no EMA in it).
    Resumed with --ema 0.25, the average starts from those weights p1 and
    is 0.75 p1 + 0.25 p2 after the next iteration; tools/test.py says it
    evaluates the EMA weights."""
    work_dir = tmp_path / 'w'
    out = train(
        run_tool,
        setup,
        work_dir,
        *options(setup, 2, 5,
                 *signal_at(when='val', at_epoch=1, signals='[SIGUSR1]')),
        check=False)
    text = stopped(out)
    assert 'Epoch(val) [1][1/1]' in log_text(work_dir)  # it finished
    saved = work_dir / 'iter_1.pth'
    assert (f'SIGUSR1: saved the state at the end of epoch 1 (after its '
            f'validation) to {saved}') in text
    p1 = load(saved)
    assert (p1['meta']['epoch'], p1['meta']['iter']) == (1, 1)
    assert 'ema_state_dict' not in p1

    out = train(run_tool, setup, work_dir, '--resume', '--ema', '0.25',
                *options(setup, 2, 5))
    text = out.stdout + out.stderr
    assert 'the resumed checkpoint has no EMA weights: the average starts ' \
        'from its weights.' in text
    ckpt = load(work_dir / 'epoch_2.pth')
    ema, raw = ckpt['state_dict'], ckpt['ema_state_dict']
    changed = 0
    for name, value in ema.items():
        if not value.is_floating_point():
            continue
        p2 = raw[f'module.{name}']
        expected = 0.75 * p1['state_dict'][name] + 0.25 * p2
        torch.testing.assert_close(value, expected, rtol=0, atol=1e-6)
        changed += int(not torch.equal(p2, p1['state_dict'][name]))
    assert changed > 10

    out = run_tool([
        'tools/test.py', setup['config'],
        str(work_dir / 'epoch_2.pth'), '--work-dir',
        str(tmp_path / 'test'), *options(setup, 1, 5)
    ],
                   env=setup['env'])
    assert 'evaluating the EMA weights (the checkpoint also holds the ' \
        'weights as trained: --weights raw)' in out.stdout + out.stderr


def test_signal_before_the_first_iteration(tmp_path, setup, run_tool):
    work_dir = tmp_path / 'run'
    out = train(
        run_tool,
        setup,
        work_dir,
        *options(setup, 1, 1, *signal_at(when='start')),
        check=False)
    text = stopped(out)
    assert 'SIGTERM before the first training iteration: nothing to save, ' \
        'no checkpoint written. Exiting with status 143.' in text
    assert not glob.glob(str(work_dir / '**' / '*.pth'), recursive=True)


def test_effective_batch_smaller_than_one_iteration(tmp_path, setup, run_tool):
    work_dir = tmp_path / 'w'
    out = train(
        run_tool,
        setup,
        work_dir,
        '--effective-batch',
        '2',
        *options(setup, 1, 4),
        check=False)
    assert out.returncode == 2 and 'Traceback' not in out.stderr
    errors = [
        line for line in out.stderr.splitlines() if line.startswith('error')
    ]
    assert errors == [
        'error: --effective-batch 2 is smaller than one iteration of 1 '
        'process x 4 images (4). Per-process batch sizes that work with 1 '
        'process: 1, 2 (train_dataloader.batch_size).'
    ]
    assert not work_dir.exists()


def test_two_processes_stop_together(tmp_path, setup, dist_train):
    """2 processes x 1 image x 2 accumulation; SIGTERM to rank 1 alone in
    iteration 1: both finish the accumulation, stop after iteration 2, rank
    0 saves (with both processes' random states), the launch exits with
    143."""
    work_dir = tmp_path / 'run'
    out = dist_train(
        setup['config'],
        '--work-dir',
        str(work_dir),
        '--effective-batch',
        '4',
        *options(setup, 2, 1, *signal_at(when='iter', at_iter=1, rank=1)),
        env=setup['env'],
        check=False)
    assert out.returncode == PREEMPTED, out.stderr[-3000:]
    log = log_text(work_dir)
    assert 'effective batch 4 = 2 processes x 1 x 2 accumulation' in log
    saved = work_dir / 'iter_2.pth'
    assert f'SIGTERM: saved the state after iteration 2 (epoch 1, ' \
        f'iteration 2 of 3) to {saved}' in log
    ckpt = load(saved)
    assert ckpt['meta']['iter'] == 2
    assert len(ckpt['meta']['random_states']) == 2
