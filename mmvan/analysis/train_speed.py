# Copyright (c) mmvan contributors. All rights reserved.
"""Training speed as ``tools/train.py`` runs it, against mmpretrain's VAN.

Each model is built by the Runner from the config, as ``tools/train.py``
builds it (its data preprocessor, its optimizer wrapper, the training fast
path), and steps through ``train_step`` on the same batches of mmvan's demo
textures (resized by the config's training pipeline). The contenders
(:data:`CONTENDERS`):

- ``mmvan``: the config as ``tools/train.py`` runs it (on CPU: channels-last
  VAN, the optimizer's fused kernel; on CUDA: the Triton depth-wise
  kernels of :mod:`mmvan.ops`);
- ``mmvan-torch``: the same with PyTorch's depth-wise convolutions
  (``model.backbone.conv_impl='torch'``), the rest of the fast path on
  (by default on a GPU only: on CPU it runs the same code as ``mmvan``);
- ``mmvan-unfused``: ``mmvan`` with the Triton kernels but without their
  fusions (``fused_mlp_act=False``, ``fused_residual=False``): what the
  fusions add (a GPU-only default too);
- ``mmvan-cl``: ``mmvan`` trained channels-last wherever it runs (the
  fast path's ``layout='channels_last'``; on a GPU ``'auto'`` keeps NCHW);
- ``mmvan-plain``: the same with the fast path off (NCHW, torch's default
  optimizer loop);
- ``mmpretrain``: the same config with mmpretrain's VAN as the backbone
  (same weights), in its default layout;
- ``mmvan-cp``: ``mmvan`` with activation checkpointing
  (``model.backbone.with_cp=True``);
- ``mmpretrain-cl``: mmpretrain's VAN with channels-last weights and input
  (the fast path's layout forced on it), torch's default optimizer loop.

:func:`measure_train_steps` runs them alternately, one step each per round,
so machine noise hits all alike; its table gives the median img/s, the
ratios against mmpretrain, the step's peak memory and the first step's loss
difference (same weights and batch). :func:`measure_train_py` times whole
``tools/train.py`` runs instead, each in its own process, data loading
included. In both, every contender runs in each precision asked for:
``'fp32'`` and ``'amp'`` (as ``tools/train.py --amp`` trains). Measured
figures are in ``docs/benchmark.md``.

Each contender's config gets the changes ``tools/train.py`` makes for the
machine and ``--amp`` (:func:`mmvan.engine.device.apply_device_fallbacks`).
"""
import contextlib
import copy
import glob
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from mmengine.runner import set_random_seed
from mmengine.utils import ProgressBar
from torch.profiler import ProfilerActivity, profile

from mmvan.analysis.common import time_once
from mmvan.converters import to_mmpretrain_names
from mmvan.datasets import make_classification_demo
from mmvan.engine.device import apply_device_fallbacks
from mmvan.engine.fast_path import describe_convolutions
from mmvan.engine.runner import Runner
from mmvan.models import VAN
from mmvan.utils.config import load_config
from mmvan.utils.errors import UserError

__all__ = [
    'CONTENDERS', 'PRECISIONS', 'amp_ratios', 'check_device',
    'default_contenders', 'label_of', 'measure_train_py',
    'measure_train_steps', 'run_labels', 'training_config'
]

CONTENDERS = ('mmvan', 'mmvan-torch', 'mmvan-unfused', 'mmvan-cl',
              'mmvan-plain', 'mmvan-cp', 'mmpretrain', 'mmpretrain-cl')
# Contenders that differ from ``mmvan`` only on a GPU (on CPU ``mmvan``
# already runs PyTorch's ops, channels-last).
GPU_ONLY = ('mmvan-torch', 'mmvan-unfused', 'mmvan-cl')
PRECISIONS = ('fp32', 'amp')
# The mmvan checkout this package lives in (its tools/train.py).
CHECKOUT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def default_contenders() -> List[str]:
    """Every contender; those of :data:`GPU_ONLY` only where there is a
    GPU (on CPU ``conv_impl='auto'`` already runs PyTorch's convolutions,
    unfused, and the fast path trains channels-last)."""
    if torch.cuda.is_available():
        return list(CONTENDERS)
    return [name for name in CONTENDERS if name not in GPU_ONLY]


def check_device(device: str) -> None:
    """``device``: 'cuda' needs a GPU; 'cpu' cannot be had where one is
    (the Runner trains on it, as tools/train.py does); 'auto' is either."""
    if device == 'cuda' and not torch.cuda.is_available():
        raise UserError('--device cuda needs a CUDA GPU, and this '
                        'machine has none.')
    if device == 'cpu' and torch.cuda.is_available():
        raise UserError('--device cpu: the runs train on the GPU this '
                        'machine has (as tools/train.py); hide it with '
                        'CUDA_VISIBLE_DEVICES= to time the CPU.')


def run_labels(contenders: Sequence[str],
               precisions: Sequence[str]) -> Dict[str, Tuple[str, bool]]:
    """``{label: (contender, amp)}`` for every contender in every
    precision; labels carry the precision only when there are several."""
    runs = {}
    for precision in precisions:
        for name in contenders:
            label = name if len(precisions) == 1 else f'{name} {precision}'
            runs[label] = (name, precision == 'amp')
    return runs


def label_of(runs: Dict[str, tuple], name: str, amp: bool) -> Optional[str]:
    """The label of contender ``name`` in the precision ``amp``, if it
    runs (``runs``: label -> (..., name, amp))."""
    for label, spec in runs.items():
        if tuple(spec[-2:]) == (name, amp):
            return label
    return None


def amp_ratios(runs: Dict[str, Tuple[str, bool]],
               rate: Dict[str, float]) -> List[str]:
    """One line: each contender's rate with amp over its fp32 rate (none
    when no contender ran in both)."""
    ratios = []
    for label, (name, amp) in runs.items():
        fp32 = label_of(runs, name, False)
        if amp and label in rate and fp32 in rate:
            ratios.append(f'{name} {rate[label] / rate[fp32]:.2f}x')
    return ['amp / fp32: ' + ', '.join(ratios)] if ratios else []


def training_config(config: str, name: str, batch_size: int, data_root: str,
                    work_dir: str, amp: bool) -> Config:
    """``config`` as contender ``name`` trains it on the demo textures at
    ``data_root`` (ImageNet's on-disk layout, see
    :func:`~mmvan.datasets.make_classification_demo`)."""
    options = {
        'train_dataloader.dataset.data_root': data_root,
        'train_dataloader.batch_size': batch_size,
        'train_dataloader.num_workers': 0,
        'work_dir': work_dir,
        'log_level': 'WARNING',
    }
    cfg = load_config(config, options)
    ds = cfg.train_dataloader.dataset
    # The demo textures in ImageNet's on-disk layout, 5 classes.
    ds.type = 'CustomDataset'
    ds.pop('split', None)
    ds.ann_file = 'meta/train.txt'
    ds.data_prefix = 'train'
    cfg.train_dataloader.persistent_workers = False
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    fast = name in ('mmvan', 'mmvan-cp') + GPU_ONLY
    cfg.train_fast_path = dict(
        layout='auto' if fast else 'contiguous',
        fused_optimizer='auto' if fast else False)
    if name in ('mmpretrain-cl', 'mmvan-cl'):
        # The fast path's layout, forced (weights and input channels-last;
        # on mmpretrain's backbone with torch's default optimizer loop).
        cfg.train_fast_path.layout = 'channels_last'
    if name == 'mmvan-cp':
        cfg.model.backbone.with_cp = True
    if name == 'mmvan-torch':
        cfg.model.backbone.conv_impl = 'torch'
    if name == 'mmvan-unfused':
        cfg.model.backbone.fused_mlp_act = False
        cfg.model.backbone.fused_residual = False
    if name.startswith('mmpretrain'):
        backbone = cfg.model.backbone
        if backbone.get('attention', 'lka') != 'lka':
            raise UserError('mmpretrain\'s VAN has LKA attention only; '
                            'compare an LKA config.')
        # mmpretrain's names for the same sizes.
        settings = backbone.arch if isinstance(
            backbone.arch, dict) else VAN.arch_zoo[backbone.arch.lower()]
        cfg.model.backbone = dict(
            type='mmpretrain.VAN',
            arch=dict(
                embed_dims=settings['embed_dims'],
                depths=settings['depths'],
                ffn_ratios=settings['mlp_ratios']),
            drop_path_rate=backbone.get('drop_path_rate', 0.),
            norm_cfg=dict(type='LN', eps=1e-6))
    apply_device_fallbacks(cfg, amp=amp)
    return cfg


def _resolve(contenders, precisions, device):
    check_device(device)
    contenders = list(contenders or default_contenders())
    precisions = list(dict.fromkeys(precisions))
    return contenders, precisions


def measure_train_steps(config: str,
                        batch_size: int = 16,
                        iters: int = 5,
                        warmup: int = 2,
                        contenders: Optional[Sequence[str]] = None,
                        precisions: Sequence[str] = ('fp32', ),
                        profile_steps: bool = False,
                        device: str = 'auto') -> Dict[str, Dict[str, Any]]:
    """Time ``train_step`` of every contender (default:
    :func:`default_contenders`) in every precision, alternating, and print
    the table.

    Args:
        config: a classifier config file.
        batch_size: images per step.
        iters, warmup: timed and untimed rounds.
        contenders: names from :data:`CONTENDERS`.
        precisions: ``'fp32'`` and / or ``'amp'``.
        profile_steps: also print the operators that take the time in
            mmvan's step.
        device: ``'cuda'`` (an error without a GPU), ``'cpu'`` (an error
            with one: the Runner trains on it) or ``'auto'``.

    Returns:
        dict: ``rate`` (img/s), ``peak_mb`` (the step's peak memory, None
        where not measurable) and ``loss`` (the first step's), each by
        label (the contender, and its precision when there are several).
    """
    contenders, precisions = _resolve(contenders, precisions, device)
    with tempfile.TemporaryDirectory(prefix='mmvan-train-speed-') as tmp:
        return _measure(config, batch_size, iters, warmup, contenders,
                        precisions, profile_steps, tmp)


def measure_train_py(config: str,
                     batch_size: int = 16,
                     iters: int = 5,
                     warmup: int = 2,
                     contenders: Optional[Sequence[str]] = None,
                     precisions: Sequence[str] = ('fp32', ),
                     rounds: int = 1,
                     num_workers: int = 2,
                     checkout: Optional[str] = None,
                     device: str = 'auto') -> Dict[str, Dict[str, float]]:
    """Time whole ``tools/train.py`` runs: each contender's config (one
    epoch of ``warmup + iters`` iterations on the demo textures, no
    validation or checkpoints) is written to a file and trained by
    ``tools/train.py`` in its own process, data loading included, ``rounds``
    times alternately; the rate is the median iteration time of the run's
    log after the warm-up iterations. Prints the table.

    Args:
        checkout: another mmvan checkout (e.g. an older commit) whose
            ``tools/train.py`` also trains mmvan's config, as
            ``mmvan@<folder name>``.
        num_workers: data loading processes.
        Others: as :func:`measure_train_steps`.

    Returns:
        dict: ``rate``, iterations per second by label.
    """
    contenders, precisions = _resolve(contenders, precisions, device)
    with tempfile.TemporaryDirectory(prefix='mmvan-train-speed-') as tmp:
        return _measure_train_py(config, batch_size, iters, warmup, contenders,
                                 precisions, rounds, num_workers, checkout,
                                 tmp)


def _iteration_times(work_dir):
    """``(seconds, data loading seconds)`` of each iteration, from the
    newest run's ``scalars.json``."""
    files = sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        return []
    times = []
    with open(files[-1]) as f:
        for line in f:
            record = json.loads(line)
            if 'time' in record and 'step' in record:
                times.append((record['step'], record['time'],
                              record.get('data_time', 0.)))
    return [t[1:] for t in sorted(times)]


def _training_path(work_dir):
    """The run's ``training path: ...`` log line (what it ran), if any."""
    for path in sorted(glob.glob(osp.join(work_dir, '*', '*.log'))):
        with open(path) as f:
            for line in f:
                if 'training path:' in line:
                    return line.split('training path:', 1)[1].strip()
    return None


def _run_train_py(root, config, work_dir, amp, log):
    """Train ``config`` with ``root``'s tools/train.py in a new process."""
    env = dict(os.environ)
    env['PYTHONPATH'] = root + os.pathsep + env.get('PYTHONPATH', '')
    cmd = [
        sys.executable,
        osp.join(root, 'tools', 'train.py'), config, '--work-dir', work_dir,
        '--no-validate'
    ] + (['--amp'] if amp else [])
    with open(log, 'a') as out:
        done = subprocess.run(
            cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        raise UserError(f'tools/train.py failed for {config} '
                        f'(exit {done.returncode}); see {log}')


def _measure_train_py(config, batch_size, iters, warmup, contenders,
                      precisions, rounds, num_workers, checkout, tmp):
    here = CHECKOUT
    if not osp.isfile(osp.join(here, 'tools', 'train.py')):
        raise UserError(f'whole tools/train.py runs need the mmvan checkout '
                        f'this package lives in; there is no tools/train.py '
                        f'in {here}.')
    timed = iters
    iters = warmup + timed
    runs = {
        label: (here, name, amp)
        for label, (name, amp) in run_labels(contenders, precisions).items()
    }
    if checkout:
        folder = osp.abspath(checkout)
        if not osp.isfile(osp.join(folder, 'tools', 'train.py')):
            raise UserError(f'--checkout {checkout}: no '
                            'tools/train.py there.')
        label = f'mmvan@{osp.basename(folder.rstrip(os.sep))}'
        for precision in precisions:
            suffix = '' if len(precisions) == 1 else f' {precision}'
            runs[label + suffix] = (folder, 'mmvan', precision == 'amp')
    # One epoch of ``iters`` whole batches (5 classes).
    per_class = -(-iters * batch_size // 5)
    data_root = make_classification_demo(
        osp.join(tmp, 'data'), num_train=per_class, num_val=1)
    configs = {}
    for label, (root, name, _) in runs.items():
        cfg = training_config(config, name, batch_size, data_root,
                              osp.join(tmp, 'unused'), False)
        cfg.train_dataloader.num_workers = num_workers
        cfg.train_dataloader.persistent_workers = num_workers > 0
        cfg.train_dataloader.drop_last = True
        cfg.train_cfg = dict(by_epoch=True, max_epochs=1)
        cfg.default_hooks.checkpoint = None
        cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
        # Raw iteration times, not a moving average.
        cfg.log_processor = dict(window_size=1)
        cfg.log_level = 'INFO'
        if root != here:
            # An older checkout: its own default path.
            cfg.pop('train_fast_path', None)
        path = osp.join(tmp, f'{len(configs)}_{name}.py')
        cfg.dump(path)
        configs[label] = path
    log = osp.join(tmp, 'train_py.log')
    times = {label: [] for label in runs}
    ran = {}
    bar = ProgressBar(rounds * len(runs))
    for r in range(rounds):
        for label, (root, _, amp) in runs.items():
            work_dir = osp.join(
                tmp, 'runs', f'{r}_{len(times[label])}_'
                f'{label.replace("@", "_").replace(" ", "_")}')
            _run_train_py(root, configs[label], work_dir, amp, log)
            got = _iteration_times(work_dir)
            if len(got) < iters:
                raise UserError(f'{label}: {len(got)} iterations logged, '
                                f'expected {iters}; see {log}')
            times[label] += got[warmup:]
            ran[label] = _training_path(work_dir) or 'not logged'
            bar.update()
    print()
    rate = {
        label: 1 / statistics.median(t for t, _ in got)
        for label, got in times.items()
    }
    waiting = {
        label: statistics.median(d for _, d in got) * rate[label]
        for label, got in times.items()
    }
    lines = [
        f'tools/train.py, {osp.basename(config)}, batch '
        f'{batch_size}, {rounds} run(s) of {timed} timed '
        f'iterations each (after {warmup}), {num_workers} data '
        'workers',
        f'{"path":<22} {"it/s":>7} {"img/s":>7} {"vs mmpretrain":>14} '
        f'{"vs mmpretrain-cl":>17} {"data wait":>10}'
    ]
    for label, r in rate.items():
        amp = runs[label][2]
        base = rate.get(label_of(runs, 'mmpretrain', amp))
        base_cl = rate.get(label_of(runs, 'mmpretrain-cl', amp))
        vs = f'{r / base:.2f}x' if base else '-'
        vs_cl = f'{r / base_cl:.2f}x' if base_cl else '-'
        lines.append(f'{label:<22} {r:>7.3f} {r * batch_size:>7.2f} '
                     f'{vs:>14} {vs_cl:>17} {waiting[label]:>9.1%}')
    lines += amp_ratios({k: v[1:] for k, v in runs.items()}, rate)
    lines += [f'{label}: {path}' for label, path in ran.items()]
    print('\n'.join(lines))
    return dict(rate=rate)


@contextlib.contextmanager
def _native_stderr_silenced():
    """The profiler's native library writes start/stop lines to file
    descriptor 2: send them to /dev/null while it runs."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _step_memory_mb(device, step, tmp):
    """Run ``step()``; the memory its tensors take at the step's peak, in
    MiB (CUDA: the allocator's peak above what was allocated before; CPU:
    the profiler's memory timeline, which counts every tensor the step
    allocates whatever the allocator reuses). None when not measurable."""
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    with _native_stderr_silenced(), profile(
            activities=[ProfilerActivity.CPU],
            profile_memory=True,
            record_shapes=True,
            with_stack=True) as prof:
        step()
    path = osp.join(tmp, 'memory_timeline.json')
    try:
        with warnings.catch_warnings():
            # torch marks the memory timeline deprecated; its replacement
            # records CUDA memory only.
            warnings.filterwarnings(
                'ignore',
                message='`export_memory_timeline` is deprecated',
                category=FutureWarning)
            prof.export_memory_timeline(path, device='cpu')
        with open(path) as f:
            _, sizes = json.load(f)
    except Exception:  # noqa: B902 - an API that may go away
        return None
    return max((sum(row) for row in sizes), default=0) / 2**20


def _same_weights(runners, runs):
    """The first runner's seeded random weights in every runner (in
    mmpretrain's names for its backbone)."""
    first = next(iter(runners.values()))
    torch.manual_seed(0)
    first.model.init_weights()
    reference = {k: v.clone() for k, v in first.model.state_dict().items()}
    for label, runner in runners.items():
        sd = dict(reference)
        if runs[label][0].startswith('mmpretrain'):
            backbone = {
                k[len('backbone.'):]: v
                for k, v in reference.items() if k.startswith('backbone.')
            }
            sd = {
                'backbone.' + k: v
                for k, v in to_mmpretrain_names(backbone).items()
            }
            sd.update({
                k: v
                for k, v in reference.items() if not k.startswith('backbone.')
            })
        runner.model.load_state_dict(sd, strict=True)
        runner.model.train()
        # What runner.train() builds before its first step.
        runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)


def _first_losses(runners, batch):
    """The loss of each model on ``batch``, same random numbers."""
    losses = {}
    for name, runner in runners.items():
        # Mixup / CutMix (numpy) and drop-path (torch) draw the same random
        # numbers.
        set_random_seed(0)
        with torch.no_grad():
            data = runner.model.data_preprocessor(copy.deepcopy(batch), True)
            out = runner.model(**data, mode='loss')
        losses[name] = float(sum(v for k, v in out.items() if 'loss' in k))
    return losses


def _measure(config, batch_size, iters, warmup, contenders, precisions,
             profile_steps, tmp):
    data_root = make_classification_demo(
        osp.join(tmp, 'data'), num_train=4 * batch_size, num_val=5)
    runs = run_labels(contenders, precisions)
    runners = {}
    for label, (name, amp) in runs.items():
        folder = label.replace(' ', '_')
        cfg = training_config(config, name, batch_size, data_root,
                              osp.join(tmp, folder), amp)
        # A name of its own: mmengine names a run by its config and the
        # second it starts, and runners built within one second would share
        # their logger and visualizer (with a warning for each).
        cfg.experiment_name = f'{osp.basename(tmp)}_{folder}'
        runners[label] = Runner.from_cfg(cfg)
    _same_weights(runners, runs)
    first = next(iter(runners.values()))
    loader = first.build_dataloader(first.cfg.train_dataloader)
    batches = [copy.deepcopy(b) for _, b in zip(range(2), loader)]
    # The first step's loss, same weights and batch.
    losses = _first_losses(runners, batches[0])
    times = {name: [] for name in runners}
    device = str(first.model.data_preprocessor.device)
    for i in range(warmup + iters):
        for name, runner in runners.items():
            batch = copy.deepcopy(batches[i % len(batches)])
            elapsed, _ = time_once(
                lambda b: runner.model.train_step(b, runner.optim_wrapper),
                batch, device)
            if i >= warmup:
                times[name].append(elapsed)
    # Memory after the timings (profiling slows a step down).
    peak = {}
    for name, runner in runners.items():
        batch = copy.deepcopy(batches[0])
        peak[name] = _step_memory_mb(
            device,
            lambda: runner.model.train_step(batch, runner.optim_wrapper), tmp)
    rate = {
        name: batch_size / statistics.median(t)
        for name, t in times.items()
    }
    lines = [
        f'{osp.basename(config)}, batch {batch_size}, '
        f'{iters} timed rounds (alternating), torch '
        f'{torch.__version__}, {torch.get_num_threads()} threads',
        f'{"path":<20} {"img/s":>7} {"vs mmpretrain":>14} '
        f'{"vs mmpretrain-cl":>17} {"peak MiB":>9} {"loss diff":>10}'
    ]
    for label in runners:
        amp = runs[label][1]
        r = rate[label]
        base = rate.get(label_of(runs, 'mmpretrain', amp))
        base_cl = rate.get(label_of(runs, 'mmpretrain-cl', amp))
        vs = f'{r / base:.2f}x' if base else '-'
        vs_cl = f'{r / base_cl:.2f}x' if base_cl else '-'
        diff = abs(losses[label] - losses[next(iter(runners))])
        mib = '-' if peak[label] is None else f'{peak[label]:.0f}'
        lines.append(f'{label:<20} {r:>7.2f} {vs:>14} {vs_cl:>17} '
                     f'{mib:>9} {diff:>10.2e}')
    amp = runs[next(iter(runners))][1]
    plain, cp = (label_of(runs, n, amp) for n in ('mmvan', 'mmvan-cp'))
    if peak.get(plain) and peak.get(cp):
        lines.append(
            f'with_cp: {peak[cp] / max(peak[plain], 1e-9):.2f}x the peak '
            f'memory at {rate[plain] / rate[cp]:.2f}x the step time')
    lines += amp_ratios(runs, rate)
    lines.append('depth-wise convolutions: ' + '; '.join(
        f'{label}: {describe_convolutions(runner.model, device)}'
        for label, runner in runners.items()
        if not runs[label][0].startswith('mmpretrain')))
    print('\n'.join(lines))
    if profile_steps and plain in runners:
        runner = runners[plain]
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            runner.model.train_step(
                copy.deepcopy(batches[0]), runner.optim_wrapper)
        print(prof.key_averages().table(
            sort_by='self_cpu_time_total', row_limit=15))
    return dict(rate=rate, peak_mb=peak, loss=losses)
